"""RecordStore: the three things the rest of fed-dns needs from a key-value store, with the
real etcd implementation and an in-memory one that behaves the same (for unit tests and for
running with no etcd configured).

- `read(prefix=)`: every key under a prefix, at one revision (paginated on etcd: any size).
- `apply(changes)`: puts and deletes in transactions of at most `max_ops` operations, each one
  whole; NotLeader (nothing written by that transaction, none started after it) when the
  fence refuses; WriteFailed with `.unwritten` when some could not be written.
- `watch(prefix=, on_change=)`: runs until cancelled; calls on_change with a MirrorChange:
  first `reload=True` with the whole prefix in `puts`, then one per batch of changes (on
  etcd a batch of watch events, never a part of a transaction; in memory one transaction).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import aetcd

from fed_dns.etcd import ranges
from fed_dns.etcd.client import EtcdSettings
from fed_dns.etcd.mirror import MirrorChange, ZoneMirror
from fed_dns.etcd.writer import NotLeader, Writer, chunks, operations
from fed_dns.model import Changes

OnChange = Callable[[MirrorChange], None]


@runtime_checkable
class RecordStore(Protocol):
    async def read(self, *, prefix: str) -> dict[str, bytes]: ...

    async def apply(self, changes: Changes) -> None: ...

    async def watch(self, *, prefix: str, on_change: OnChange) -> None: ...


class EtcdStore:
    """RecordStore on etcd: reads with the client, writes with a Writer (fenced when given
    a fence), watches with a ZoneMirror (its own connection, reconnecting)."""

    def __init__(self, *, client: aetcd.Client, settings: EtcdSettings,
                 writer: Writer | None = None) -> None:
        self._client = client
        self._settings = settings
        self.writer = writer or Writer(client=client)

    async def read(self, *, prefix: str) -> dict[str, bytes]:
        loaded = await ranges.read_prefix(self._client, prefix=prefix.encode(),
                                          timeout=self._settings.timeout)
        return loaded.data

    async def apply(self, changes: Changes) -> None:
        await self.writer.apply(changes)

    async def watch(self, *, prefix: str, on_change: OnChange) -> None:
        await ZoneMirror(settings=self._settings, prefix=prefix, on_change=on_change).run()

    @property
    def transactions(self) -> int:
        return self.writer.transactions


class MemoryStore:
    """RecordStore in a dict, with etcd's transaction semantics: batches of `max_ops`, each
    applied whole with its own revision and one notification; `leader()` False -> NotLeader."""

    def __init__(self, *, max_ops: int = 128, leader: Callable[[], bool] | None = None) -> None:
        if max_ops < 1:
            raise ValueError("max_ops must be at least 1")
        self._max_ops = max_ops
        self._leader = leader
        self._data: dict[str, bytes] = {}
        self._watchers: list[tuple[str, OnChange]] = []
        self.revision = 1  # as a fresh etcd
        self.transactions = 0
        self.writes = 0

    async def read(self, *, prefix: str) -> dict[str, bytes]:
        return {k: v for k, v in self._data.items() if k.startswith(prefix)}

    async def apply(self, changes: Changes) -> None:
        for batch in chunks(operations(changes), self._max_ops):
            if self._leader is not None and not self._leader():
                raise NotLeader("not the leader: refusing to write")
            puts: dict[str, bytes] = {}
            deletes: set[str] = set()
            for raw, value in batch:  # as etcd: a put is an event even when equal, a no-op delete is not
                key = raw.decode()
                if value is not None:
                    self._data[key] = puts[key] = value
                elif self._data.pop(key, None) is not None:
                    deletes.add(key)
            self.revision += 1 if puts or deletes else 0
            self.transactions += 1
            self.writes += len(batch)
            for prefix, on_change in list(self._watchers):
                change = MirrorChange(
                    puts=MappingProxyType({k: v for k, v in puts.items() if k.startswith(prefix)}),
                    deletes=frozenset(k for k in deletes if k.startswith(prefix)),
                    reload=False, revision=self.revision)
                if change.puts or change.deletes:
                    on_change(change)
            await asyncio.sleep(0)  # as etcd: other tasks run between transactions

    async def watch(self, *, prefix: str, on_change: OnChange) -> None:
        entry = (prefix, on_change)
        self._watchers.append(entry)
        try:
            on_change(MirrorChange(puts=MappingProxyType(await self.read(prefix=prefix)),
                                   deletes=frozenset(), reload=True, revision=self.revision))
            await asyncio.Event().wait()
        finally:
            self._watchers.remove(entry)
