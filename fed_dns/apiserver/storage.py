"""The storage protocol the HTTP handlers use, and the metadata rules every store shares.

Two stores implement `Storage`: `memory.MemoryStorage` (one process: the simulated members,
the demo) and `etcd3.EtcdStorage` (kube-apiserver's layout: resourceVersion = etcd revision,
compare-and-swap writes, etcd watches). `tests/apiserver` runs one conformance table on both.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from fed_dns.apiserver.kinds import Kind
from fed_dns.apiserver.watchers import Watcher, clone, dumps, event_line

Key = tuple[str, str]  # (namespace or "", name)
Matcher = Callable[[dict], bool]


@dataclass(slots=True, eq=False)
class Stored:
    """An object as stored: the dict (never mutated after storing) and its JSON bytes."""

    obj: dict
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Listing:
    """One page of a list: its items, the key to continue after (None: last page), and the
    revision the whole list is read at."""

    items: list[Stored]
    after: Key | None
    revision: int


class Storage(Protocol):
    """What the handlers need of a store. Errors are `status.ApiError`s (404, 409, 410)."""

    async def get(self, kind: Kind, *, namespace: str, name: str) -> Stored | None: ...

    async def list(self, kind: Kind, *, namespace: str | None, matcher: Matcher | None,
                   after: Key | None = None, limit: int = 0,
                   revision: int | None = None) -> Listing: ...

    async def create(self, kind: Kind, obj: dict) -> Stored: ...

    async def update(self, kind: Kind, obj: dict, *, subresource: str | None = None) -> Stored:
        """PUT: a resourceVersion in the body must be the current one (else 409 Conflict)."""
        ...

    async def delete(self, kind: Kind, *, namespace: str, name: str,
                     preconditions: dict | None = None) -> Stored: ...

    async def watch(self, kind: Kind, *, namespace: str | None, matcher: Matcher | None,
                    resource_version: int | None, send_initial: bool = False) -> Watcher:
        """A watcher already holding what it must see first: with no resource_version, an
        ADDED per object; else every event after it (ApiError 410 when compacted)."""
        ...

    def unwatch(self, watcher: Watcher) -> None: ...

    def bookmark_revision(self, watcher: Watcher) -> int:
        """A revision the watcher has seen every event up to (for BOOKMARK events)."""
        ...


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


GENERATED_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # kube-apiserver's (no vowels, no 0/1/3)


def generate_name(obj: dict) -> None:
    """kube-apiserver's generateName, in place: with no name, the prefix (cut to 58
    characters) and five random characters."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and not meta.get("name") and \
            isinstance(meta.get("generateName"), str) and meta["generateName"]:
        meta["name"] = meta["generateName"][:58] + "".join(
            secrets.choice(GENERATED_ALPHABET) for _ in range(5))


def key_of(kind: Kind, obj: dict) -> Key:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace", "") if kind.namespaced else "", meta.get("name", ""))


def content(obj: dict) -> dict:
    """What a spec change is judged on: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def prepare(kind: Kind, key: Key, obj: dict, *, old: dict | None, keep_status: bool) -> dict:
    """A copy of `obj` as it will be stored: apiVersion/kind of the Kind, name and namespace
    from the key, uid/creationTimestamp kept from `old` (or new), generation of `old` (bump
    it with `bump_generation` once defaults are in), status kept from `old` unless
    `keep_status`. The resourceVersion is the store's to set."""
    obj = clone(obj)
    obj["apiVersion"] = kind.api_version
    obj["kind"] = kind.kind
    meta = obj.setdefault("metadata", {})
    meta["name"] = key[1]
    if kind.namespaced:
        meta["namespace"] = key[0]
    else:
        meta.pop("namespace", None)
    if old is None:
        meta["uid"] = meta.get("uid") or str(uuid.uuid4())
        meta["creationTimestamp"] = meta.get("creationTimestamp") or now()
        meta["generation"] = 1
        if not keep_status:
            obj.pop("status", None)
    else:
        old_meta = old["metadata"]
        meta["uid"] = old_meta["uid"]
        meta["creationTimestamp"] = old_meta["creationTimestamp"]
        meta["generation"] = old_meta.get("generation", 1)
        if not keep_status:
            obj["status"] = clone(old.get("status") or {})
    return obj


def bump_generation(obj: dict, *, old: dict | None) -> bool:
    """Add one to metadata.generation when the spec changed; whether it did."""
    if old is not None and content(obj) != content(old):
        obj["metadata"]["generation"] += 1
        return True
    return False


def with_status(old: dict, new: dict) -> dict:
    """The status subresource's write: `old` with `new`'s status."""
    return dict(old, status=clone(new.get("status") or {}))


def stale(sent_rv: str | None, current_rv: str) -> bool:
    return bool(sent_rv) and sent_rv != current_rv


def preconditions_fail(meta: dict, pre: dict | None) -> bool:
    pre = pre or {}
    return bool((pre.get("uid") and pre["uid"] != meta.get("uid")) or
                (pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]))


def bookmark(kind: Kind, rv: int, *, initial_events_end: bool = False) -> bytes:
    meta: dict = {"resourceVersion": str(rv)}
    if initial_events_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return event_line("BOOKMARK", dumps({"kind": kind.kind, "apiVersion": kind.api_version,
                                         "metadata": meta}))
