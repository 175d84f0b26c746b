"""Server-side printing: the meta.k8s.io/v1 Table that `kubectl get` asks for.

Columns come from the Kind (`columns`, `cells`) after Name, with Age where the kind's real
server prints it (`age_at`: last for kube-apiserver's kinds, first for kubefed's CRDs).
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from fed_dns.apiserver.kinds import Kind


def wanted(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def age(timestamp: str | None, *, now: datetime | None = None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    s = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    if s < 120:
        return f"{s}s"
    if s < 3600 * 3:
        return f"{s // 60}m"
    if s < 86400 * 2:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _at(kind: Kind, columns: list, age: object) -> list:
    """`columns` with Age put where the kind's real server prints it."""
    at = len(columns) if kind.age_at is None else kind.age_at
    return [*columns[:at], age, *columns[at:]]


def table(kind: Kind, objs: list[dict], *, resource_version: str | None) -> dict:
    columns = [{"name": "Name", "type": "string", "format": "name", "description": "Name",
                "priority": 0}]
    columns += _at(kind, [{"name": n, "type": t, "format": "", "description": n, "priority": 0}
                          for n, t in kind.columns],
                   {"name": "Age", "type": "string", "format": "", "description": "Age",
                    "priority": 0})
    rows = []
    for obj in objs:
        meta = obj.get("metadata") or {}
        cells = kind.cells(obj) if kind.cells is not None else []
        rows.append({
            "cells": [meta.get("name", ""), *_at(kind, cells, age(meta.get("creationTimestamp")))],
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                       "metadata": meta},
        })
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": resource_version} if resource_version else {},
            "columnDefinitions": columns, "rows": rows}
