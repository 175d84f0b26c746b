"""The zone table: an immutable zone index plus a cache of compiled answers.

`build()` is cheap (index the keys, decode the values); each (name, type) is resolved and
compiled on its first question and kept for the table's life. A table built with
`previous=` reuses the decoded values and every compiled answer whose names did not change,
so a one-key update costs about as much as that key.

With an active `Topology` the table keeps one cache per client region besides the plain one
(`caches[r]`, r = 1..R, filled from the plain entries' variants), so the hot path answers a
client in region r with one lookup in `caches[r]`.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Mapping

from fed_dns.records.names import normalize_zone
from fed_dns.server import resolve as rs
from fed_dns.server.compile import Entry, compile_entry, wire_name
from fed_dns.server.topology import OFF_TOPOLOGY, Topology
from fed_dns.server.zone import MAX_INCREMENTAL, ZoneIndex, changed_keys, index, update

MAX_CACHED = 500_000  # compiled answers per table; past it answers are compiled per query
_LETTERS = frozenset(range(0x41, 0x5B)) | frozenset(range(0x61, 0x7B))
KNOWN_TYPES = (rs.T_A, rs.T_AAAA, rs.T_SRV, rs.T_TXT, rs.T_CNAME, rs.T_MX, rs.T_NS,
               rs.T_SOA, rs.T_ANY)
RCODES = 7  # stats slots per qtype: NOERROR..REFUSED, then any other rcode


def fast_key(qname_wire_lower: bytes, qtype: int) -> bytes | None:
    """The hot path's cache key: the lower-cased question bytes (class IN).

    Only types whose two bytes hold no ASCII letter get one: lower-casing the question then
    maps no other question onto it.
    """
    if qtype >> 8 in _LETTERS or qtype & 0xFF in _LETTERS:
        return None
    return qname_wire_lower + struct.pack("!HH", qtype, 1)


def name_text(qname_wire_lower: bytes) -> str | None:
    """Wire name -> text with trailing dot; None for labels no etcd key can hold."""
    labels = []
    i = 0
    while True:
        n = qname_wire_lower[i]
        if n == 0:
            break
        label = qname_wire_lower[i + 1:i + 1 + n]
        if b"." in label or b"/" in label:
            return None
        labels.append(label.decode("latin-1"))
        i += 1 + n
    return ".".join(labels) + "." if labels else "."


def _soa_wire(*, zone: str, serial: int) -> bytes:
    """The zone SOA RR, uncompressed, so it fits after any question."""
    owner, _, ttl, (mname, rname, *times) = rs.soa(zone=zone, serial=serial)
    rdata = wire_name(mname) + wire_name(rname) + struct.pack("!5I", *times)
    return wire_name(owner) + struct.pack("!HHIH", rs.T_SOA, 1, ttl, len(rdata)) + rdata


class ZoneTable:
    """Answers for one zone at one moment. Safe to share; never changes its answers."""

    def __init__(self, *, ix: ZoneIndex, serial: int, cache: dict | None = None,
                 loading: bool = False, topology: Topology = OFF_TOPOLOGY,
                 region_caches: list[dict] | None = None) -> None:
        self.loading = loading  # no source data yet: in-zone questions get SERVFAIL
        self.zone = ix.zone
        self.zone_wire = wire_name(ix.zone)
        self.index = ix
        self.serial = serial
        self.dropped = ix.dropped
        self.foreign = ix.foreign
        self.decoded = ix.decoded
        self.cache: dict = cache if cache is not None else {}
        self.topology = topology
        regions = len(topology.regions) if topology.active else 0
        self.caches: tuple[dict, ...] = (self.cache, *(region_caches or [{} for _ in range(regions)]))
        self.nx_tail = _soa_wire(zone=self.zone, serial=serial)

    def __len__(self) -> int:
        return len(self.decoded)

    def in_zone(self, qname_wire_lower: bytes) -> bool:
        zw = self.zone_wire
        if not qname_wire_lower.endswith(zw):
            return False
        cut = len(qname_wire_lower) - len(zw)
        i = 0
        while i < cut:  # the zone must start at a label boundary
            i += qname_wire_lower[i] + 1
        return i == cut

    def entry(self, qname_wire_lower: bytes, qtype: int, region: int = 0) -> Entry | None:
        """The compiled answer for an in-zone name that exists; None when it does not.
        `region`: the client's region number (0: none), see `topology.Clients`."""
        key = fast_key(qname_wire_lower, qtype) or (qname_wire_lower, qtype)
        if 0 < region < len(self.caches):
            cache = self.caches[region]
            hit = cache.get(key)
            if hit is None:
                hit = self.entry(qname_wire_lower, qtype)
                if hit is not None and hit.regions is not None:
                    hit = hit.regions[region]
                if hit is not None and len(cache) < MAX_CACHED:
                    cache[key] = hit
            return hit
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        name = name_text(qname_wire_lower)
        if name is None or not self.index.exists(name):
            return None
        ans = rs.answer(self.index, name=name, qtype=qtype, serial=self.serial)
        ent = compile_entry(qname=name, qtype=qtype, answer=ans, slot=stat_slot(qtype, ans.rcode),
                            topology=self.topology)
        if len(self.cache) < MAX_CACHED:
            self.cache[key] = ent
        return ent

    def answer(self, *, name: str, qtype: int) -> rs.Answer:
        """Resolve a text name (tests, tools): REFUSED outside the zone."""
        name = name.lower() if name.endswith(".") else name.lower() + "."
        if not rs.at_or_below(name, self.zone):
            return rs.Answer(rcode=rs.REFUSED)
        return rs.answer(self.index, name=name, qtype=qtype, serial=self.serial)


