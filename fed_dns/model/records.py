"""SkyDNS records (CoreDNS etcd plugin message format) and the zone fed-dns wants."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class AllUnhealthy(enum.StrEnum):
    """What the global name answers when no cluster is healthy (naming.md)."""

    SERVE_ALL = "serve-all"
    EMPTY = "empty"


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One etcd value in the SkyDNS format; `owner` and `cluster` are fed-dns's own fields.

    Zero / empty fields are left out when encoded, as CoreDNS's msg.Service does.
    """

    host: str = ""
    port: int = 0
    priority: int = 0
    weight: int = 0
    text: str = ""
    mail: bool = False
    ttl: int = 0
    targetstrip: int = 0
    group: str = ""
    owner: str = ""
    cluster: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneSettings:
    """The per-federation knobs that decide names, keys and values."""

    zone: str  # lower case, trailing dot: "fed.example.com."
    prefix: str = "/skydns"
    owner_id: str = ""  # defaults to "fed-dns/<zone>" where built from config
    ttl: int = 5
    all_unhealthy: AllUnhealthy = AllUnhealthy.SERVE_ALL


@dataclass(frozen=True, slots=True, kw_only=True)
class DesiredZone:
    """The whole zone as fed-dns wants it: etcd key -> record.

    `keep_clusters` are members whose health is still `unknown`: their existing keys are
    left as they are in etcd (a restart of fed-dns flaps nothing).
    """

    settings: ZoneSettings
    records: Mapping[str, Record] = field(default_factory=dict)
    keep_clusters: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class Changes:
    """What to write to etcd to go from its current contents to a DesiredZone."""

    puts: Mapping[str, bytes] = field(default_factory=dict)
    deletes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.puts or self.deletes)
