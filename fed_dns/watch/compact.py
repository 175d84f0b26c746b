"""Services and EndpointSlices as the watcher keeps them: parsed once, validated, immutable.

A watch event's object (a JSON dict) becomes a `CompactService` or a `CompactSlice` when it
arrives, in the stream's thread. Each keeps only what `decide.service_view` decides from, in
the form the decision reads: every check of `parse` that reads one object alone is run here
once, and its outcome kept, the value or a `Flaw` (the Rejection's reason and detail, raised
only if the decision reads that field, as `parse.service_view` would). Repeated strings
(namespaces, names, port names) are interned and equal port tuples shared, so 50,000 objects
cost a few hundred bytes each, not the decoded JSON's few kilobytes.

An object that does not have the API's shape (a dict where a list must be, a port that is
not a number, ...) raises `Malformed`; the stream reports it as an error of that member,
as it does for an answer that is not JSON.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from fed_dns.model import Port, Publish, ServiceKey
from fed_dns.watch import parse

SERVICES = "services"
ENDPOINT_SLICES = "endpointslices"
EXTERNAL_NAME, LOAD_BALANCER, CLUSTER_IP = "ExternalName", "LoadBalancer", "ClusterIP"
_SHARED_PORTS = 4096  # distinct port tuples shared; past that a tuple is kept as is
T = TypeVar("T")


class Malformed(ValueError):
    """An object whose fields do not have the API's types; the message names no value."""


