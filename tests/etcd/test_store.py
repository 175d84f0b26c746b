"""MemoryStore behaves as the etcd store does: one table of cases, run on both."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import pytest

from fed_dns.etcd.leader import LeaderElector
from fed_dns.etcd.store import EtcdStore, MemoryStore, RecordStore
from fed_dns.etcd.writer import NotLeader, Writer
from fed_dns.model import Changes
from tests.etcd.helpers import Changes as Recorder
from tests.etcd.helpers import until


@dataclass(frozen=True)
class Case:
    initial: dict[str, bytes]
    puts: dict[str, bytes] = field(default_factory=dict)
    deletes: tuple[str, ...] = ()
    want: dict[str, bytes] | None = None  # None: same as initial (nothing changes)
    transactions: int = 0
    error: type[Exception] | None = None


CASES = {
    "nothing to do": Case(initial={"a": b"1"}, transactions=0),
    "put new": Case(initial={}, puts={"a": b"1"}, want={"a": b"1"}, transactions=1),
    "overwrite": Case(initial={"a": b"1"}, puts={"a": b"2"}, want={"a": b"2"}, transactions=1),
    "delete": Case(initial={"a": b"1", "b": b"2"}, deletes=("a",), want={"b": b"2"},
                   transactions=1),
    "delete missing is a no-op": Case(initial={"a": b"1"}, deletes=("zz",), transactions=1),
    "put and delete together": Case(initial={"a/1": b"x", "a/2": b"y"}, puts={"a": b"cname"},
                                    deletes=("a/1", "a/2"), want={"a": b"cname"},
                                    transactions=1),
    "split in batches of 3": Case(initial={}, puts={f"k{i}": b"v" for i in range(7)},
                                  want={f"k{i}": b"v" for i in range(7)}, transactions=3),
    "same key put and deleted": Case(initial={"a": b"1"}, puts={"a": b"2"}, deletes=("a",),
                                     error=ValueError),
    "not the leader": Case(initial={}, puts={"b": b"2"}, deletes=("a",), error=NotLeader),
    "nested keys stay apart": Case(initial={"a": b"1", "a/b": b"2", "ab": b"3"},
                                   deletes=("a",), want={"a/b": b"2", "ab": b"3"},
                                   transactions=1),
}


@contextlib.asynccontextmanager
async def etcd_store(client, settings, prefix, *, leader: bool):
    key = f"{prefix}!leader"  # outside the records' prefix below
    elector = LeaderElector(client=client, key=key, identity="me", ttl=2)
    task = None
    if leader:
        task = asyncio.create_task(elector.run())
        await until(lambda: elector.is_leader, what="leader")
    writer = Writer(client=client, fence=elector.fence, max_ops=3)
    try:
        yield EtcdStore(client=client, settings=settings, writer=writer)
    finally:
        if task:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await elector.resign()


@contextlib.asynccontextmanager
async def memory_store(client, settings, prefix, *, leader: bool):
    yield MemoryStore(max_ops=3, leader=lambda: leader)


@pytest.mark.parametrize("make", [etcd_store, memory_store], ids=["etcd", "memory"])
@pytest.mark.parametrize("name", list(CASES))
async def test_store_table(make, name, client, settings, prefix):
    case = CASES[name]
    root = f"{prefix}r/"
    async with make(client, settings, prefix, leader=name != "not the leader") as store:
        assert isinstance(store, RecordStore)
        if case.initial:
            await store.apply(Changes(puts={root + k: v for k, v in case.initial.items()}))
        before = store.transactions
        changes = Changes(puts={root + k: v for k, v in case.puts.items()},
                          deletes=tuple(root + k for k in case.deletes))
        if case.error:
            with pytest.raises(case.error):
                await store.apply(changes)
        else:
            await store.apply(changes)
            assert store.transactions - before == case.transactions
        want = case.initial if case.want is None else case.want
        assert await store.read(prefix=root) == {root + k: v for k, v in want.items()}


@pytest.mark.parametrize("make", [etcd_store, memory_store], ids=["etcd", "memory"])
async def test_store_watch(make, client, settings, prefix):
    root = f"{prefix}r/"
    async with make(client, settings, prefix, leader=True) as store:
        await store.apply(Changes(puts={f"{root}a": b"1", f"{prefix}other": b"x"}))
        seen = Recorder()
        task = asyncio.create_task(store.watch(prefix=root, on_change=seen))
        try:
            await until(lambda: seen.state == {f"{root}a": b"1"}, what="initial contents")
            assert [c.reload for c in seen.changes] == [True]
            await store.apply(Changes(puts={f"{root}b": b"2"}, deletes=(f"{root}a",)))
            await until(lambda: seen.state == {f"{root}b": b"2"}, what="the change")
            [change] = seen.changes[1:]  # one transaction, one call
            assert dict(change.puts) == {f"{root}b": b"2"} and change.deletes == {f"{root}a"}
            assert not change.reload and change.revision > seen.changes[0].revision
            calls = len(seen.calls)
            await store.apply(Changes(puts={f"{prefix}other": b"y"}))  # outside: no call
            await store.apply(Changes(deletes=(f"{root}zz",)))  # deletes nothing: no call
            await store.apply(Changes(puts={f"{root}c": b"3"}))
            await until(lambda: len(seen.state) == 2, what="c")
            assert len(seen.calls) == calls + 1
            assert dict(seen.last.puts) == {f"{root}c": b"3"} and not seen.last.deletes
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
