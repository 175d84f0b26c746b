"""A member's Services and EndpointSlices, indexed so a change recomputes only its Service.

Plain data and dict updates, no I/O: the watcher applies events and re-lists of compact
objects (compact.py) here and gets back the ServiceKeys whose view may have changed.
"""

from __future__ import annotations

from collections.abc import Iterable

from fed_dns.model import ServiceKey, ServiceView
from fed_dns.watch import decide
from fed_dns.watch.compact import ENDPOINT_SLICES, SERVICES, Compact, CompactService, CompactSlice
from fed_dns.watch.parse import Rejection, WatchOptions

__all__ = ["ENDPOINT_SLICES", "SERVICES", "ClusterObjects"]


class ClusterObjects:
    """The current Services and EndpointSlices of one member, slices grouped by Service (in
    the order they last changed)."""

    def __init__(self) -> None:
        self.services: dict[ServiceKey, CompactService] = {}
        self.slices: dict[tuple[str, str], CompactSlice] = {}
        self._by_service: dict[ServiceKey, tuple[CompactSlice, ...]] = {}

    def apply(self, *, kind: str, type: str, obj: Compact) -> set[ServiceKey]:
        """An ADDED/MODIFIED/DELETED event of `obj` (a CompactService or a CompactSlice as
        `kind` says); returns the Services it may have changed."""
        if kind == SERVICES:
            if type == "DELETED":
                self.services.pop(obj.key, None)
            else:
                self.services[obj.key] = obj
            return {obj.key}
        ident = (obj.namespace, obj.name)
        old = self.slices.pop(ident, None)
        affected = set()
        if old is not None and (was := old.owner) is not None:
            group = tuple(s for s in self._by_service.get(was, ()) if s.name != obj.name)
            if group:
                self._by_service[was] = group
            else:
                self._by_service.pop(was, None)
            affected.add(was)
        if type != "DELETED":
            self.slices[ident] = obj
            if (now := obj.owner) is not None:
                self._by_service[now] = self._by_service.get(now, ()) + (obj,)
                affected.add(now)
        return affected

    def replace(self, *, kind: str, objects: Iterable[Compact]) -> set[ServiceKey]:
        """A full re-list: objects gone since are deleted, new or changed ones applied."""
        current: dict = self.services if kind == SERVICES else self.slices
        fresh = {_ident(obj): obj for obj in objects}
        affected: set[ServiceKey] = set()
        for ident in [i for i in current if i not in fresh]:
            affected |= self.apply(kind=kind, type="DELETED", obj=current[ident])
        for ident, obj in fresh.items():
            old = current.get(ident)
            if old is None or old.resource_version != obj.resource_version or not obj.resource_version:
                affected |= self.apply(kind=kind, type="MODIFIED", obj=obj)
        return affected

    def view_of(self, *, key: ServiceKey, options: WatchOptions,
                cluster: str) -> ServiceView | Rejection | None:
        service = self.services.get(key)
        if service is None:
            return None
        return decide.service_view(service=service, slices=self._by_service.get(key, ()), options=options,
                                   cluster=cluster)


def _ident(obj: Compact) -> ServiceKey | tuple[str, str]:
    return obj.key if isinstance(obj, CompactService) else (obj.namespace, obj.name)
