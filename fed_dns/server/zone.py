"""The zone's names from raw etcd keys: which names exist and which values each one reads.

CoreDNS's etcd plugin answers a name from a prefix read of `<key>/`: every value strictly
below the name's key, or, when there is none, the value at the key itself. `ZoneIndex`
keeps both per name so a question never scans the zone.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field

from fed_dns.server.services import Service, decode, service


def key_labels(*, key: str, prefix: str) -> list[str] | None:
    """`/skydns/com/example/x` -> ["x", "example", "com"]; None for a key not of this shape.

    Unlike records.names.key_to_name this keeps the key's case: CoreDNS never matches a
    key holding upper case by its own name, but still returns it under its ancestors.
    """
    prefix = prefix.rstrip("/")
    if not key.startswith(prefix + "/"):
        return None
    parts = key[len(prefix) + 1:].split("/")
    if any(p == "" or "." in p for p in parts):
        return None
    parts.reverse()
    return parts


def zone_labels(zone: str) -> list[str]:
    return [label for label in zone.rstrip(".").split(".") if label]


@dataclass(slots=True)
class ZoneIndex:
    """Immutable by convention once built."""

    zone: str  # lower case, trailing dot
    exact: dict[str, Service] = field(default_factory=dict)
    below: dict[str, list[Service]] = field(default_factory=dict)
    decoded: dict[str, tuple[bytes, Service]] = field(default_factory=dict)  # key -> (raw, svc)
    rejected: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # key -> (raw, why)

    @property
    def dropped(self) -> int:
        """Values that did not decode."""
        return sum(1 for _, why in self.rejected.values() if why == DROPPED)

    @property
    def foreign(self) -> int:
        """Keys outside the zone (or not a name)."""
        return sum(1 for _, why in self.rejected.values() if why == FOREIGN)

    def exists(self, name: str) -> bool:
        return name == self.zone or name in self.below or name in self.exact

    def read(self, name: str) -> list[Service] | None:
        """The prefix read CoreDNS does: None when no key is at or below the name."""
        below = self.below.get(name)
        if below:
            return below
        svc = self.exact.get(name)
        return [svc] if svc is not None else None

    def read_exact(self, name: str) -> Service | None:
        return self.exact.get(name)


DROPPED, FOREIGN = "dropped", "foreign"
MAX_INCREMENTAL = 0.1  # above this share of changed keys a full build is cheaper


def _classify(*, key: str, raw: bytes, zl: list[str], prefix: str,
              old: tuple[bytes, Service] | None) -> Service | str:
    """The key's Service, or why it has none (FOREIGN, DROPPED)."""
    if old is not None and (old[0] is raw or old[0] == raw):
        return old[1]
    labels = key_labels(key=key, prefix=prefix)
    depth = len(zl)
    if labels is None or len(labels) <= depth or labels[len(labels) - depth:] != zl:
        return FOREIGN
    try:
        record = decode(raw)
    except ValueError:
        return DROPPED
    return service(key=key, name=".".join(labels) + ".", record=record)


def _ancestors(svc: Service, depth: int) -> list[str]:
    """Names strictly above the service's name, down to the zone apex."""
    labels = svc.name[:-1].split(".")
    return [".".join(labels[cut:]) + "." for cut in range(1, len(labels) - depth + 1)]


def _by_key(svc: Service) -> str:
    return svc.key


def _place(ix: ZoneIndex, *, key: str, raw: bytes, got: Service | str, depth: int, add) -> None:
    """Record a classified key: rejected with its reason, or a Service under every ancestor."""
    if isinstance(got, str):
        ix.rejected[key] = (raw, got)
        return
    ix.decoded[key] = (raw, got)
    ix.exact[got.name] = got
    for name in _ancestors(got, depth):
        add(name, got)


def index(*, zone: str, entries: Mapping[str, bytes], prefix: str = "/skydns",
          reuse: Mapping[str, tuple[bytes, Service]] | None = None) -> ZoneIndex:
    """The whole index from scratch (decoded values in `reuse` are not decoded again)."""
    zl = zone_labels(zone)
    ix = ZoneIndex(zone=zone)
    reuse = reuse or {}
    for key in sorted(entries):
        raw = entries[key]
        got = _classify(key=key, raw=raw, zl=zl, prefix=prefix, old=reuse.get(key))
        _place(ix, key=key, raw=raw, got=got, depth=len(zl),
               add=lambda name, svc: ix.below.setdefault(name, []).append(svc))
    return ix


def changed_keys(prev: ZoneIndex, entries: Mapping[str, bytes]) -> list[str]:
    """Keys whose value differs between `prev` and `entries` (added and removed included)."""
    out = []
    for key, raw in entries.items():
        old = prev.decoded.get(key) or prev.rejected.get(key)
        if old is None or not (old[0] is raw or old[0] == raw):
            out.append(key)
    out.extend(k for k in prev.decoded if k not in entries)
    out.extend(k for k in prev.rejected if k not in entries)
    return out


def update(*, prev: ZoneIndex, entries: Mapping[str, bytes], prefix: str,
           changed: list[str]) -> ZoneIndex:
    """`prev` with the changed keys applied; lists of untouched names are shared, not copied."""
    zl = zone_labels(prev.zone)
    ix = ZoneIndex(zone=prev.zone, exact=dict(prev.exact), below=dict(prev.below),
                   decoded=dict(prev.decoded), rejected=dict(prev.rejected))
    copied: set[str] = set()

    def own(name: str) -> list[Service]:
        if name not in copied:
            copied.add(name)
            ix.below[name] = list(ix.below.get(name, ()))
        return ix.below[name]

    for key in changed:
        ix.rejected.pop(key, None)
        old = ix.decoded.pop(key, None)
        if old is not None:
            svc = old[1]
            if ix.exact.get(svc.name) is svc:
                del ix.exact[svc.name]
            for name in _ancestors(svc, len(zl)):
                own(name).remove(svc)
        raw = entries.get(key)
        if raw is None:
            continue
        got = _classify(key=key, raw=raw, zl=zl, prefix=prefix, old=None)
        _place(ix, key=key, raw=raw, got=got, depth=len(zl),
               add=lambda name, svc: bisect.insort(own(name), svc, key=_by_key))
    for name in copied:
        if not ix.below[name]:
            del ix.below[name]
    return ix
