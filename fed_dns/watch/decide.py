"""A Service's view from its compact forms: `parse.service_view`'s decision, nothing re-parsed.

The same rules in the same order as `parse.service_view` (which stays the definition; a
hypothesis test holds the two equal): export, names, publish mode, addresses, readiness.
Every value was validated when its object arrived (compact.py); a `Flaw` read here becomes
the Rejection `parse.service_view` would have returned at that point. Pure, no I/O.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TypeVar

from fed_dns.model import Backend, Port, Publish, ServiceView
from fed_dns.watch.compact import EXTERNAL_NAME, LOAD_BALANCER, CompactService, CompactSlice, Flaw
from fed_dns.watch.parse import Rejection, WatchOptions, exported

T = TypeVar("T")


class _Rejected(Exception):
    def __init__(self, flaw: Flaw) -> None:
        super().__init__(flaw.detail)
        self.flaw = flaw


def service_view(*, service: CompactService, slices: Sequence[CompactSlice], options: WatchOptions,
                 cluster: str = "") -> ServiceView | Rejection | None:
    """The ServiceView of an exported Service, a Rejection, or None when it is not exported.

    `slices` are the Service's EndpointSlices, in the order the index keeps them.
    """
    key = service.key
    if not exported(flag=service.export, namespace=key.namespace, options=options):
        return None
    try:
        _ok(service.names)
        mode = _ok(service.publish) or options.publish
        backends = _backends(service=service, slices=slices, mode=mode)
        ready = service.kind == EXTERNAL_NAME or _any_ready(slices)
    except _Rejected as rejected:
        return Rejection(cluster=cluster, kind="Service", name=str(key), reason=rejected.flaw.reason,
                         detail=rejected.flaw.detail)
    return ServiceView(key=key, backends=backends, ready=ready, probe=service.probe)


def _backends(*, service: CompactService, slices: Sequence[CompactSlice], mode: Publish) -> tuple[Backend, ...]:
    """parse.select_backends on compact forms."""
    if service.kind == EXTERNAL_NAME:
        if service.external is None:
            return ()
        return (Backend(address=_ok(service.external), ports=_ok(service.ports)),)
    for s in slices:
        _ok(s.bad_address)
    if mode is Publish.AUTO:
        if service.kind == LOAD_BALANCER:
            mode = Publish.LOADBALANCER
        elif service.headless:
            mode = Publish.ENDPOINTS
        else:
            mode = Publish.CLUSTERIP
    if mode is Publish.ENDPOINTS:
        return _endpoint_backends(slices)
    addresses = _ok(service.ingress if mode is Publish.LOADBALANCER else service.cluster_ips)
    ports = _ok(service.ports)
    return tuple(Backend(address=a, ports=ports) for a in sorted(set(addresses)))


def _endpoint_backends(slices: Sequence[CompactSlice]) -> tuple[Backend, ...]:
    """parse.endpoint_backends: ready addresses, each with the union of its slices' ports and
    the first pod hostname it was given."""
    merged: dict[str, tuple[str | None, tuple[Port, ...]]] = {}
    for s in slices:
        if not s.ready:
            continue
        ports = _ok(s.ports)  # sorted, no duplicates: an address of one slice shares its tuple
        for address, hostname in zip(s.ready, s.hostnames or itertools.repeat(None)):
            hostname = _ok(hostname)  # an endpoint's, at its first address: where parse reads it
            known = merged.get(address)
            if known is None:
                merged[address] = (hostname, ports)
            else:
                host, had = known
                merged[address] = (hostname if host is None else host,
                                   had if had is ports else tuple(sorted({*had, *ports})))
    return tuple(Backend(address=address, hostname=host, ports=ports)
                 for address, (host, ports) in sorted(merged.items()))


def _any_ready(slices: Sequence[CompactSlice]) -> bool:
    """Whether an IP slice has a ready endpoint; the first such slice's ports are read (as
    parse.service_view reads them), so a Flaw there rejects."""
    for s in slices:
        if s.ready:
            _ok(s.ports)
            return True
    return False


def _ok(value: T | Flaw) -> T:
    if isinstance(value, Flaw):
        raise _Rejected(value)
    return value
