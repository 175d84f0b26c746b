"""Both stores behind one fixture: `storage` runs a test on the memory store and on the etcd
store (a real etcd, a key prefix of the test's own)."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from aetcd import rpc

from fed_dns.apiserver.builtin import CONFIG_MAP, DEPLOYMENT, NAMESPACE, REPLICA_SET, SECRET
from fed_dns.apiserver.etcd3 import EtcdStorage
from fed_dns.apiserver.kinds import Registry
from fed_dns.apiserver.memory import MemoryStorage, MemoryStore
from fed_dns.apiserver.watchers import Watcher
from fed_dns.etcd.client import EtcdSettings, connect

KINDS = (NAMESPACE, SECRET, CONFIG_MAP, DEPLOYMENT, REPLICA_SET)
REGISTRY = Registry(KINDS)


@dataclass
class Backend:
    name: str
    storage: Any
    client: Any = None  # aetcd client (etcd only)

    async def compact(self) -> None:
        """Forget every revision before the current one."""
        if self.name == "memory":
            self.storage.store.compact()
            return
        response = await self.client.kvstub.Range(rpc.RangeRequest(key=b"\x00", count_only=True),
                                                  metadata=self.client.metadata)
        await self.client.compact(response.header.revision, physical=True)


async def _backend(name: str, request, *, etcd_fixture: str):
    if name == "memory":
        b = Backend(name=name, storage=MemoryStorage(MemoryStore(KINDS)))
        yield b
        b.storage.store.close_watchers()
        return
    etcd = request.getfixturevalue(etcd_fixture)
    client = await connect(EtcdSettings(endpoints=(etcd.url,), timeout=3.0))
    storage = EtcdStorage(client=client, prefix=f"/test-{uuid.uuid4().hex[:10]}/api/")
    try:
        yield Backend(name=name, storage=storage, client=client)
    finally:
        storage.close_watchers()
        await asyncio.sleep(0)  # let the cancelled watch feeds finish
        await client.close()


@pytest.fixture(params=["memory", "etcd"])
async def backend(request) -> Backend:
    """Either store; the etcd one on the session's etcd."""
    async for b in _backend(request.param, request, etcd_fixture="etcd_server"):
        yield b


@pytest.fixture(params=["memory", "etcd"])
async def fresh_backend(request) -> Backend:
    """Either store; the etcd one on an etcd of the test's own (for compaction)."""
    async for b in _backend(request.param, request, etcd_fixture="etcd_fresh"):
        yield b


async def events(watcher: Watcher, count: int, *, timeout: float = 5.0) -> list[dict]:
    """The next `count` events of a watcher (decoded), waiting for them at most `timeout`."""
    out: list[dict] = []
    pending = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(out) < count:
        if watcher.buffer:
            pending += watcher.take()
            *lines, pending = pending.split(b"\n")
            out.extend(json.loads(line) for line in lines if line)
            continue
        if watcher.closed:
            break
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            await asyncio.wait_for(watcher.wakeup.wait(), remaining)
        except TimeoutError:
            break
    return out
