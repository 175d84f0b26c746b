"""Discovery documents: /version, /api, /apis and the APIResourceLists kubectl and the client read."""

from __future__ import annotations

from fed_dns.apiserver.kinds import Kind, Registry

SUBRESOURCE_KINDS = {"status": None, "scale": ("autoscaling", "v1", "Scale")}


def version() -> dict:
    return {
        "major": "1", "minor": "31", "gitVersion": "v1.31.0-fed-dns",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2024-08-13T00:00:00Z", "goVersion": "go1.22.5", "compiler": "gc",
        "platform": "linux/amd64",
    }


def core_versions(*, server: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}]}


def group_list(registry: Registry) -> dict:
    groups: dict[str, dict] = {}
    for gv in registry.group_versions():
        if "/" not in gv:
            continue
        group, version = gv.split("/", 1)
        entry = {"groupVersion": gv, "version": version}
        doc = groups.setdefault(group, {"name": group, "versions": [], "preferredVersion": entry})
        doc["versions"].append(entry)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": list(groups.values())}


def group(registry: Registry, name: str) -> dict | None:
    for doc in group_list(registry)["groups"]:
        if doc["name"] == name:
            return {"kind": "APIGroup", "apiVersion": "v1", **doc}
    return None


def _resource(kind: Kind) -> dict:
    return {
        "name": kind.plural, "singularName": kind.singular, "namespaced": kind.namespaced,
        "kind": kind.kind, "verbs": list(kind.verbs),
        **({"shortNames": list(kind.short_names)} if kind.short_names else {}),
        **({"categories": list(kind.categories)} if kind.categories else {}),
        "storageVersionHash": "",
    }


def _subresource(kind: Kind, sub: str) -> dict:
    doc = {"name": f"{kind.plural}/{sub}", "singularName": "", "namespaced": kind.namespaced,
           "kind": kind.kind, "verbs": ["get"] if kind.read_only else ["get", "patch", "update"]}
    target = SUBRESOURCE_KINDS.get(sub)
    if target:
        doc["group"], doc["version"], doc["kind"] = target
    return doc


def resource_list(registry: Registry, group_version: str) -> dict | None:
    kinds = registry.group_versions().get(group_version)
    if kinds is None:
        return None
    resources = []
    for kind in kinds:
        resources.append(_resource(kind))
        resources.extend(_subresource(kind, sub) for sub in kind.subresources)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": resources}

