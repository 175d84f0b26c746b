"""Kubernetes Service + EndpointSlices (JSON dicts) -> what DNS publishes. Pure (naming.md).

`service_view` decides, for one Service and the EndpointSlices labelled with its name,
whether it is exported, which addresses its publish mode selects, whether it is ready, and
whether every name that would reach a DNS label is valid. It is the definition: the watcher
runs the checks of each object once, when it arrives (compact.py, with the functions here),
and decides from those (decide.py); a test holds both to the same results. Nothing here
does I/O.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from fed_dns.model import Backend, Port, Publish, ServiceKey, ServiceView
from fed_dns.model.addresses import canonical_ipv4
from fed_dns.records.names import MAX_NAME, check_label

EXPORT_ANNOTATION = "fed-dns.io/export"
PUBLISH_ANNOTATION = "fed-dns.io/publish"
PROBE_ANNOTATION = "fed-dns.io/probe"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
IP_ADDRESS_TYPES = frozenset({"IPv4", "IPv6"})
_FAMILIES = {"IPv4": ipaddress.IPv4Address, "IPv6": ipaddress.IPv6Address}

# Rejection.reason: a fixed set of codes (metrics and /status count by them); the offending
# value and why it is wrong go to Rejection.detail, for the log only.
INVALID_NAMESPACE = "invalid-namespace"
INVALID_SERVICE_NAME = "invalid-service-name"
INVALID_PUBLISH = "invalid-publish-annotation"
INVALID_PORT_NAME = "invalid-port-name"
INVALID_ENDPOINT_HOSTNAME = "invalid-endpoint-hostname"
INVALID_ENDPOINT_ADDRESS = "invalid-endpoint-address"  # not an IP of the slice's addressType
INVALID_CLUSTER_IP = "invalid-cluster-ip"
INVALID_INGRESS_IP = "invalid-loadbalancer-ip"
INVALID_INGRESS_HOSTNAME = "invalid-loadbalancer-hostname"
INVALID_EXTERNAL_NAME = "invalid-external-name"
REASONS = frozenset({INVALID_NAMESPACE, INVALID_SERVICE_NAME, INVALID_PUBLISH, INVALID_PORT_NAME,
                     INVALID_ENDPOINT_HOSTNAME, INVALID_ENDPOINT_ADDRESS, INVALID_CLUSTER_IP,
                     INVALID_INGRESS_IP, INVALID_INGRESS_HOSTNAME, INVALID_EXTERNAL_NAME})
_SHOWN = 80  # characters of a hostile value kept in a Rejection's detail


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
    """An exported Service not published because a name or address in it is invalid.

    `name` is `namespace/name`; `reason` is one of REASONS (which field), never the value, so
    it can be counted by reason without unbounded cardinality; `detail` says why, with the
    offending value (shortened): for the log, not for a metric label.
    """

    cluster: str
    kind: str
    name: str
    reason: str
    detail: str = ""


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
    spec = service.get("spec") or {}
    try:
        check_service_names(namespace=namespace, name=name)
        mode = annotated_publish(annotations) or options.publish
        backends = select_backends(service=service, slices=slices, mode=mode)
        ready = spec.get("type") == "ExternalName" or any(_ready_endpoints(slices))
    except Invalid as bad:
        return Rejection(cluster=cluster, kind="Service", name=f"{namespace}/{name}", reason=bad.reason,
                         detail=bad.detail)
    return ServiceView(key=ServiceKey(namespace=namespace, name=name), backends=backends,
                       ready=ready, probe=probe_of(annotations))


def is_exported(*, namespace: str, annotations: Mapping[str, str], options: WatchOptions) -> bool:
    """`fed-dns.io/export: "true"` exports, `"false"` opts out; else export-all + namespaces."""
    return exported(flag=export_flag(annotations), namespace=namespace, options=options)


def export_flag(annotations: Mapping[str, str]) -> bool | None:
    """The export annotation: True for "true", False for "false", else None (no opinion)."""
    flag = str(annotations.get(EXPORT_ANNOTATION, "")).strip().lower()
    return True if flag == "true" else False if flag == "false" else None


def exported(*, flag: bool | None, namespace: str, options: WatchOptions) -> bool:
    """The annotation's say (`export_flag`), else export-all and the namespace globs."""
    if flag is not None:
        return flag
    if not options.export_all:
        return False
    return (any(fnmatch.fnmatchcase(namespace, p) for p in options.include)
            and not any(fnmatch.fnmatchcase(namespace, p) for p in options.exclude))


def check_service_names(*, namespace: str, name: str) -> None:
    """Raises Invalid when the namespace or the name is not a DNS label."""
    for reason, what, label in ((INVALID_NAMESPACE, "namespace", namespace),
                                (INVALID_SERVICE_NAME, "service name", name)):
        why = check_label(label)
        if why is not None:
            raise Invalid(reason, f"{what}: {why}")


def annotated_publish(annotations: Mapping[str, str]) -> Publish | None:
    """The publish annotation's mode, None without one; raises Invalid for an unknown mode."""
    value = annotations.get(PUBLISH_ANNOTATION)
    if value is None:
        return None
    try:
        return Publish(str(value).strip().lower())
    except ValueError:
        raise Invalid(INVALID_PUBLISH, f"{PUBLISH_ANNOTATION}: {shown(value)}") from None


def probe_of(annotations: Mapping[str, str]) -> str | None:
    """The probe annotation, stripped; None when unset or blank."""
    return str(annotations.get(PROBE_ANNOTATION) or "").strip() or None


