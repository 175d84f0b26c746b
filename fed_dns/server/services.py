"""SkyDNS values as the CoreDNS etcd plugin reads them: one `Service` per etcd key.

Values are decoded by `fed_dns.records.codec.decode` (ValueError when not a SkyDNS value).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from fed_dns.model import Record
from fed_dns.model.addresses import canonical_ipv4
from fed_dns.records.codec import decode

__all__ = ["A", "AAAA", "CNAME", "TXT", "Service", "decode", "group", "host_kind", "included",
           "key_order", "service"]

DEFAULT_TTL = 300  # CoreDNS etcd plugin: ttl when neither the value nor a lease sets one
DEFAULT_PRIORITY = 10  # CoreDNS etcd plugin: priority when the value sets none

# What a value's host makes of it (msg.Service.HostType).
A, AAAA, CNAME, TXT = "A", "AAAA", "CNAME", "TXT"


@dataclass(frozen=True, slots=True)
class Service:
    """A decoded value with what the answer rules need precomputed."""

    name: str  # the key as a domain name (case kept), with the trailing dot; no key is kept:
    # a DNS worker holds 300,000 of these, and the key is the name's labels reversed
    record: Record
    kind: str  # A | AAAA | CNAME | TXT
    address: str  # normalised IP for A/AAAA, else ""
    ttl: int
    priority: int
    raw: bytes = b""  # the etcd value it was decoded from (the same object, not a copy)


def host_kind(host: str, text: str) -> tuple[str, str]:
    """msg.Service.HostType: an IP gives A/AAAA, a name CNAME, or TXT when text is set."""
    if canonical_ipv4(host):  # its own normal form
        return A, host
    if ":" not in host:  # not IPv6; an IPv4 address ip_address takes is in normal form
        return (TXT if text else CNAME), ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return (TXT if text else CNAME), ""
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return A, str(ip.ipv4_mapped)
    address = str(ip)
    return (A if ip.version == 4 else AAAA), host if address == host else address


def service(*, name: str, record: Record, raw: bytes = b"") -> Service:
    kind, address = host_kind(record.host, record.text)
    return Service(name=name, record=record, kind=kind, address=address,
                   ttl=record.ttl or DEFAULT_TTL, priority=record.priority or DEFAULT_PRIORITY,
                   raw=raw)


def included(svc: Service, *, txt: bool) -> bool:
    """etcd.shouldInclude: only TXT questions may use a value without a host."""
    return bool(svc.record.host) or (txt and bool(svc.record.text))


def key_order(svc: Service) -> str:
    """Sorts the Services of one zone as their keys sort (`/com/example/fed/ns/a-b` before
    `.../ns/a/x`): the name's labels reversed, joined by `/`."""
    labels = svc.name.split(".")
    labels.reverse()
    return "/".join(labels)


def group(services: list[Service]) -> list[Service]:
    """msg.Group: the shortest key's group (if any) limits the set to that group. (A key's
    slashes and its name's dots differ by the same count in one zone.)"""
    if not services:
        return services
    first = services[0]
    grp, slashes = first.record.group, first.name.count(".")
    depth = [0] * len(services)  # as in CoreDNS, depths after a break stay 0
    for i, svc in enumerate(services):
        n = depth[i] = svc.name.count(".")
        if n < slashes:
            if not svc.record.group:
                break
            slashes, grp = n, svc.record.group
    if not grp:
        return services
    kept = []
    for svc, n in zip(services, depth):
        g = svc.record.group
        if not g:
            kept.append(svc)
        elif n == slashes and g != grp:
            return services
        elif g == grp:
            kept.append(svc)
    return kept
