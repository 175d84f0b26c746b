"""The answer rules: what the CoreDNS etcd plugin answers for a name and type (answers.md).

Pure functions from a `ZoneIndex` to an `Answer` of plain record tuples; wire encoding is
`compile.py`'s job. Follows coredns `plugin/backend_lookup.go` and `plugin/etcd/`, with the
differences answers.md and the conformance README list (NODATA for TXT/CNAME on a name that
exists only through its children and for A/AAAA at the apex, RFC 8482 for ANY, SOA only at
the apex, no recursion for targets outside the zone).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fed_dns.server import services as sv
from fed_dns.server.zone import ZoneIndex

# Query types by number (the wire's, so no dnslib here).
T_A, T_NS, T_CNAME, T_SOA, T_HINFO, T_MX, T_TXT, T_AAAA, T_SRV, T_ANY = (
    1, 2, 5, 6, 13, 15, 16, 28, 33, 255)
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5

SOA_TTL = 30  # CoreDNS etcd: MinTTL 30, and the SOA's own TTL min(300, MinTTL)
SOA_TIMERS = (7200, 1800, 86400, SOA_TTL)  # refresh, retry, expire, minimum (negative TTL)
MAX_CHAIN = 8  # CoreDNS stops following after 8 CNAMEs (len(previousRecords) > 7)
ANY_TTL = 8482  # CoreDNS `any` plugin, RFC 8482

# An RR is (owner, type, ttl, rdata); rdata per type:
# A/AAAA: address str; CNAME/NS: target; TXT: tuple of strings; SRV: (prio, weight, port,
# target); MX: (pref, target); SOA: (mname, rname, serial, refresh, retry, expire, minimum);
# HINFO: (cpu, os).
RR = tuple


@dataclass(frozen=True, slots=True)
class Answer:
    rcode: int
    answer: tuple[RR, ...] = ()
    authority: tuple[RR, ...] = ()
    additional: tuple[RR, ...] = ()
    deps: frozenset[str] = field(default_factory=frozenset)  # names whose subtree was read
    # the cluster (value's `cluster` field, "" if none) of each answer record, for ordering
    origins: tuple[str, ...] = field(default=(), compare=False)


def fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def at_or_below(name: str, parent: str) -> bool:
    """dns.IsSubDomain(parent, name), case-insensitive; names end with a dot."""
    name, parent = name.lower(), parent.lower()
    return name == parent or parent == "." or name.endswith("." + parent)


def soa(*, zone: str, serial: int) -> RR:
    return (zone, T_SOA, SOA_TTL, (f"ns.dns.{zone}", f"hostmaster.{zone}", serial, *SOA_TIMERS))


def _strip(target: str, n: int) -> str:
    """msg.targetStrip: drop n labels from the left, unless that overshoots."""
    labels = target.rstrip(".").split(".")
    return target if n >= len(labels) else fqdn(".".join(labels[n:]))


def _target(svc: sv.Service, host: str) -> str:
    target = fqdn(host).lower()
    return _strip(target, svc.record.targetstrip) if svc.record.targetstrip > 0 else target


class _Resolver:
    """One question's walk; records every name it reads so caches know what to drop."""

    def __init__(self, ix: ZoneIndex) -> None:
        self.ix = ix
        self.deps: set[str] = set()
        self.origin: dict[RR, str] = {}  # record -> the cluster of the value that made it

    def read(self, name: str, *, txt: bool = False) -> list[sv.Service] | None:
        self.deps.add(name)
        found = self.ix.read(name)
        if found is None:
            return None
        return sv.group([s for s in found if sv.included(s, txt=txt)])

    def read_exact(self, name: str) -> sv.Service | None:
        self.deps.add(name)
        return self.ix.read_exact(name)

    def chase(self, *, name: str, qtype: int, prev: list[RR], svcs: list[sv.Service] | None,
              leaf) -> list[RR]:
        """backend_lookup A/AAAA/TXT: leaf records, CNAMEs followed inside the zone."""
        out: list[RR] = []
        seen: set[str] = set()
        for svc in svcs or ():
            if svc.kind == sv.CNAME:
                target = fqdn(svc.record.host).lower()
                if at_or_below(target, name):
                    continue  # "w.x CNAME x" is a loop in the prefix-read world
                cname = (name, T_CNAME, svc.ttl, target)
                if len(prev) >= MAX_CHAIN or any(r[0] == name and r[3] == target for r in prev):
                    continue
                if at_or_below(target, self.ix.zone):
                    more = self.records(name=target, qtype=qtype, prev=[*prev, cname])
                    if more:
                        out.append(cname)
                        out.extend(more)
                    continue
                out.append(cname)  # outside the zone: the client follows it
                continue
            rr = leaf(svc, name)
            if rr is not None and rr[3] not in seen:
                seen.add(rr[3])
                out.append(rr)
                self.origin.setdefault(rr, svc.record.cluster)
        return out

    def records(self, *, name: str, qtype: int, prev: list[RR]) -> list[RR]:
        if qtype == T_TXT:
            svc = self.read_exact(name)
            svcs = [svc] if svc is not None and sv.included(svc, txt=True) else []
            return self.chase(name=name, qtype=qtype, prev=prev, svcs=svcs, leaf=_txt)
        if name == self.ix.zone:
            return []  # A/AAAA at the apex: NODATA (no apex.dns lookups)
        kind = sv.A if qtype == T_A else sv.AAAA

        def leaf(svc: sv.Service, owner: str) -> RR | None:
            return (owner, qtype, svc.ttl, svc.address) if svc.kind == kind else None
        return self.chase(name=name, qtype=qtype, prev=prev, svcs=self.read(name), leaf=leaf)

    def targets(self, *, name: str, svcs: list[sv.Service], make) -> tuple[list[RR], list[RR]]:
        """SRV and MX: one record per value; glue for in-zone targets in additional."""
        out: list[RR] = []
        extra: list[RR] = []
        dup: set[tuple] = set()
        looked: set[str] = set()
        for svc in svcs:
            if svc.kind == sv.CNAME:
                target = _target(svc, svc.record.host)
                out.append(make(svc, target))
                self.origin.setdefault(out[-1], svc.record.cluster)
                if target in looked:
                    continue
                looked.add(target)
                if at_or_below(target, self.ix.zone):
                    extra.extend(self.records(name=target, qtype=T_A, prev=[]))
            elif svc.kind in (sv.A, sv.AAAA):
                target = _target(svc, svc.name)
                rr = make(svc, target)
                if ("rr", target, rr[3][-2]) not in dup:
                    dup.add(("rr", target, rr[3][-2]))
                    out.append(rr)
                    self.origin.setdefault(rr, svc.record.cluster)
                if ("addr", target, svc.address) not in dup:
                    dup.add(("addr", target, svc.address))
                    extra.append((target, T_A if svc.kind == sv.A else T_AAAA, svc.ttl, svc.address))
        return out, extra

    def srv(self, name: str) -> tuple[list[RR], list[RR]]:
        svcs = self.read(name) or []
        total: dict[int, int] = {}  # port -1 values count here, as in CoreDNS
        for s in svcs:
            total[s.priority] = total.get(s.priority, 0) + (s.record.weight or 100)
        svcs = [s for s in svcs if s.record.port != -1]
        def make(s: sv.Service, target: str) -> RR:
            weight = max(1, math.floor(100.0 / total[s.priority] * (s.record.weight or 100)))
            return (name, T_SRV, s.ttl, (s.priority, weight, s.record.port & 0xFFFF, target))
        return self.targets(name=name, svcs=svcs, make=make)

    def mx(self, name: str) -> tuple[list[RR], list[RR]]:
        svcs = [s for s in self.read(name) or () if s.record.mail]
        def make(s: sv.Service, target: str) -> RR:
            return (name, T_MX, s.ttl, (s.priority, target))
        return self.targets(name=name, svcs=svcs, make=make)

    def ns(self) -> tuple[list[RR], list[RR]]:
        zone = self.ix.zone
        svcs = [s for s in self.read(f"ns.dns.{zone}") or () if s.kind in (sv.A, sv.AAAA)]
        def make(s: sv.Service, target: str) -> RR:
            return (zone, T_NS, s.ttl, (0, target))
        out, extra = self.targets(name=zone, svcs=svcs, make=make)
        if not out:
            return [(zone, T_NS, sv.DEFAULT_TTL, f"ns.dns.{zone}")], []
        return [(zone, T_NS, rr[2], rr[3][1]) for rr in out], extra