def select_backends(*, service: Mapping, slices: Sequence[Mapping],
                    mode: Publish) -> tuple[Backend, ...]:
    """The backends `mode` selects, sorted; raises Invalid for an invalid name or address.

    ExternalName Services are a CNAME to spec.externalName whatever the mode (they have no
    addresses to select from). Every address of every IP slice must be an IP of the slice's
    family, whatever the mode (the member's data for this Service is not to be trusted).
    """
    spec = service.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    if kind == "ExternalName":
        raw = spec.get("externalName") or ""
        if not raw:
            return ()
        return (Backend(address=dns_name(raw, reason=INVALID_EXTERNAL_NAME), ports=service_ports(spec)),)
    check_slice_addresses(slices)
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
    """spec.clusterIPs (else clusterIP) but "None"; raises Invalid for one that is not an IP."""
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [_ip(ip, reason=INVALID_CLUSTER_IP) for ip in ips if ip and ip != "None"]


def load_balancer_addresses(status: Mapping) -> list[str]:
    """Ingress IPs, and ingress hostnames (which become CNAMEs); raises Invalid for an `ip`
    that is not an IP or a `hostname` that is not a DNS name."""
    out = []
    for ingress in (status.get("loadBalancer") or {}).get("ingress") or ():
        if ingress.get("ip"):
            out.append(_ip(ingress["ip"], reason=INVALID_INGRESS_IP))
        elif ingress.get("hostname"):
            out.append(dns_name(ingress["hostname"], reason=INVALID_INGRESS_HOSTNAME))
    return out


def check_slice_addresses(slices: Iterable[Mapping]) -> None:
    """Raises Invalid when an address of an IPv4/IPv6 slice is not an IP of that family.

    FQDN slices (and unknown address types) are never published, so not checked.
    """
    for s in slices:
        family = _FAMILIES.get(s.get("addressType", "IPv4"))
        if family is None:
            continue
        for endpoint in s.get("endpoints") or ():
            for address in endpoint.get("addresses") or ():
                _ip(address, reason=INVALID_ENDPOINT_ADDRESS, family=family)


def _ip(value: object, *, reason: str,
        family: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address] | None = None) -> str:
    """`value` in its canonical text when it is an IP (of `family` if given), no zone index."""
    if family is not ipaddress.IPv6Address and isinstance(value, str) and canonical_ipv4(value):
        return value  # what ipaddress would say, ten times faster: most addresses are these
    try:
        if not isinstance(value, str) or "%" in value:
            raise ValueError(value)
        ip = family(value) if family is not None else ipaddress.ip_address(value)
    except ValueError:
        what = family.__name__.removesuffix("Address") + " address" if family else "IP address"
        raise Invalid(reason, f"not an {what}: {shown(value)}") from None
    return str(ip)


def dns_name(value: object, *, reason: str) -> str:
    """`value` lower-cased without a trailing dot when it is a DNS name: RFC 1123 labels, at
    most 253 bytes; else raises Invalid."""
    if not isinstance(value, str):
        raise Invalid(reason, f"not a string: {shown(value)}")
    name = value.lower()
    name = name[:-1] if name.endswith(".") else name
    why = "empty name" if not name else None
    if why is None and len(name.encode("utf-8", "surrogatepass")) > MAX_NAME:
        why = f"longer than {MAX_NAME} bytes"
    for label in name.split(".") if why is None else ():
        if (why := check_label(label)) is not None:
            break
    if why is not None:
        raise Invalid(reason, f"{why}: {shown(value)}")
    return name


def shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def service_ports(spec: Mapping) -> tuple[Port, ...]:
    return ports_of(spec.get("ports") or ())


def endpoint_backends(slices: Iterable[Mapping]) -> tuple[Backend, ...]:
    """Ready endpoint addresses with their pod hostname and the ports of their slices.

    An address found in several slices (the controller splits by port set) gets the union
    of their ports.
    """
    merged: dict[str, tuple[str | None, set[Port]]] = {}
    for endpoint, ports in _ready_endpoints(slices):
        hostname = endpoint_hostname(endpoint)
        for address in endpoint.get("addresses") or ():
            known_host, known_ports = merged.setdefault(address, (hostname, set()))
            known_ports.update(ports)
            if known_host is None and hostname is not None:
                merged[address] = (hostname, known_ports)
    return tuple(Backend(address=address, hostname=host, ports=tuple(sorted(ports)))
                 for address, (host, ports) in sorted(merged.items()))


def endpoint_hostname(endpoint: Mapping) -> str | None:
    """The endpoint's pod hostname or None; raises Invalid when it is not a DNS label."""
    hostname = endpoint.get("hostname") or None
    if hostname is not None and (why := check_label(hostname)) is not None:
        raise Invalid(INVALID_ENDPOINT_HOSTNAME, f"{why}: {shown(hostname)}")
    return hostname


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
                    ports = ports_of(s.get("ports") or ())
                yield endpoint, ports


def ports_of(raw: Iterable[Mapping]) -> tuple[Port, ...]:
    """Service or EndpointSlice ports, sorted; raises Invalid for a name that is not a label."""
    out = set()
    for p in raw:
        name = p.get("name") or ""
        if name and (why := check_label(name)) is not None:
            raise Invalid(INVALID_PORT_NAME, f"{why}: {shown(name)}")
        if p.get("port") is None:
            continue
        out.add(Port(name=name, port=int(p["port"]), protocol=p.get("protocol") or "TCP"))
    return tuple(sorted(out))


class Invalid(ValueError):
    """A name or address that cannot be published (caught into a Rejection)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
