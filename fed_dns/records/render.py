"""Cluster views + health -> the zone fed-dns wants in etcd (naming.md). Pure.

Per exported Service, below `<prefix>/<reversed zone>/<ns>/<svc>`:

- `<cluster>/<id>`: one leaf per published backend of a cluster (`<id>` is the pod hostname
  of a headless endpoint, else `backend_id(address)`); an address is an A/AAAA record, a
  DNS name (ExternalName, load-balancer hostname) a CNAME;
- `_<proto>/_<port>/<cluster>/<id>`: the same leaves again for each named port (SRV);
- `<cluster>`: the fallback CNAME to the global name, for a cluster with nothing healthy
  (CoreDNS drops it from the global answer as a loop, so it only serves the cluster name).

Clusters whose health is unknown (or READY without a synced view) publish nothing and are
listed in `keep_clusters`, so that `plan` leaves their keys alone.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fed_dns.model import (
    AllUnhealthy,
    Backend,
    ClusterView,
    DesiredZone,
    Health,
    Record,
    ServiceKey,
    ServiceView,
    ZoneSettings,
)
from fed_dns.records.codec import backend_id
from fed_dns.records.names import MAX_NAME, check_label, check_name, name_to_key, normalize_zone

Probes = Mapping[tuple[str, ServiceKey, str], bool]


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Rejection:
    """Something that was not published, and why (logged once and counted by the caller).

    `kind`: cluster, namespace, service, hostname, port, protocol, address, name (too
    long) or duplicate (two backends on one key; the first in sorted order wins).
    """

    cluster: str
    kind: str
    name: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Rendered:
    zone: DesiredZone
    rejected: tuple[Rejection, ...] = ()


@dataclass(frozen=True, slots=True)
class _Leaf:
    """A valid backend: its host as written, its `<id>` labels and its ports."""

    host: str
    ident: tuple[str, ...]
    backend: Backend


def owner_of(settings: ZoneSettings) -> str:
    """The owner id written into (and required of) every fed-dns key: default `fed-dns/<zone>`."""
    return settings.owner_id or f"fed-dns/{normalize_zone(settings.zone)}"


class _Builder:
    """Collects records and rejections for one render; every key goes through `put`."""

    def __init__(self, settings: ZoneSettings) -> None:
        self.zone = normalize_zone(settings.zone)
        self.base = name_to_key(name=self.zone, prefix=settings.prefix)
        self.ttl = settings.ttl
        self.owner = owner_of(settings)
        self.records: dict[str, Record] = {}
        self.rejected: set[Rejection] = set()

    def reject(self, cluster: str, kind: str, name: str, reason: str) -> None:
        self.rejected.add(Rejection(cluster=cluster, kind=kind, name=name, reason=reason))

    def put(self, cluster: str, labels: Iterable[str], *, host: str, port: int) -> None:
        """Write `host:port` at the name `labels` (top-down, below the zone)."""
        labels = tuple(labels)
        name = ".".join(reversed(labels)) + "." + self.zone
        if len(name) - 1 > MAX_NAME:
            self.reject(cluster, "name", name, f"longer than {MAX_NAME} bytes")
            return
        record = Record(host=host, port=port, ttl=self.ttl, owner=self.owner, cluster=cluster)
        key = "/".join((self.base, *labels))
        existing = self.records.setdefault(key, record)
        if existing != record:
            self.reject(cluster, "duplicate", name, f"{host} and {existing.host} share this name")

    def fallback(self, cluster: str, key: ServiceKey) -> None:
        target = f"{key.name}.{key.namespace}.{self.zone[:-1]}"
        self.put(cluster, (key.namespace, key.name, cluster), host=target, port=-1)

    def leaves(self, cluster: str, key: ServiceKey, leaves: Iterable[_Leaf]) -> None:
        for leaf in leaves:
            ports = leaf.backend.ports
            self.put(cluster, (key.namespace, key.name, cluster, *leaf.ident),
                     host=leaf.host, port=ports[0].port if ports else 0)
            for port in ports:
                if port.name and self._valid_port(cluster, port.name, port.protocol):
                    labels = (key.namespace, key.name, f"_{port.protocol.lower()}",
                              f"_{port.name}", cluster, *leaf.ident)
                    self.put(cluster, labels, host=leaf.host, port=port.port)

    def _valid_port(self, cluster: str, name: str, protocol: str) -> bool:
        for kind, label in (("port", name), ("protocol", protocol.lower())):
            reason = check_label(label)
            if reason is not None:
                self.reject(cluster, kind, label, reason)
                return False
        return True


def _host(address: str) -> tuple[str, str | None]:
    """The address as written in a record (canonical IP, or lower-case name without the
    trailing dot, as CoreDNS adds it back) and why it is unusable, if it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        name = address.lower()
        name = name[:-1] if name.endswith(".") else name
        return name, check_name(name)
    if "%" in address:
        return address, "scoped IPv6 address"
    return str(ip), None