@dataclass(frozen=True, slots=True)
class Flaw:
    """Why a field cannot be published: a Rejection's reason (parse.REASONS) and detail."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CompactService:
    """What decides a Service's view. `kind` is ExternalName, LoadBalancer or ClusterIP (any
    other type publishes as ClusterIP); `export` is the annotation's say (None: none);
    `publish` the annotated mode (None: the configured one). Fields the Service's type never
    reads are left empty: an ExternalName's addresses, other types' `external`."""

    key: ServiceKey
    resource_version: str
    export: bool | None
    names: Flaw | None  # namespace or name not a DNS label
    publish: Publish | Flaw | None
    probe: str | None
    kind: str
    headless: bool  # spec.clusterIP "None"
    external: str | Flaw | None  # ExternalName's target; None: empty
    cluster_ips: tuple[str, ...] | Flaw
    ingress: tuple[str, ...] | Flaw  # load-balancer IPs and hostnames
    ports: tuple[Port, ...] | Flaw


@dataclass(frozen=True, slots=True, kw_only=True)
class CompactSlice:
    """What decides from an EndpointSlice. `service`: its kubernetes.io/service-name label
    (None: none). Only IPv4/IPv6 slices carry anything: `bad_address` is the first of their
    addresses that is not an IP of the slice's family; `ready` the addresses of the ready
    endpoints, in order, and `hostnames` the pod hostname of each (None: none has one);
    `ports` are read only when some endpoint is ready."""

    namespace: str
    name: str
    resource_version: str
    service: str | None
    bad_address: Flaw | None = None
    ready: tuple[str, ...] = ()
    hostnames: tuple[str | Flaw | None, ...] | None = None
    ports: tuple[Port, ...] | Flaw = ()

    @property
    def owner(self) -> ServiceKey | None:
        return ServiceKey(namespace=self.namespace, name=self.service) if self.service else None


Compact = CompactService | CompactSlice


def parse_object(*, kind: str, obj: Any) -> Compact:
    """`obj` (an event's or a list's object of `kind`) in the form the index keeps."""
    try:
        return parse_service(obj) if kind == SERVICES else parse_slice(obj)
    except Malformed:
        raise
    except Exception as exc:  # noqa: BLE001 - any shape the API would not send
        raise Malformed(f"a {kind} object is malformed ({type(exc).__name__})") from None


def parse_service(obj: Mapping) -> CompactService:
    meta = obj.get("metadata") or {}
    namespace, name = _text(meta.get("namespace")), _text(meta.get("name"))
    annotations = meta.get("annotations") or {}
    spec = obj.get("spec") or {}
    type_ = spec.get("type") or CLUSTER_IP
    kind = EXTERNAL_NAME if type_ == EXTERNAL_NAME else LOAD_BALANCER if type_ == LOAD_BALANCER else CLUSTER_IP
    external: str | Flaw | None = None
    cluster_ips: tuple[str, ...] | Flaw = ()
    ingress: tuple[str, ...] | Flaw = ()
    ports: tuple[Port, ...] | Flaw = ()
    if kind == EXTERNAL_NAME:
        if spec.get("externalName"):
            external = _outcome(parse.dns_name, spec["externalName"], reason=parse.INVALID_EXTERNAL_NAME)
            ports = _shared(_outcome(parse.service_ports, spec))
    else:
        cluster_ips = _outcome(lambda: tuple(parse.cluster_ips(spec)))
        ingress = _outcome(lambda: tuple(parse.load_balancer_addresses(obj.get("status") or {})))
        ports = _shared(_outcome(parse.service_ports, spec))
    return CompactService(
        key=ServiceKey(namespace=namespace, name=name),
        resource_version=_text(meta.get("resourceVersion"), intern=False),
        export=parse.export_flag(annotations),
        names=_outcome(parse.check_service_names, namespace=namespace, name=name),
        publish=_outcome(parse.annotated_publish, annotations), probe=parse.probe_of(annotations),
        kind=kind, headless=spec.get("clusterIP") == "None", external=external,
        cluster_ips=cluster_ips, ingress=ingress, ports=ports)


def parse_slice(obj: Mapping) -> CompactSlice:
    meta = obj.get("metadata") or {}
    service = (meta.get("labels") or {}).get(parse.SERVICE_NAME_LABEL)
    common = {"namespace": _text(meta.get("namespace")), "name": _text(meta.get("name"), intern=False),
              "resource_version": _text(meta.get("resourceVersion"), intern=False),
              "service": _text(service) if service else None}
    if obj.get("addressType", "IPv4") not in parse.IP_ADDRESS_TYPES:
        return CompactSlice(**common)  # FQDN (or unknown): never published, never checked
    ready: list[str] = []
    hostnames: list[str | Flaw | None] = []
    for e in obj.get("endpoints") or ():
        if e.get("addresses") and parse.is_ready(e):  # then one address at least
            addresses = tuple(e["addresses"])
            ready += addresses
            hostnames += [_hostname(e)] * len(addresses)
    return CompactSlice(**common, bad_address=_outcome(parse.check_slice_addresses, [obj]), ready=tuple(ready),
                        hostnames=tuple(hostnames) if any(h is not None for h in hostnames) else None,
                        ports=_shared(_outcome(parse.ports_of, obj.get("ports") or ())) if ready else ())


def resource_version(obj: Mapping) -> str:
    """A raw object's resourceVersion (a bookmark's, say); "" when it has none."""
    return (obj.get("metadata") or {}).get("resourceVersion") or ""


def _outcome(check: Callable[..., T], *args: Any, **kwargs: Any) -> T | Flaw:
    """check(...)'s value, or the Flaw it raised (parse.Invalid); other errors propagate."""
    try:
        return check(*args, **kwargs)
    except parse.Invalid as bad:
        return Flaw(bad.reason, bad.detail)


def _hostname(endpoint: Mapping) -> str | Flaw | None:
    hostname = _outcome(parse.endpoint_hostname, endpoint)
    return sys.intern(hostname) if type(hostname) is str else hostname  # pod-0 in many Services


def _text(value: object, *, intern: bool = True) -> str:
    """A name-like field, interned (unless unique to its object: a resourceVersion, a slice's
    name); "" for an unset one; Malformed when it is no string."""
    if not value:
        return ""
    if type(value) is not str:
        raise Malformed(f"a name is a {type(value).__name__}, not a string")
    return sys.intern(value) if intern else value


_ports: dict[tuple[Port, ...], tuple[Port, ...]] = {}


def _shared(ports: T) -> T:
    """One tuple (and its Ports) for equal port lists, their names interned. Only plain str
    and int fields are shared (1 == 1.0 == True must not make one value stand for another)."""
    if isinstance(ports, Flaw) or not all(type(p.name) is str and type(p.protocol) is str for p in ports):
        return ports
    known = _ports.get(ports)
    if known is not None:
        return known
    ports = tuple(Port(name=sys.intern(p.name), port=p.port, protocol=sys.intern(p.protocol)) for p in ports)
    if len(_ports) < _SHARED_PORTS:
        _ports[ports] = ports
    return ports
