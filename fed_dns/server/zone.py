"""The zone's names from raw etcd keys: which names exist and which values each one reads.

CoreDNS's etcd plugin answers a name from a prefix read of `<key>/`: every value strictly
below the name's key, or, when there is none, the value at the key itself. `ZoneIndex` keeps
the zone as a tree of names in persistent maps (`immutables.Map`, a HAMT): `exact` (name ->
the value at its key) and `children` (name -> the names right below it that hold something).
`apply` makes a new index from an old one and a delta in O(changed keys): both share every
untouched node, so a reader (the UDP thread) always sees one consistent, immutable index.

A read walks the name's subtree and returns its values in etcd key order. It stops after
`MAX_READ` values (docs/design-notes.md): more records than that never fit one 64 KiB message,
so only an answer that could never be sent differs from CoreDNS's.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import immutables

from fed_dns.server.services import Service, decode, key_order, service

DROPPED, FOREIGN = "dropped", "foreign"
MAX_READ = 8192  # values one read returns: > 4,096 records (16 bytes each, the least) never fit 64 KiB
_EMPTY: immutables.Map = immutables.Map()


def zone_labels(zone: str) -> list[str]:
    return [label for label in zone.rstrip(".").split(".") if label]


@functools.lru_cache(maxsize=64)
def _zone_key(zone: str, prefix: str) -> str:
    """`/skydns/com/example/fed/`: what every key of the zone starts with."""
    labels = zone_labels(zone)
    return "/".join([prefix.rstrip("/"), *reversed(labels)]) + "/"


SMALL = 32  # children kept in a tuple up to this many, in a Map past it


def _add(kids, name: str):
    """A name's children with one more: a plain tuple while small (no GC tracking, no
    per-node map), else an immutables.Map (name -> True) so a huge parent costs O(log n)."""
    if kids is None:
        return (name,)
    if type(kids) is tuple:
        if len(kids) < SMALL:
            return (*kids, name)
        return immutables.Map(dict.fromkeys(kids, True)).set(name, True)
    return kids.set(name, True)


def _drop(kids, name: str):
    """The children without `name` (empty: falsy)."""
    if type(kids) is tuple:
        try:
            i = kids.index(name)
        except ValueError:
            return kids
        return kids[:i] + kids[i + 1:]  # a name is there once (see _add's callers)
    return kids.delete(name)


def _parent(name: str) -> str:
    return name[name.index(".") + 1:]


@dataclass(frozen=True, slots=True)
class ZoneIndex:
    """One immutable state of the zone; `apply` derives the next one."""

    zone: str  # lower case, trailing dot
    prefix: str = "/skydns"
    exact: immutables.Map = _EMPTY  # name -> Service (the value at the name's own key)
    children: immutables.Map = _EMPTY  # name -> its child names (see _add), never empty
    rejected: immutables.Map = _EMPTY  # key -> (raw, DROPPED | FOREIGN)
    decoded: int = 0  # values that decoded (len(exact))
    dropped: int = 0  # values that did not decode
    foreign: int = 0  # keys outside the zone (or not a name)

    def exists(self, name: str) -> bool:
        return name == self.zone or name in self.children or name in self.exact

    def read(self, name: str) -> list[Service] | None:
        """The prefix read CoreDNS does: None when no key is at or below the name.

        Values strictly below the name in key order (at most MAX_READ of them), else the
        value at the name itself."""
        kids = self.children.get(name)
        if kids is None:
            svc = self.exact.get(name)
            return [svc] if svc is not None else None
        exact, children = self.exact, self.children
        out: list[Service] = []
        stack = [iter(kids)]
        while stack:  # depth first, so a bounded read stops after MAX_READ values
            for child in stack[-1]:
                svc = exact.get(child)
                if svc is not None:
                    out.append(svc)
                    if len(out) >= MAX_READ:
                        stack.clear()
                        break
                sub = children.get(child)
                if sub is not None:
                    stack.append(iter(sub))
                    break
            else:
                stack.pop()
        out.sort(key=key_order)  # DFS order is not key order ("a-b/x" < "a/x")
        return out

    def read_exact(self, name: str) -> Service | None:
        return self.exact.get(name)

    def name_of(self, key: str) -> str | None:
        """The in-zone name of a key (case kept), None for a foreign key."""
        base = _zone_key(self.zone, self.prefix)
        if not key.startswith(base):
            return None
        rest = key[len(base):]
        if not rest or "." in rest or "//" in rest or rest[0] == "/" or rest[-1] == "/":
            return None
        parts = rest.split("/")
        parts.reverse()
        return ".".join(parts) + ("." if self.zone == "." else "." + self.zone)

    def key_of(self, name: str, *, base: str | None = None) -> str:
        """The key of an in-zone name (`name_of`'s inverse); `base`: `_zone_key`, if known."""
        rest = name[:-1] if self.zone == "." else name[:-len(self.zone) - 1]
        labels = rest.split(".")
        labels.reverse()
        return (base or _zone_key(self.zone, self.prefix)) + "/".join(labels)

    def raw(self, key: str) -> bytes | None:
        """The value held for a key (decoded or not), None when the key is not held."""
        got = self.rejected.get(key)
        if got is not None:
            return got[0]
        name = self.name_of(key)
        svc = self.exact.get(name) if name is not None else None
        return svc.raw if svc is not None else None

    def items(self) -> Iterable[tuple[str, bytes]]:
        """Every key held and its raw value (no order)."""
        base = _zone_key(self.zone, self.prefix)
        for name, svc in self.exact.items():
            yield self.key_of(name, base=base), svc.raw
        for key, (raw, _) in self.rejected.items():
            yield key, raw


def _classify(*, key: str, name: str | None, raw: bytes, memo: dict) -> Service | str:
    """The key's Service, or why it has none (FOREIGN, DROPPED); `name`: `name_of(key)`.
    `memo` (raw -> Record or DROPPED) decodes a value held by several keys once, and keeps
    one Record for all of them (render writes each endpoint's value twice: leaf and SRV)."""
    if name is None:
        return FOREIGN
    record = memo.get(raw)
    if record is None:
        try:
            record = decode(raw)
        except ValueError:
            record = DROPPED
        memo[raw] = record
    if record is DROPPED:
        return DROPPED
    return service(name=name, record=record, raw=raw)


class _Delta:
    """The mutable side of one `apply`: the three maps, the counts, the changed names
    (`track`; else None)."""

    def __init__(self, prev: ZoneIndex, *, track: bool = True) -> None:
        self.prev = prev
        self.zone = prev.zone
        self.exact = prev.exact.mutate()
        self.children = prev.children.mutate()
        self.rejected = prev.rejected.mutate()
        self.counts = {"decoded": prev.decoded, DROPPED: prev.dropped, FOREIGN: prev.foreign}
        self.changed: set[str] | None = set() if track else None
        if not track:
            self.mark = _untracked
        self.memo: dict = {}

    def mark(self, name: str) -> None:
        """The name and every ancestor: their reads change."""
        changed, zone = self.changed, self.zone
        while name not in changed:
            changed.add(name)
            if name == zone or "." not in name[:-1]:
                break
            name = _parent(name)

    def link(self, name: str) -> None:
        """Make a new name (and its new ancestors) reachable from the apex."""
        children, exact, zone = self.children, self.exact, self.zone
        while name != zone:
            parent = _parent(name)
            kids = children.get(parent)
            children[parent] = _add(kids, name)
            if kids is not None or parent in exact:
                return
            name = parent

    def unlink(self, name: str) -> None:
        """Drop a name that holds nothing any more (and ancestors left empty)."""
        children, exact, zone = self.children, self.exact, self.zone
        while name != zone:
            parent = _parent(name)
            kids = _drop(children[parent], name)
            if len(kids):
                children[parent] = kids
                return
            del children[parent]
            if parent in exact:
                return
            name = parent

    def remove(self, key: str, name: str | None | bool = False) -> None:
        """Forget a key (`name`: its `name_of`, when known)."""
        got = self.rejected.get(key)
        if got is not None:
            del self.rejected[key]
            self.counts[got[1]] -= 1
            return
        if name is False:
            name = self.prev.name_of(key)
        if name is None or name not in self.exact:
            return
        del self.exact[name]
        self.counts["decoded"] -= 1
        self.mark(name)
        if name not in self.children:
            self.unlink(name)

    def put(self, key: str, raw: bytes) -> None:
        svc = None
        name = self.prev.name_of(key)
        old = self.rejected.get(key)
        if old is None and name is not None:
            svc = self.exact.get(name)
            old = (svc.raw,) if svc is not None else None
        if old is not None and (old[0] is raw or old[0] == raw):
            return
        got = _classify(key=key, name=name, raw=raw, memo=self.memo)
        if isinstance(got, str):
            self.remove(key, name)
            self.rejected[key] = (raw, got)
            self.counts[got] += 1
            return
        if svc is None:
            self.remove(key, name)  # a rejected value, if any
            self.counts["decoded"] += 1
        name = got.name
        fresh = svc is None and name not in self.children
        self.exact[name] = got
        self.mark(name)
        if fresh:
            self.link(name)

    def finish(self) -> ZoneIndex:
        c = self.counts
        return ZoneIndex(zone=self.zone, prefix=self.prev.prefix, exact=self.exact.finish(),
                         children=self.children.finish(), rejected=self.rejected.finish(),
                         decoded=c["decoded"], dropped=c[DROPPED], foreign=c[FOREIGN])


def _untracked(name: str) -> None:
    """_Delta.mark when the changed names are not asked for."""


def apply(prev: ZoneIndex, *, puts: Mapping[str, bytes], deletes: Iterable[str] = (),
          track: bool = True) -> tuple[ZoneIndex, set[str] | None]:
    """`prev` with `deletes` removed, then `puts` set: the new index and the names whose
    reads changed (each changed key's name and its ancestors; None without `track`: a
    table nothing has been answered from needs no names, and finding them was a tenth of
    building a 300,000-key table). Cost O(len(puts) + len(deletes)); a put of the value
    already held changes nothing."""
    delta = _Delta(prev, track=track)
    for key in deletes:
        delta.remove(key)
    for key, raw in puts.items():
        delta.put(key, raw)
    return delta.finish(), delta.changed


def index(*, zone: str, entries: Mapping[str, bytes], prefix: str = "/skydns") -> ZoneIndex:
    """The whole index from scratch."""
    return apply(ZoneIndex(zone=zone, prefix=prefix), puts=entries)[0]


def diff(prev: ZoneIndex, entries: Mapping[str, bytes]) -> tuple[dict[str, bytes], list[str]]:
    """Puts and deletes that turn `prev` into `entries` (O(zone): for full snapshots)."""
    puts = {}
    for key, raw in entries.items():
        old = prev.raw(key)
        if old is None or not (old is raw or old == raw):
            puts[key] = raw
    deletes = [key for key, _ in prev.items() if key not in entries]
    return puts, deletes
