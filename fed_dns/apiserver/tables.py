"""Server-side printing: the meta.k8s.io/v1 Table that `kubectl get` asks for."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from fed_dns.sim.kinds import DEPLOYMENT, ENDPOINT_SLICE, NAMESPACE, SERVICE, Kind


def wanted(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    s = max(0, int((datetime.now(UTC) - then).total_seconds()))
    if s < 120:
        return f"{s}s"
    if s < 3600 * 3:
        return f"{s // 60}m"
    if s < 86400 * 2:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _ports(ports: list | None) -> str:
    out = []
    for p in ports or []:
        text = f"{p.get('port', '')}"
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        out.append(f"{text}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _service(obj: dict) -> list:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    ingress = (st.get("loadBalancer") or {}).get("ingress") or []
    external = [i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")]
    if spec.get("type") == "ExternalName":
        external = [spec.get("externalName", "")]
    elif not external:
        external = ["<pending>"] if spec.get("type") == "LoadBalancer" else ["<none>"]
    return [spec.get("type", ""), spec.get("clusterIP", "<none>"), ",".join(external),
            _ports(spec.get("ports"))]


def _slice(obj: dict) -> list:
    ports = ",".join(str(p.get("port", "")) for p in obj.get("ports") or []) or "<unset>"
    addresses = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    shown = ",".join(addresses[:3]) + (f" + {len(addresses) - 3} more..." if len(addresses) > 3
                                        else "")
    return [obj.get("addressType", ""), ports, shown or "<unset>"]


def _deployment(obj: dict) -> list:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    return [f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            st.get("updatedReplicas", 0), st.get("availableReplicas", 0)]


def _namespace(obj: dict) -> list:
    return [(obj.get("status") or {}).get("phase", "Active")]


_COLUMNS = {
    SERVICE: (("Type", "string"), ("Cluster-IP", "string"), ("External-IP", "string"),
              ("Port(s)", "string")),
    ENDPOINT_SLICE: (("AddressType", "string"), ("Ports", "string"), ("Endpoints", "string")),
    DEPLOYMENT: (("Ready", "string"), ("Up-to-date", "integer"), ("Available", "integer")),
    NAMESPACE: (("Status", "string"),),
}
_CELLS = {SERVICE: _service, ENDPOINT_SLICE: _slice, DEPLOYMENT: _deployment,
          NAMESPACE: _namespace}


def table(kind: Kind, objs: list[dict], *, resource_version: str | None) -> dict:
    columns = [{"name": "Name", "type": "string", "format": "name", "description": "Name",
                "priority": 0}]
    columns += [{"name": n, "type": t, "format": "", "description": n, "priority": 0}
                for n, t in _COLUMNS[kind]]
    columns.append({"name": "Age", "type": "string", "format": "", "description": "Age",
                    "priority": 0})
    rows = []
    for obj in objs:
        meta = obj.get("metadata") or {}
        rows.append({
            "cells": [meta.get("name", ""), *_CELLS[kind](obj), age(meta.get("creationTimestamp"))],
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                       "metadata": meta},
        })
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": resource_version} if resource_version else {},
            "columnDefinitions": columns, "rows": rows}
