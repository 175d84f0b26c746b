"""Kubernetes Service + EndpointSlices (JSON dicts) -> what DNS publishes. Pure (naming.md).

`service_view` decides, for one Service and the EndpointSlices labelled with its name,
whether it is exported, which addresses its publish mode selects, whether it is ready, and
whether every name that would reach a DNS label is valid. The watcher owns the objects and
calls this on every change of either; nothing here does I/O.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from fed_dns.model import Backend, Port, Publish, ServiceKey, ServiceView
from fed_dns.records.names import check_label

EXPORT_ANNOTATION = "fed-dns.io/export"
PUBLISH_ANNOTATION = "fed-dns.io/publish"
PROBE_ANNOTATION = "fed-dns.io/probe"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
IP_ADDRESS_TYPES = frozenset({"IPv4", "IPv6"})


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchOptions:
    """How a member is watched and what of it is exported (config: publish, export, namespaces)."""

    publish: Publish = Publish.AUTO
    export_all: bool = False
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ("kube-system",)
    inactivity_timeout: float = 60.0  # seconds without an event or bookmark: the stream is dead
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    bookmarks: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """An exported object that is not published because a name in it is not a DNS label.

    `name` is `namespace/name`; `reason` says which field and why, never the value, so it can
    be counted by reason without unbounded cardinality.
    """

    cluster: str
    kind: str
    name: str
    reason: str


def service_view(*, service: Mapping, slices: Sequence[Mapping], options: WatchOptions,
                 cluster: str = "") -> ServiceView | Rejection | None:
    """The ServiceView of an exported Service, a Rejection, or None when it is not exported.

    `slices` are the EndpointSlices labelled `kubernetes.io/service-name: <name>` in the
    Service's namespace (IPv4 and IPv6 alike).
    """
    meta = service.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    name = meta.get("name") or ""
    annotations = meta.get("annotations") or {}
    if not is_exported(namespace=namespace, annotations=annotations, options=options):
        return None

    def reject(reason: str) -> Rejection:
        return Rejection(cluster=cluster, kind="Service", name=f"{namespace}/{name}", reason=reason)

    for what, label in (("namespace", namespace), ("service name", name)):
        why = check_label(label)
        if why is not None:
            return reject(f"invalid {what}: {why}")
    mode = publish_mode(annotations=annotations, default=options.publish)
    if mode is None:
        return reject(f"invalid {PUBLISH_ANNOTATION} annotation")

    spec = service.get("spec") or {}
    try:
        backends = select_backends(service=service, slices=slices, mode=mode)
        ready = spec.get("type") == "ExternalName" or any(_ready_endpoints(slices))
    except _BadLabel as bad:
        return reject(str(bad))
    probe = str(annotations.get(PROBE_ANNOTATION) or "").strip()
    return ServiceView(key=ServiceKey(namespace=namespace, name=name), backends=backends,
                       ready=ready, probe=probe or None)


def is_exported(*, namespace: str, annotations: Mapping[str, str], options: WatchOptions) -> bool:
    """`fed-dns.io/export: "true"` exports, `"false"` opts out; else export-all + namespaces."""
    flag = str(annotations.get(EXPORT_ANNOTATION, "")).strip().lower()
    if flag == "true":
        return True
    if flag == "false" or not options.export_all:
        return False
    return (any(fnmatch.fnmatchcase(namespace, p) for p in options.include)
            and not any(fnmatch.fnmatchcase(namespace, p) for p in options.exclude))


def publish_mode(*, annotations: Mapping[str, str], default: Publish) -> Publish | None:
    """The Service's publish mode: its annotation, else the default; None if unknown."""
    value = annotations.get(PUBLISH_ANNOTATION)
    if value is None:
        return default
    try:
        return Publish(str(value).strip().lower())
    except ValueError:
        return None


def select_backends(*, service: Mapping, slices: Sequence[Mapping],
                    mode: Publish) -> tuple[Backend, ...]:
    """The backends `mode` selects, sorted; raises _BadLabel for an invalid port/host name.

    ExternalName Services are a CNAME to spec.externalName whatever the mode (they have no
    addresses to select from).
    """
    spec = service.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    if kind == "ExternalName":
        target = (spec.get("externalName") or "").rstrip(".")
        return (Backend(address=target, ports=service_ports(spec)),) if target else ()
    if mode is Publish.AUTO:
        if kind == "LoadBalancer":
            mode = Publish.LOADBALANCER
        elif spec.get("clusterIP") == "None":
            mode = Publish.ENDPOINTS
        else:
            mode = Publish.CLUSTERIP
    if mode is Publish.ENDPOINTS:
        return endpoint_backends(slices)
    if mode is Publish.LOADBALANCER:
        addresses = load_balancer_addresses(service.get("status") or {})
    else:
        addresses = cluster_ips(spec)
    ports = service_ports(spec)
    return tuple(Backend(address=a, ports=ports) for a in sorted(set(addresses)))


def cluster_ips(spec: Mapping) -> list[str]:
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [ip for ip in ips if ip and ip != "None"]


def load_balancer_addresses(status: Mapping) -> list[str]:
    """Ingress IPs, and ingress hostnames (which become CNAMEs)."""
    out = []
    for ingress in (status.get("loadBalancer") or {}).get("ingress") or ():
        address = ingress.get("ip") or (ingress.get("hostname") or "").rstrip(".")
        if address:
            out.append(address)
    return out


def service_ports(spec: Mapping) -> tuple[Port, ...]:
    return _ports(spec.get("ports") or ())


def endpoint_backends(slices: Iterable[Mapping]) -> tuple[Backend, ...]:
    """Ready endpoint addresses with their pod hostname and the ports of their slices.

    An address found in several slices (the controller splits by port set) gets the union
    of their ports.
    """
    merged: dict[str, tuple[str | None, set[Port]]] = {}
    for endpoint, ports in _ready_endpoints(slices):
        hostname = endpoint.get("hostname") or None
        if hostname is not None and (why := check_label(hostname)) is not None:
            raise _BadLabel(f"invalid endpoint hostname: {why}")
        for address in endpoint.get("addresses") or ():
            known_host, known_ports = merged.setdefault(address, (hostname, set()))
            known_ports.update(ports)
            if known_host is None and hostname is not None:
                merged[address] = (hostname, known_ports)
    return tuple(Backend(address=address, hostname=host, ports=tuple(sorted(ports)))
                 for address, (host, ports) in sorted(merged.items()))


def is_ready(endpoint: Mapping) -> bool:
    """conditions.ready; unset means ready (the API says to read "unknown" as ready)."""
    return (endpoint.get("conditions") or {}).get("ready") is not False


def _ready_endpoints(slices: Iterable[Mapping]) -> Iterable[tuple[Mapping, tuple[Port, ...]]]:
    for s in slices:
        if s.get("addressType", "IPv4") not in IP_ADDRESS_TYPES:
            continue
        ports = None
        for endpoint in s.get("endpoints") or ():
            if endpoint.get("addresses") and is_ready(endpoint):
                if ports is None:
                    ports = _ports(s.get("ports") or ())
                yield endpoint, ports


def _ports(raw: Iterable[Mapping]) -> tuple[Port, ...]:
    out = set()
    for p in raw:
        name = p.get("name") or ""
        if name and (why := check_label(name)) is not None:
            raise _BadLabel(f"invalid port name: {why}")
        if p.get("port") is None:
            continue
        out.add(Port(name=name, port=int(p["port"]), protocol=p.get("protocol") or "TCP"))
    return tuple(sorted(out))


class _BadLabel(ValueError):
    """A port or host name that cannot become a DNS label (caught into a Rejection)."""
