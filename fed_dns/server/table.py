"""The zone table: an immutable zone index plus a cache of compiled answers.

`build()` indexes every key (start, reloads); `update()` applies a delta of raw etcd puts and
deletes to a previous table in O(delta). Each (name, type) is resolved and compiled on its
first question and kept in an `AnswerCache` that successive tables of one lineage share:
`update` drops just the answers that read a changed name (a reverse index name -> cache
keys), so a one-key update costs about as much as that key.

With an active `Topology` the cache keeps one dict per client region besides the plain one
(`caches[r]`, r = 1..R, filled from the plain entries' variants), so the hot path answers a
client in region r with one lookup in `caches[r]`.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterable, Mapping

from fed_dns.records.names import normalize_zone
from fed_dns.server import resolve as rs
from fed_dns.server.compile import Entry, compile_entry, wire_name
from fed_dns.server.topology import OFF_TOPOLOGY, Topology
from fed_dns.server import zone as zone_mod
from fed_dns.server.zone import ZoneIndex

MAX_CACHED = 500_000  # compiled answers per cache dict; past it the cache starts over
_LETTERS = frozenset(range(0x41, 0x5B)) | frozenset(range(0x61, 0x7B))
KNOWN_TYPES = (rs.T_A, rs.T_AAAA, rs.T_SRV, rs.T_TXT, rs.T_CNAME, rs.T_MX, rs.T_NS,
               rs.T_SOA, rs.T_ANY)
RCODES = 7  # stats slots per qtype: NOERROR..REFUSED, then any other rcode
_ANSWERED = frozenset(KNOWN_TYPES)
OTHER_TYPE = 0  # every other question type: one NODATA answer per name, cached under type 0


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


class AnswerCache:
    """Compiled answers shared by successive tables: plain dicts the hot path reads without a
    lock (`dicts[0]` plain, `dicts[r]` per client region), a reverse index (name -> cache
    keys of the answers that read it) and a generation.

    Only a table of the current generation may insert (under `lock`, on a cache miss);
    `advance` (under the lock) moves to the next generation, so an answer compiled from an
    older table is never inserted once a newer one exists, and then drops the answers that
    read a changed name: only the newest table inserts after that, and it is not answering
    yet, so the drop itself needs no lock. Cost O(changed names + answers dropped).
    """

    def __init__(self, *, regions: int = 0) -> None:
        self.dicts: tuple[dict, ...] = tuple({} for _ in range(regions + 1))
        self.readers: dict[str, set] = {}  # name -> keys of the answers that read it
        self.lock = threading.Lock()
        self.generation = 0

    def insert(self, generation: int, key, ent: Entry, region: int = 0) -> None:
        with self.lock:
            if generation != self.generation:
                return
            target = self.dicts[region]
            if len(target) >= MAX_CACHED:  # start over: O(1) per insert, amortized
                for d in self.dicts:
                    d.clear()
                self.readers.clear()
            target[key] = ent
            if region == 0:
                readers = self.readers
                for name in ent.answer.deps:
                    got = readers.get(name)
                    if got is None:
                        readers[name] = {key}
                    else:
                        got.add(key)

    def advance(self, changed: Iterable[str] | None) -> int:
        """Next generation; drop every answer that read a name in `changed` (None: every
        answer). Returns the number of cache keys dropped."""
        with self.lock:
            self.generation += 1
        readers, dicts = self.readers, self.dicts
        if changed is None:
            dropped = len(dicts[0])
            for d in dicts:
                d.clear()
            readers.clear()
            return dropped
        plain = dicts[0]
        dropped = 0
        for name in changed:
            keys = readers.pop(name, None)
            if not keys:
                continue
            for key in keys:
                ent = plain.pop(key, None)
                for d in dicts[1:]:
                    d.pop(key, None)
                if ent is None:
                    continue
                dropped += 1
                for other in ent.answer.deps:
                    if other != name:
                        got = readers.get(other)
                        if got is not None:
                            got.discard(key)
                            if not got:
                                del readers[other]
        return dropped


class ZoneTable:
    """Answers for one zone at one moment. Safe to share; never changes its answers.

    Compiled answers live in `answers`, shared with the tables `update` derives from this
    one; once a newer table exists this one compiles per question (correct, uncached).
    A cached negative answer keeps the SOA serial it was compiled with (only the apex's
    answers are dropped when the serial changes), so a serial change does not flush it.
    """

    def __init__(self, *, ix: ZoneIndex, serial: int, loading: bool = False,
                 topology: Topology = OFF_TOPOLOGY, answers: AnswerCache | None = None) -> None:
        self.loading = loading  # no source data yet: in-zone questions get SERVFAIL
        self.zone = ix.zone
        self.prefix = ix.prefix
        self.zone_wire = wire_name(ix.zone)
        self.index = ix
        self.serial = serial
        self.dropped = ix.dropped
        self.foreign = ix.foreign
        self.topology = topology
        regions = len(topology.regions) if topology.active else 0
        self.answers = answers if answers is not None else AnswerCache(regions=regions)
        self.generation = self.answers.generation
        self.caches: tuple[dict, ...] = self.answers.dicts
        self.cache: dict = self.caches[0]
        self.nx_tail = _soa_wire(zone=self.zone, serial=serial)

    def __len__(self) -> int:
        return self.index.decoded

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
        `region`: the client's region number (0: none), see `topology.Clients`.

        A type outside KNOWN_TYPES has no records here (NODATA): all such types share the
        entry of OTHER_TYPE, so 65,536 question types cost one cache entry per name, not
        65,536 (the hot path misses them; the full path finds the shared entry)."""
        if qtype not in _ANSWERED:
            qtype = OTHER_TYPE
        key = fast_key(qname_wire_lower, qtype) or (qname_wire_lower, qtype)
        current = self.answers.generation == self.generation
        if 0 < region < len(self.caches):
            hit = self.caches[region].get(key) if current else None
            if hit is None:
                hit = self.entry(qname_wire_lower, qtype)
                if hit is not None and hit.regions is not None:
                    hit = hit.regions[region]
                if hit is not None and current:
                    self.answers.insert(self.generation, key, hit, region)
            return hit
        hit = self.cache.get(key) if current else None
        if hit is not None:
            return hit
        name = name_text(qname_wire_lower)
        if name is None or not self.index.exists(name):
            return None
        ans = rs.answer(self.index, name=name, qtype=qtype, serial=self.serial)
        ent = compile_entry(qname=name, qtype=qtype, answer=ans, slot=stat_slot(qtype, ans.rcode),
                            topology=self.topology)
        if current:
            self.answers.insert(self.generation, key, ent)
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


