"""RecordStore: the three things the rest of fed-dns needs from a key-value store, with the
real etcd implementation and an in-memory one that behaves the same (for unit tests and for
running with no etcd configured).

- `read(prefix=)`: every key under a prefix.
- `apply(changes)`: puts and deletes in transactions of at most `max_ops` operations, each one
  whole; NotLeader (nothing written by that transaction) when the fence refuses.
- `watch(prefix=, on_change=)`: runs until cancelled; calls on_change with the whole
  prefix's contents at once, then after every change (a read-only mapping, never mutated).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import aetcd
from aetcd import transactions

from fed_dns.etcd.client import EtcdSettings
from fed_dns.etcd.mirror import ZoneMirror
from fed_dns.etcd.writer import NotLeader, Writer, chunks, operations
from fed_dns.model import Changes

OnChange = Callable[[Mapping[str, bytes]], None]


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
        result = await self._client.get_prefix(prefix.encode())
        return {kv.key.decode(errors="surrogateescape"): kv.value for kv in result.kvs}

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

    def __init__(self, *, max_ops: int = 100, leader: Callable[[], bool] | None = None) -> None:
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
            data = dict(self._data)
            touched = []  # as etcd: a put is an event even when equal, a no-op delete is not
            for op in batch:
                key = op.key.decode()
                if isinstance(op, transactions.Put):
                    data[key] = op.value
                    touched.append(key)
                elif data.pop(key, None) is not None:
                    touched.append(key)
            self._data = data
            self.revision += 1 if touched else 0
            self.transactions += 1
            self.writes += len(batch)
            for prefix, on_change in list(self._watchers):
                if any(key.startswith(prefix) for key in touched):
                    on_change(self._view(prefix))
            await asyncio.sleep(0)  # as etcd: other tasks run between transactions

    async def watch(self, *, prefix: str, on_change: OnChange) -> None:
        entry = (prefix, on_change)
        self._watchers.append(entry)
        try:
            on_change(self._view(prefix))
            await asyncio.Event().wait()
        finally:
            self._watchers.remove(entry)

    def _view(self, prefix: str) -> Mapping[str, bytes]:
        return MappingProxyType({k: v for k, v in self._data.items() if k.startswith(prefix)})
