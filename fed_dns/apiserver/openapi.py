"""A minimal OpenAPI v3 index, enough for kubectl.

`kubectl apply` (and create/replace) validates with `--validate=strict` by default: it reads
`/openapi/v3`, then each group-version's document, and when the PATCH operation of a kind
accepts the `fieldValidation` query parameter it leaves validation to the server. So each
document lists, per kind, its paths with the operations and that parameter, and no schemas
(kubectl then computes strategic merge patches from its built-in types).
"""

from __future__ import annotations

import hashlib
import json

from fed_dns.apiserver.kinds import Kind, Registry

V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_HASH = hashlib.sha256(b"fed-dns-sim-openapi-1").hexdigest()[:16].upper()
_QUERY = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
          for n in ("dryRun", "fieldManager", "fieldValidation", "pretty")]


def _prefix(group_version: str) -> str:
    return "api/v1" if group_version == "v1" else f"apis/{group_version}"


def index(registry: Registry) -> dict:
    paths = {_prefix(gv): {"serverRelativeURL": f"/openapi/v3/{_prefix(gv)}?hash={_HASH}"}
             for gv in registry.group_versions()}
    return {"paths": paths}


def _op(kind: Kind, verb: str, *, gv: str, sub: str | None = None) -> dict:
    group, _, version = gv.rpartition("/")
    gvk = {"group": group, "version": version, "kind": kind.kind}
    if sub == "scale":
        gvk = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    return {
        "operationId": f"{verb}{kind.kind}{(sub or '').title()}",
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": gvk,
        "parameters": list(_QUERY),
        "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
    }


def document(registry: Registry, path: str) -> dict | None:
    """The document for "api/v1" or "apis/<group>/<version>", None if there is none."""
    for gv, kinds in registry.group_versions().items():
        if _prefix(gv) != path.strip("/"):
            continue
        paths: dict = {}
        for kind in kinds:
            base = f"/{_prefix(gv)}/" + (f"namespaces/{{namespace}}/{kind.plural}"
                                         if kind.namespaced else kind.plural)
            paths[base] = {"get": _op(kind, "list", gv=gv), "post": _op(kind, "post", gv=gv)}
            item = f"{base}/{{name}}"
            paths[item] = {"get": _op(kind, "get", gv=gv), "put": _op(kind, "put", gv=gv),
                           "patch": _op(kind, "patch", gv=gv), "delete": _op(kind, "delete", gv=gv)}
            for sub in kind.subresources:
                paths[f"{item}/{sub}"] = {"get": _op(kind, "get", gv=gv, sub=sub),
                                          "put": _op(kind, "put", gv=gv, sub=sub),
                                          "patch": _op(kind, "patch", gv=gv, sub=sub)}
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes (fed-dns)",
                                             "version": "v1.31.0"},
                "paths": paths, "components": {"schemas": {}}}
    return None


def document_bytes(registry: Registry, path: str) -> bytes | None:
    doc = document(registry, path)
    return None if doc is None else json.dumps(doc, separators=(",", ":")).encode()