def _valid_leaves(build: _Builder, cluster: str, view: ServiceView) -> list[_Leaf]:
    """The backends of a Service that can be published at all, with their `<id>`s.

    A pod hostname with several addresses (dual stack) gets one key per address below it.
    """
    hosts: list[tuple[Backend, str]] = []
    for backend in sorted(view.backends, key=lambda b: (b.address, b.hostname or "", b.ports)):
        host, reason = _host(backend.address)
        if reason is not None:
            build.reject(cluster, "address", backend.address, reason)
            continue
        if backend.hostname is not None and (reason := check_label(backend.hostname)):
            build.reject(cluster, "hostname", backend.hostname, reason)
            backend = Backend(address=backend.address, ports=backend.ports)
        hosts.append((backend, host))
    addresses = Counter(name for name, _ in {(b.hostname, host) for b, host in hosts} if name)
    leaves = []
    for backend, host in hosts:
        if backend.hostname is None:
            ident: tuple[str, ...] = (backend_id(host),)
        elif addresses[backend.hostname] == 1:
            ident = (backend.hostname,)
        else:
            ident = (backend.hostname, backend_id(host))
        leaves.append(_Leaf(host=host, ident=ident, backend=backend))
    return leaves


def _passes(*, health: Health, view: ServiceView, probe: bool | None) -> bool:
    """READY: the Service is ready and no probe failed. UNREACHABLE: a probe passed."""
    if health == Health.READY:  # == so that plain strings from config work too
        return view.ready and probe is not False
    return probe is True


def render(
    *,
    views: Mapping[str, ClusterView],
    health: Mapping[str, Health],
    settings: ZoneSettings,
    probes: Probes | None = None,
) -> Rendered:
    """The desired zone for these views; ValueError only for a bad zone or prefix in `settings`."""
    build = _Builder(settings)
    probes = probes or {}
    publishing: dict[str, Health] = {}
    keep: set[str] = set()
    for cluster in sorted(set(views) | set(health)):
        if reason := check_label(cluster):
            build.reject(cluster, "cluster", cluster, reason)
            continue
        state = health.get(cluster, Health.UNKNOWN)
        view = views.get(cluster)
        if state == Health.UNREACHABLE or (state == Health.READY and view is not None and view.synced):
            publishing[cluster] = state
        else:
            keep.add(cluster)

    kept_services = {key for c in keep if c in views for key in views[c].services}
    by_service: dict[ServiceKey, dict[str, ServiceView]] = {}
    for cluster in publishing:
        view = views.get(cluster, ClusterView(cluster=cluster))
        for service in view.services.values():
            if _valid_service(build, cluster, service.key):
                by_service.setdefault(service.key, {})[cluster] = service

    for key in sorted(by_service):
        _render_service(build, key, by_service[key], publishing, probes,
                        serve_all=(settings.all_unhealthy == AllUnhealthy.SERVE_ALL
                                   and key not in kept_services))

    zone = DesiredZone(settings=settings, records=dict(sorted(build.records.items())),
                       keep_clusters=frozenset(keep))
    return Rendered(zone=zone, rejected=tuple(sorted(build.rejected)))


def _valid_service(build: _Builder, cluster: str, key: ServiceKey) -> bool:
    for kind, label in (("namespace", key.namespace), ("service", key.name)):
        if reason := check_label(label):
            build.reject(cluster, kind, str(key), reason)
            return False
    return True


def _render_service(
    build: _Builder,
    key: ServiceKey,
    clusters: Mapping[str, ServiceView],
    health: Mapping[str, Health],
    probes: Probes,
    *,
    serve_all: bool,
) -> None:
    """One Service in every publishing cluster: healthy leaves, else the fallback.

    With `serve_all`, when no cluster has a healthy backend, every valid last-known
    backend is published instead (fail open).
    """
    valid = {cluster: _valid_leaves(build, cluster, view) for cluster, view in sorted(clusters.items())}
    healthy = {
        cluster: [leaf for leaf in leaves
                  if _passes(health=health[cluster], view=clusters[cluster],
                             probe=probes.get((cluster, key, leaf.backend.address)))]
        for cluster, leaves in valid.items()
    }
    chosen = valid if serve_all and not any(healthy.values()) else healthy
    for cluster, leaves in chosen.items():
        if leaves:
            build.leaves(cluster, key, leaves)
        else:
            build.fallback(cluster, key)