def _txt(svc: sv.Service, owner: str) -> RR | None:
    if svc.kind != sv.TXT:
        return None
    text = svc.record.text
    chunks = tuple(text[i:i + 255] for i in range(0, len(text), 255)) or ("",)
    return (owner, T_TXT, svc.ttl, chunks)


def answer(ix: ZoneIndex, *, name: str, qtype: int, serial: int) -> Answer:
    """The answer for a lower-case name inside the zone (the caller refuses the rest)."""
    r = _Resolver(ix)
    r.deps.add(name)
    neg = (soa(zone=ix.zone, serial=serial),)
    if not ix.exists(name):
        return Answer(rcode=NXDOMAIN, authority=neg, deps=frozenset(r.deps))
    records: list[RR] = []
    extra: list[RR] = []
    if qtype == T_ANY:
        records = [(name, T_HINFO, ANY_TTL, ("ANY obsoleted", "See RFC 8482"))]
    elif name == ix.zone and qtype == T_SOA:
        records = [neg[0]]
    elif name == ix.zone and qtype == T_NS:
        records, extra = r.ns()
    elif qtype in (T_A, T_AAAA, T_TXT):
        records = r.records(name=name, qtype=qtype, prev=[])
    elif qtype == T_CNAME:
        svc = r.read_exact(name)
        if svc is not None and sv.included(svc, txt=False) and svc.kind not in (sv.A, sv.AAAA):
            records = [(name, T_CNAME, svc.ttl, fqdn(svc.record.host).lower())]
    elif qtype == T_SRV and name != ix.zone:
        records, extra = r.srv(name)
    elif qtype == T_MX and name != ix.zone:
        records, extra = r.mx(name)
    deps = frozenset(r.deps)
    if not records:
        return Answer(rcode=NOERROR, authority=neg, deps=deps)
    return Answer(rcode=NOERROR, answer=tuple(records), additional=tuple(extra), deps=deps,
                  origins=tuple(r.origin.get(rr, "") for rr in records))