def loading(*, zone: str, prefix: str = "/skydns") -> ZoneTable:
    """The table before the source's first load: SERVFAIL in the zone (never a false
    NXDOMAIN that resolvers would cache), REFUSED outside it."""
    return ZoneTable(ix=ZoneIndex(zone=normalize_zone(zone), prefix=prefix), serial=0,
                     loading=True)


def build(*, zone: str, entries: Mapping[str, bytes], prefix: str = "/skydns",
          previous: ZoneTable | None = None, serial: int | None = None,
          topology: Topology | None = None) -> ZoneTable:
    """A table from raw etcd key -> value (foreign keys ignored, bad values dropped).

    With `previous` (same zone, prefix and topology, not loading) this is `update` with the
    difference of `entries` from it (O(zone) to find, O(changed) to apply), keeping every
    compiled answer that read none of the changed names.
    `topology` (default off): answer order by client region and cluster weight.
    """
    zone = normalize_zone(zone)
    topology = topology or OFF_TOPOLOGY
    serial = serial if serial is not None else int(time.time())
    if previous is None or previous.zone != zone or previous.loading \
            or previous.prefix != prefix or previous.topology != topology:
        return ZoneTable(ix=zone_mod.index(zone=zone, entries=entries, prefix=prefix),
                         serial=serial, topology=topology)
    puts, deletes = zone_mod.diff(previous.index, entries)
    return update(previous=previous, puts=puts, deletes=deletes, serial=serial)


def update(*, previous: ZoneTable, puts: Mapping[str, bytes], deletes: Iterable[str],
           serial: int | None = None) -> ZoneTable:
    """`previous` with `deletes` removed, then `puts` set (raw etcd keys and values, as
    `build` takes them): answers exactly as a full build of the resulting entries would.

    Cost O(len(puts) + len(deletes)) plus the compiled answers it drops. Answers that read
    no changed name stay cached and shared; the result keeps `previous`'s zone, prefix and
    topology. Deriving two tables from one `previous` is allowed: the second one (and any
    table derived from an older one) starts with an empty cache.
    """
    serial = serial if serial is not None else int(time.time())
    answers = previous.answers
    fresh = answers.generation != previous.generation or previous.loading
    # Which names changed matters only to answers compiled from `previous`: none while a
    # table is built before it answers (a DNS worker's first 300,000 keys). One compiled
    # after this look is dropped with every other by advance(None).
    track = not fresh and bool(answers.readers)
    ix, changed = zone_mod.apply(previous.index, puts=puts, deletes=deletes, track=track)
    if fresh:
        answers = AnswerCache(regions=len(answers.dicts) - 1)
    else:
        if changed is not None and serial != previous.serial:
            changed.add(ix.zone)  # the apex's own answers (SOA, NS) carry the serial
        answers.advance(changed)
    return ZoneTable(ix=ix, serial=serial, topology=previous.topology, answers=answers)