def stat_slot(qtype: int, rcode: int) -> int:
    """Index of a (qtype, rcode) counter: known types first, then one 'other' row."""
    try:
        row = KNOWN_TYPES.index(qtype)
    except ValueError:
        row = len(KNOWN_TYPES)
    return row * RCODES + min(rcode, RCODES - 1)


def _carry(previous: ZoneTable, changed_names: set[str], *, same_serial: bool) -> dict:
    """Compiled answers of the previous table that read none of the changed names.

    Answers that carry the SOA (negative ones, SOA itself) are kept only if the serial did
    not change.
    """
    keep = {}
    for key, ent in list(previous.cache.items()):  # a copy: the UDP thread may be adding
        if not changed_names.isdisjoint(ent.answer.deps):
            continue
        if not same_serial and (ent.answer.authority or ent.qtype == rs.T_SOA):
            continue
        keep[key] = ent
    return keep


def loading(*, zone: str) -> ZoneTable:
    """The table before the source's first load: SERVFAIL in the zone (never a false
    NXDOMAIN that resolvers would cache), REFUSED outside it."""
    return ZoneTable(ix=index(zone=normalize_zone(zone), entries={}), serial=0, loading=True)


def build(*, zone: str, entries: Mapping[str, bytes], prefix: str = "/skydns",
          previous: ZoneTable | None = None, serial: int | None = None,
          topology: Topology | None = None) -> ZoneTable:
    """A table from raw etcd key -> value (foreign keys ignored, bad values dropped).

    With `previous` (same zone and topology) only the changed keys are indexed again and
    decoded, and every compiled answer that read none of the changed names is kept.
    `topology` (default off): answer order by client region and cluster weight.
    """
    zone = normalize_zone(zone)
    topology = topology or OFF_TOPOLOGY
    serial = serial if serial is not None else int(time.time())
    if previous is None or previous.zone != zone or previous.loading:
        return ZoneTable(ix=index(zone=zone, entries=entries, prefix=prefix), serial=serial,
                         topology=topology)
    if previous.topology != topology:
        return ZoneTable(ix=index(zone=zone, entries=entries, prefix=prefix,
                                  reuse=previous.index.decoded), serial=serial, topology=topology)
    prev = previous.index
    changed = changed_keys(prev, entries)
    if len(changed) > max(64, MAX_INCREMENTAL * len(entries)):
        ix = index(zone=zone, entries=entries, prefix=prefix, reuse=prev.decoded)
    else:
        ix = update(prev=prev, entries=entries, prefix=prefix, changed=changed)
    names: set[str] = set()
    for key in changed:
        for found in (prev.decoded.get(key), ix.decoded.get(key)):
            if found is not None:
                labels = found[1].name.rstrip(".").split(".")
                names.update(".".join(labels[i:]) + "." for i in range(len(labels)))
    cache = _carry(previous, names, same_serial=serial == previous.serial)
    regional = [{k: v for k, v in list(c.items()) if k in cache} for c in previous.caches[1:]]
    return ZoneTable(ix=ix, serial=serial, cache=cache, topology=topology,
                     region_caches=regional)
