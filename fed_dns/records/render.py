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
from fed_dns.model.addresses import canonical_ipv4
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


NO_REJECTIONS: frozenset[Rejection] = frozenset()


def rejections(found: Iterable[Rejection]) -> frozenset[Rejection]:
    """`found` frozen; none: one shared empty frozenset. Each empty frozenset is 216 bytes
    of its own, and the cached parts of 10 x 5,000 Services held 100,000 of them (21 MB)."""
    return frozenset(found) if found else NO_REJECTIONS


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """Where and how a zone's records are written: derived once from ZoneSettings."""

    zone: str  # normalized, trailing dot
    base: str  # the zone's etcd key (no trailing slash)
    ttl: int
    owner: str
    serve_all: bool  # all_unhealthy is serve-all


def layout(settings: ZoneSettings) -> Layout:
    """The Layout of `settings`; ValueError for a bad zone or prefix."""
    zone = normalize_zone(settings.zone)
    return Layout(zone=zone, base=name_to_key(name=zone, prefix=settings.prefix), ttl=settings.ttl,
                  owner=owner_of(settings),
                  serve_all=settings.all_unhealthy == AllUnhealthy.SERVE_ALL)


@dataclass(frozen=True, slots=True, kw_only=True)
class Part:
    """One Service in one publishing cluster, before the Service-wide serve-all choice.

    `valid` are its publishable backends, `healthy` those that pass; `rejected` what was
    refused on the way (its labels, or backends). `named` is False for a Service whose
    namespace or name is not a label: nothing of it is published.
    """

    cluster: str
    key: ServiceKey
    valid: tuple[_Leaf, ...] = ()
    healthy: tuple[_Leaf, ...] = ()
    rejected: frozenset[Rejection] = frozenset()
    named: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Emitted:
    """The records of one Part (each key once, in the order written) and what `put` refused."""

    records: tuple[tuple[str, Record], ...] = ()
    rejected: frozenset[Rejection] = frozenset()
    fallback: str | None = None  # the target of the fallback CNAME, when one was written


def owner_of(settings: ZoneSettings) -> str:
    """The owner id written into (and required of) every fed-dns key: default `fed-dns/<zone>`."""
    return settings.owner_id or f"fed-dns/{normalize_zone(settings.zone)}"


def publishes(*, health: Health | str, view: ClusterView | None) -> bool:
    """Whether a cluster (with a valid label) publishes, else its keys are kept as they are:
    UNREACHABLE publishes (failover), READY once its view is synced, UNKNOWN never."""
    return health == Health.UNREACHABLE or (health == Health.READY and view is not None and view.synced)


def cluster_rejection(cluster: str) -> Rejection | None:
    """Why a cluster name cannot be published, if it cannot."""
    reason = check_label(cluster)
    return None if reason is None else Rejection(cluster=cluster, kind="cluster", name=cluster, reason=reason)


def serve_all(*, layout: Layout, kept: bool, healthy: bool) -> bool:
    """Fail open for a Service: serve-all is configured, no member that still holds it is of
    unknown state (`kept`), and none of its publishing clusters has a healthy backend."""
    return layout.serve_all and not kept and not healthy


class _Builder:
    """Collects the records and rejections of one Part; every key goes through `put`."""

    def __init__(self, layout: Layout, cluster: str) -> None:
        self.layout = layout
        self.cluster = cluster
        self.records: dict[str, Record] = {}
        self.rejected: set[Rejection] = set()

    def reject(self, kind: str, name: str, reason: str) -> None:
        self.rejected.add(Rejection(cluster=self.cluster, kind=kind, name=name, reason=reason))

    def put(self, labels: Iterable[str], *, host: str, port: int) -> bool:
        """Write `host:port` at the name `labels` (top-down, below the zone)."""
        labels = tuple(labels)
        lay = self.layout
        name = ".".join(reversed(labels)) + "." + lay.zone
        if len(name) - 1 > MAX_NAME:
            self.reject("name", name, f"longer than {MAX_NAME} bytes")
            return False
        record = Record(host=host, port=port, ttl=lay.ttl, owner=lay.owner, cluster=self.cluster)
        key = "/".join((lay.base, *labels))
        existing = self.records.setdefault(key, record)
        if existing != record:
            self.reject("duplicate", name, f"{host} and {existing.host} share this name")
        return True

    def fallback(self, key: ServiceKey) -> str | None:
        target = f"{key.name}.{key.namespace}.{self.layout.zone[:-1]}"
        written = self.put((key.namespace, key.name, self.cluster), host=target, port=-1)
        return target if written else None

    def leaves(self, key: ServiceKey, leaves: Iterable[_Leaf]) -> None:
        cluster = self.cluster
        for leaf in leaves:
            ports = leaf.backend.ports
            self.put((key.namespace, key.name, cluster, *leaf.ident),
                     host=leaf.host, port=ports[0].port if ports else 0)
            for port in ports:
                if port.name and self._valid_port(port.name, port.protocol):
                    labels = (key.namespace, key.name, f"_{port.protocol.lower()}",
                              f"_{port.name}", cluster, *leaf.ident)
                    self.put(labels, host=leaf.host, port=port.port)

    def _valid_port(self, name: str, protocol: str) -> bool:
        for kind, label in (("port", name), ("protocol", protocol.lower())):
            reason = check_label(label)
            if reason is not None:
                self.reject(kind, label, reason)
                return False
        return True


