"""A member's Services and EndpointSlices, indexed so a change recomputes only its Service.

Plain data and dict updates, no I/O: the watcher applies events and re-lists here and gets
back the ServiceKeys whose view may have changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fed_dns.model import ServiceKey, ServiceView
from fed_dns.watch.parse import SERVICE_NAME_LABEL, Rejection, WatchOptions, service_view

SERVICES = "services"
ENDPOINT_SLICES = "endpointslices"


def slim(*, kind: str, obj: dict) -> dict:
    """Only the fields parsing reads (drops managedFields, status conditions, topology...)."""
    meta = obj.get("metadata") or {}
    small_meta = {k: meta[k] for k in ("name", "namespace", "resourceVersion", "annotations", "labels")
                  if k in meta}
    if kind == SERVICES:
        spec = obj.get("spec") or {}
        lb = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress")
        return {"metadata": small_meta,
                "spec": {k: spec[k] for k in ("type", "clusterIP", "clusterIPs", "ports", "externalName")
                         if k in spec},
                "status": {"loadBalancer": {"ingress": lb}} if lb else {}}
    return {"metadata": small_meta, "addressType": obj.get("addressType"),
            "ports": obj.get("ports"),
            "endpoints": [{k: e[k] for k in ("addresses", "conditions", "hostname") if k in e}
                          for e in obj.get("endpoints") or ()]}


def object_id(obj: Mapping) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def resource_version(obj: Mapping) -> str:
    return (obj.get("metadata") or {}).get("resourceVersion") or ""


def owner(slice_: Mapping) -> ServiceKey | None:
    meta = slice_.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return ServiceKey(namespace=meta.get("namespace") or "", name=name) if name else None


class ClusterObjects:
    """The current Services and EndpointSlices of one member, slices grouped by Service."""

    def __init__(self) -> None:
        self.services: dict[ServiceKey, dict] = {}
        self.slices: dict[tuple[str, str], dict] = {}
        self._by_service: dict[ServiceKey, dict[str, dict]] = {}

    def apply(self, *, kind: str, type: str, obj: dict) -> set[ServiceKey]:
        """An ADDED/MODIFIED/DELETED event; returns the Services it may have changed."""
        if kind == SERVICES:
            namespace, name = object_id(obj)
            key = ServiceKey(namespace=namespace, name=name)
            if type == "DELETED":
                self.services.pop(key, None)
            else:
                self.services[key] = obj
            return {key}
        ident = object_id(obj)
        old = self.slices.pop(ident, None)
        affected = set()
        if old is not None and (was := owner(old)) is not None:
            group = self._by_service.get(was, {})
            group.pop(ident[1], None)
            if not group:
                self._by_service.pop(was, None)
            affected.add(was)
        if type != "DELETED":
            self.slices[ident] = obj
            if (now := owner(obj)) is not None:
                self._by_service.setdefault(now, {})[ident[1]] = obj
                affected.add(now)
        return affected

    def replace(self, *, kind: str, objects: Iterable[dict]) -> set[ServiceKey]:
        """A full re-list: objects gone since are deleted, new or changed ones applied."""
        current = self.services if kind == SERVICES else self.slices
        fresh = {}
        for obj in objects:
            namespace, name = object_id(obj)
            fresh[ServiceKey(namespace=namespace, name=name) if kind == SERVICES else (namespace, name)] = obj
        affected: set[ServiceKey] = set()
        for ident in [i for i in current if i not in fresh]:
            affected |= self.apply(kind=kind, type="DELETED", obj=current[ident])
        for ident, obj in fresh.items():
            old = current.get(ident)
            if old is None or resource_version(old) != resource_version(obj) or not resource_version(obj):
                affected |= self.apply(kind=kind, type="MODIFIED", obj=obj)
        return affected

    def view_of(self, *, key: ServiceKey, options: WatchOptions,
                cluster: str) -> ServiceView | Rejection | None:
        service = self.services.get(key)
        if service is None:
            return None
        slices = tuple(self._by_service.get(key, {}).values())
        return service_view(service=service, slices=slices, options=options, cluster=cluster)
