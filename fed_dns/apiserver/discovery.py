"""Discovery documents: /version, /api, /apis and the APIResourceLists kubectl and the client read."""

from __future__ import annotations

from fed_dns.sim.kinds import KINDS, Kind, group_versions

SUBRESOURCE_KINDS = {"status": None, "scale": ("autoscaling", "v1", "Scale")}


def version() -> dict:
    return {
        "major": "1", "minor": "31", "gitVersion": "v1.31.0-fed-dns-sim",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2024-08-13T00:00:00Z", "goVersion": "go1.22.5", "compiler": "gc",
        "platform": "linux/amd64",
    }


def core_versions(*, server: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}]}


def group_list() -> dict:
    groups = []
    for gv, kinds in group_versions().items():
        group = kinds[0].group
        if not group:
            continue
        entry = {"groupVersion": gv, "version": kinds[0].version}
        groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(name: str) -> dict | None:
    for doc in group_list()["groups"]:
        if doc["name"] == name:
            return {"kind": "APIGroup", "apiVersion": "v1", **doc}
    return None


def _resource(kind: Kind) -> dict:
    return {
        "name": kind.plural, "singularName": kind.singular, "namespaced": kind.namespaced,
        "kind": kind.kind, "verbs": ["create", "delete", "deletecollection", "get", "list",
                                     "patch", "update", "watch"],
        **({"shortNames": list(kind.short_names)} if kind.short_names else {}),
        **({"categories": list(kind.categories)} if kind.categories else {}),
        "storageVersionHash": "",
    }


def _subresource(kind: Kind, sub: str) -> dict:
    doc = {"name": f"{kind.plural}/{sub}", "singularName": "", "namespaced": kind.namespaced,
           "kind": kind.kind, "verbs": ["get", "patch", "update"]}
    target = SUBRESOURCE_KINDS.get(sub)
    if target:
        doc["group"], doc["version"], doc["kind"] = target
    return doc


def resource_list(group_version: str) -> dict | None:
    kinds = group_versions().get(group_version)
    if kinds is None:
        return None
    resources = []
    for kind in kinds:
        resources.append(_resource(kind))
        resources.extend(_subresource(kind, sub) for sub in kind.subresources)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": resources}


def kinds_by_plural(group_version: str) -> dict[str, Kind]:
    return {k.plural: k for k in KINDS if k.group_version == group_version}
