"""The zone's names from raw etcd keys: which names exist and which values each one reads.

CoreDNS's etcd plugin answers a name from a prefix read of `<key>/`: every value strictly
below the name's key, or, when there is none, the value at the key itself. `ZoneIndex`
keeps both per name so a question never scans the zone.
"""

from __future__ import annotations

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
    dropped: int = 0  # values that did not decode
    foreign: int = 0  # keys outside the zone (or not a name)

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


def index(*, zone: str, entries: Mapping[str, bytes], prefix: str = "/skydns",
          reuse: Mapping[str, tuple[bytes, Service]] | None = None) -> tuple[ZoneIndex, dict]:
    """Build the index; returns it and a key -> (raw, Service) map to reuse next time."""
    zl = zone_labels(zone)
    depth = len(zl)
    ix = ZoneIndex(zone=zone)
    decoded: dict[str, tuple[bytes, Service]] = {}
    reuse = reuse or {}
    for key in sorted(entries):
        raw = entries[key]
        labels = key_labels(key=key, prefix=prefix)
        if labels is None or len(labels) <= depth or labels[len(labels) - depth:] != zl:
            ix.foreign += 1
            continue
        old = reuse.get(key)
        if old is not None and old[0] == raw:
            svc = old[1]
        else:
            try:
                record = decode(raw)
            except ValueError:
                ix.dropped += 1
                continue
            svc = service(key=key, name=".".join(labels) + ".", record=record)
        decoded[key] = (raw, svc)
        ix.exact[svc.name] = svc
        for cut in range(1, len(labels) - depth + 1):
            ix.below.setdefault(".".join(labels[cut:]) + ".", []).append(svc)
    return ix, decoded