def _host(address: str) -> tuple[str, str | None]:
    """The address as written in a record (canonical IP, or lower-case name without the
    trailing dot, as CoreDNS adds it back) and why it is unusable, if it is."""
    if canonical_ipv4(address):
        return address, None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        name = address.lower()
        name = name[:-1] if name.endswith(".") else name
        return name, check_name(name)
    if "%" in address:
        return address, "scoped IPv6 address"
    return str(ip), None


def _valid_leaves(cluster: str, view: ServiceView, rejected: set[Rejection]) -> list[_Leaf]:
    """The backends of a Service that can be published at all, with their `<id>`s.

    A pod hostname with several addresses (dual stack) gets one key per address below it.
    """
    hosts: list[tuple[Backend, str]] = []
    for backend in sorted(view.backends, key=lambda b: (b.address, b.hostname or "", b.ports)):
        host, reason = _host(backend.address)
        if reason is not None:
            rejected.add(Rejection(cluster=cluster, kind="address", name=backend.address, reason=reason))
            continue
        if backend.hostname is not None and (reason := check_label(backend.hostname)):
            rejected.add(Rejection(cluster=cluster, kind="hostname", name=backend.hostname, reason=reason))
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


def service_part(
    *, cluster: str, view: ServiceView, health: Health | str, probes: Mapping[str, bool],
) -> Part:
    """A Service (`view.key`) in one publishing cluster of state `health`; `probes` are the
    data-plane results of its backends there, by address."""
    key = view.key
    for kind, label in (("namespace", key.namespace), ("service", key.name)):
        if reason := check_label(label):
            rejection = Rejection(cluster=cluster, kind=kind, name=str(key), reason=reason)
            return Part(cluster=cluster, key=key, rejected=frozenset((rejection,)), named=False)
    rejected: set[Rejection] = set()
    valid = tuple(_valid_leaves(cluster, view, rejected))
    healthy = tuple(leaf for leaf in valid
                    if _passes(health=health, view=view, probe=probes.get(leaf.backend.address)))
    return Part(cluster=cluster, key=key, valid=valid, healthy=healthy, rejected=rejections(rejected))


def passes_none(*, health: Health | str, view: ServiceView, probes: Mapping[str, bool]) -> bool:
    """Whether, known without looking at its backends, none of `view`'s passes in a cluster of
    state `health` (see _passes): its part's healthy leaves are none, whatever they are."""
    if health == Health.READY:
        return not view.ready
    return True not in probes.values()


def emit(*, layout: Layout, part: Part, serve_all: bool) -> Emitted:
    """The records of a Part: its healthy leaves (all valid ones with `serve_all`), else the
    fallback CNAME to the global name."""
    if not part.named:
        return Emitted()
    leaves = part.valid if serve_all else part.healthy
    if not leaves:
        return emit_fallback(layout=layout, cluster=part.cluster, key=part.key)
    build = _Builder(layout, part.cluster)
    build.leaves(part.key, leaves)
    return Emitted(records=tuple(build.records.items()), rejected=rejections(build.rejected))


def emit_fallback(*, layout: Layout, cluster: str, key: ServiceKey) -> Emitted:
    """The records of a named Part with no leaves to publish: the fallback CNAME alone."""
    build = _Builder(layout, cluster)
    fallback = build.fallback(key)
    return Emitted(records=tuple(build.records.items()), rejected=rejections(build.rejected),
                   fallback=fallback)


def probes_by_pair(probes: Probes) -> dict[tuple[str, ServiceKey], dict[str, bool]]:
    """Probe results grouped per (cluster, Service): address -> result."""
    out: dict[tuple[str, ServiceKey], dict[str, bool]] = {}
    for (cluster, key, address), result in probes.items():
        out.setdefault((cluster, key), {})[address] = result
    return out


def render(
    *,
    views: Mapping[str, ClusterView],
    health: Mapping[str, Health],
    settings: ZoneSettings,
    probes: Probes | None = None,
) -> Rendered:
    """The desired zone for these views; ValueError only for a bad zone or prefix in `settings`."""
    lay = layout(settings)
    rejected: set[Rejection] = set()
    publishing: dict[str, Health] = {}
    keep: set[str] = set()
    for cluster in sorted(set(views) | set(health)):
        if rejection := cluster_rejection(cluster):
            rejected.add(rejection)
            continue
        state = health.get(cluster, Health.UNKNOWN)
        if publishes(health=state, view=views.get(cluster)):
            publishing[cluster] = state
        else:
            keep.add(cluster)

    kept_services = {key for c in keep if c in views for key in views[c].services}
    by_service: dict[ServiceKey, dict[str, ServiceView]] = {}
    for cluster in publishing:
        view = views.get(cluster, ClusterView(cluster=cluster))
        for service in view.services.values():
            by_service.setdefault(service.key, {})[cluster] = service

    by_pair = probes_by_pair(probes or {})
    records: dict[str, Record] = {}
    for key in sorted(by_service):
        parts = [service_part(cluster=cluster, view=view, health=publishing[cluster],
                              probes=by_pair.get((cluster, key), {}))
                 for cluster, view in by_service[key].items()]
        all_ = serve_all(layout=lay, kept=key in kept_services,
                         healthy=any(part.healthy for part in parts))
        for part in parts:
            out = emit(layout=lay, part=part, serve_all=all_)
            records.update(out.records)
            rejected |= part.rejected | out.rejected

    zone = DesiredZone(settings=settings, records=dict(sorted(records.items())),
                       keep_clusters=frozenset(keep))
    return Rendered(zone=zone, rejected=tuple(sorted(rejected)))
