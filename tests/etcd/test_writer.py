"""Writer against a real etcd: batching, concurrency, fencing, retries, failed batches,
throttling."""

from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter

import pytest

from aetcd import transactions

from fed_dns.etcd.backoff import Backoff
from fed_dns.etcd.client import EtcdSettings, connect
from fed_dns.etcd.leader import LeaderElector
from fed_dns.etcd.writer import NotLeader, WriteFailed, Writer
from fed_dns.model import Changes
from tests.etcd.helpers import running, until


async def contents(client, prefix: str) -> dict[str, bytes]:
    result = await client.get_prefix(prefix.encode())
    return {kv.key.decode(): kv.value for kv in result.kvs}


async def revision(client, prefix: str) -> int:
    return (await client.get_prefix(prefix.encode())).header.revision


async def history(client, prefix: str, *, since: int, count: int) -> list[tuple[int, str, str]]:
    """The first `count` events on our prefix after revision `since`, as (revision, kind, key).
    Read from a watch: the session's etcd is shared, so its global revision also counts what
    other tests left behind (a lease of theirs expiring deletes its keys meanwhile)."""
    events: list[tuple[int, str, str]] = []
    watch = await client.watch_prefix(prefix.encode(), start_revision=since + 1)
    try:
        async with asyncio.timeout(10):
            async for event in watch:
                events.append((event.kv.mod_revision, str(event.kind), event.kv.key.decode()))
                if len(events) == count:
                    break
    finally:
        await watch.cancel()
    return events


@pytest.mark.parametrize("concurrency", [1, 4], ids=["sequential", "concurrent"])
async def test_250_operations_are_three_transactions(client, prefix, concurrency):
    for i in range(50):
        await client.put(f"{prefix}old{i:03}".encode(), b"x")
    writer = Writer(client=client, max_ops=100, concurrency=concurrency)
    puts = {f"{prefix}new{i:03}": f'{{"host":"10.0.{i // 250}.{i % 250}"}}'.encode()
            for i in range(200)}
    deletes = tuple(f"{prefix}old{i:03}" for i in range(50))
    before = await revision(client, prefix)
    await writer.apply(Changes(puts=puts, deletes=deletes))
    assert await contents(client, prefix) == puts
    # Sorted by key: new000-new099 | new100-new199 | the 50 deletes. One revision each, in
    # this order when sequential, in any order when concurrent.
    events = await history(client, prefix, since=before, count=250)
    batches: dict[int, set[tuple[str, str]]] = {}
    for rev, kind, key in events:
        batches.setdefault(rev, set()).add((kind, key))
    expected = [{("PUT", k) for k in sorted(puts)[:100]}, {("PUT", k) for k in sorted(puts)[100:]},
                {("DELETE", k) for k in deletes}]
    assert sorted(batches.values(), key=sorted) == sorted(expected, key=sorted)
    if concurrency == 1:
        assert [batches[rev] for rev in sorted(batches)] == expected
    assert (writer.transactions, writer.writes, writer.errors) == (3, 250, 0)


async def test_a_large_change_is_written_whole_by_concurrent_transactions(client, prefix):
    writer = Writer(client=client, concurrency=8)
    puts = {f"{prefix}k{i:05}": f"v{i}".encode() for i in range(3000)}
    await writer.apply(Changes(puts=puts))
    assert await contents(client, prefix) == puts
    assert (writer.transactions, writer.writes) == (24, 3000)  # 23 x 128 + 56
    await writer.apply(Changes(deletes=tuple(puts)))
    assert await contents(client, prefix) == {}


async def test_an_empty_change_writes_nothing(client, prefix):
    writer = Writer(client=client)
    before = await revision(client, prefix)
    await writer.apply(Changes())
    await client.put(f"{prefix}marker".encode(), b"")  # the next event on our prefix
    [(_, kind, key)] = await history(client, prefix, since=before, count=1)
    assert (kind, key) == ("PUT", f"{prefix}marker")
    assert writer.transactions == 0


async def test_a_key_both_put_and_deleted_is_refused(client, prefix):
    writer = Writer(client=client)
    with pytest.raises(ValueError):
        await writer.apply(Changes(puts={f"{prefix}a": b"1"}, deletes=(f"{prefix}a",)))
    assert await contents(client, prefix) == {}


async def test_a_follower_cannot_write(client, prefix):
    leader = LeaderElector(client=client, key=f"{prefix}leader", identity="a", ttl=2)
    follower = LeaderElector(client=client, key=f"{prefix}leader", identity="b", ttl=2)
    async with running(leader.run()):
        await until(lambda: leader.is_leader, what="a leads")
        async with running(follower.run()):
            await until(lambda: follower.leader == "a", what="b sees a")
            writer = Writer(client=client, fence=follower.fence)
            with pytest.raises(NotLeader):
                await writer.apply(Changes(puts={f"{prefix}r/x": b"1"}))
            assert await contents(client, f"{prefix}r/") == {}
            leading = Writer(client=client, fence=leader.fence)
            await leading.apply(Changes(puts={f"{prefix}r/x": b"1"}))
            assert await contents(client, f"{prefix}r/") == {f"{prefix}r/x": b"1"}
        await leader.resign()


async def test_a_deposed_leader_is_refused_by_etcd(client, prefix):
    """The old leader still holds a fence compare; etcd refuses it once the key changed."""
    key = f"{prefix}leader"
    old = LeaderElector(client=client, key=key, identity="old", ttl=2)
    async with running(old.run()):
        await until(lambda: old.is_leader, what="old leads")
        stale = old.fence()
        # Deposed behind its back: its key is deleted and another replica takes the lead.
        await client.delete(key.encode())
        new = LeaderElector(client=client, key=key, identity="new", ttl=2)
        async with running(new.run()):
            await until(lambda: new.is_leader, what="new leads")
            writer = Writer(client=client, fence=lambda: stale, max_ops=10, concurrency=2)
            changes = Changes(puts={f"{prefix}r/{i:03}": b"1" for i in range(150)},
                              deletes=())
            with pytest.raises(NotLeader):
                await writer.apply(changes)
            assert await contents(client, f"{prefix}r/") == {}
            # The two transactions in flight were refused; none of the 13 others started.
            assert writer.transactions == 0 and writer.errors == 2
            await new.resign()


async def test_losing_the_lead_midway_starts_nothing_more(client, prefix):
    """The fence stops answering after three transactions: those three are written (the
    one in flight finishes), nothing after."""
    given = []

    def fence():
        given.append(1)
        return client.transactions.version(f"{prefix}absent".encode()) == 0 \
            if len(given) <= 3 else None

    writer = Writer(client=client, fence=fence, max_ops=10, concurrency=2)
    with pytest.raises(NotLeader):
        await writer.apply(Changes(puts={f"{prefix}{i:03}": b"1" for i in range(100)}))
    assert writer.transactions == 3 and len(await contents(client, prefix)) == 30
    assert len(given) == 4


async def cyclic_operations(case, prefix: str) -> int:
    """The etcd operations (of keys under `prefix`) that only the cycle collector would free
    after `await case()` (run with the collector off, as it is between the daemon's
    collections)."""
    gc.collect()
    gc.disable()
    try:
        await case()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        # The batches: lists of (key, value) pairs (a pair of bytes is not tracked by the
        # collector, a list always is).
        return sum(len(o) for o in gc.garbage if type(o) is list and o and type(o[0]) is tuple
                   and len(o[0]) == 2 and type(o[0][0]) is bytes and o[0][0].startswith(prefix.encode()))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


async def test_a_refused_apply_leaves_no_cycle_holding_its_operations(client, prefix):
    """A fenced-out apply (NotLeader) or a failed one (WriteFailed) frees its operations
    when the caller is done with the error. A cycle (the error's traceback -> a worker's
    frame -> the run -> the error) kept a 300,000-key change alive: the daemon freezes what
    survives (app.runtime), so that lasted until its hourly thaw."""
    given = []

    def fence():
        given.append(1)
        return client.transactions.version(f"{prefix}absent".encode()) == 0 if len(given) <= 2 else None

    outcomes = []

    async def fenced_out() -> None:
        writer = Writer(client=client, fence=fence, max_ops=10, concurrency=2)
        try:
            await writer.apply(Changes(puts={f"{prefix}n{i:03}": b"1" for i in range(100)}))
        except NotLeader:
            outcomes.append("NotLeader")

    async def refused() -> None:
        writer = Writer(client=client, max_ops=4, concurrency=2)
        puts = {f"{prefix}w{i:02}": b"small" for i in range(20)}
        puts[f"{prefix}w10"] = b"x" * 1_700_000  # over etcd's request limit
        try:
            await writer.apply(Changes(puts=puts, deletes=(f"{prefix}zz",)))
        except WriteFailed:
            outcomes.append("WriteFailed")

    for case in (fenced_out, refused):
        assert await cyclic_operations(case, prefix) == 0, case.__name__
    assert outcomes == ["NotLeader", "WriteFailed"]


async def test_a_batch_etcd_refuses_does_not_stop_the_others(client, prefix):
    """A value over etcd's request limit (1.5 MiB): its transaction is refused for good, the
    others are written, and WriteFailed names exactly what was not."""
    puts = {f"{prefix}{i:02}": b"small" for i in range(20)}
    puts[f"{prefix}10"] = b"x" * 1_700_000
    deletes = (f"{prefix}zz",)
    writer = Writer(client=client, max_ops=4, concurrency=2)
    with pytest.raises(WriteFailed) as err:
        await writer.apply(Changes(puts=puts, deletes=deletes))
    bad = {f"{prefix}{i:02}" for i in range(8, 12)}  # the third batch of four
    assert dict(err.value.unwritten.puts) == {k: puts[k] for k in bad}
    assert err.value.unwritten.deletes == ()
    assert await contents(client, prefix) == {k: v for k, v in puts.items() if k not in bad}
    assert "1 of 6 etcd transactions not written (4 puts, 0 deletes)" in str(err.value)
    assert (writer.transactions, writer.errors, writer.unwritten) == (5, 1, 4)


async def test_transient_errors_are_retried_then_reported(etcd_fresh, prefix):
    settings = EtcdSettings(endpoints=(etcd_fresh.url,), timeout=0.5)
    client = await connect(settings)
    try:
        etcd_fresh.stop()
        writer = Writer(client=client, retries=2, backoff=Backoff(initial=0.05, maximum=0.1),
                        timeout=0.5)
        with pytest.raises(WriteFailed) as err:
            await writer.apply(Changes(puts={f"{prefix}a": b"1"}))
        assert "3 attempts" in str(err.value) and writer.errors == 3
        assert err.value.unwritten == Changes(puts={f"{prefix}a": b"1"})
    finally:
        await client.close()


async def test_with_etcd_away_the_rest_is_not_tried(etcd_fresh, prefix):
    """Two transactions failing in a row mean etcd is away: the other eight are given up
    at once, all ten in `unwritten`. (Sequential, so that the count of attempts is exact: with
    concurrency N, N failures in a row, and the ones in flight then finish.)"""
    settings = EtcdSettings(endpoints=(etcd_fresh.url,), timeout=0.5)
    client = await connect(settings)
    try:
        etcd_fresh.stop()
        writer = Writer(client=client, max_ops=5, concurrency=1, retries=1,
                        backoff=Backoff(initial=0.01, maximum=0.02), timeout=0.5)
        puts = {f"{prefix}{i:02}": b"1" for i in range(40)}
        deletes = tuple(f"{prefix}d{i:02}" for i in range(10))
        with pytest.raises(WriteFailed) as err:
            await writer.apply(Changes(puts=puts, deletes=deletes))
        assert writer.errors == 4  # two transactions, two attempts each
        assert dict(err.value.unwritten.puts) == puts
        assert sorted(err.value.unwritten.deletes) == sorted(deletes)
        assert "10 of 10" in str(err.value) and "8 not tried" in str(err.value)
    finally:
        await client.close()


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"max_ops": 0}, "max_ops"),
    ({"concurrency": 0}, "concurrency"),
    ({"rate_per_second": 0}, "rate_per_second"),
], ids=["no-ops", "no-concurrency", "zero-rate"])
async def test_bad_settings_are_refused(client, kwargs, error):
    with pytest.raises(ValueError, match=error):
        Writer(client=client, **kwargs)


async def test_rate_limit_spaces_transactions(client, prefix):
    writer = Writer(client=client, max_ops=1, rate_per_second=5)
    start = time.monotonic()
    await writer.apply(Changes(puts={f"{prefix}{i}": b"1" for i in range(7)}))
    # 5 per second: the 6th and 7th transactions wait for the first second to pass.
    assert time.monotonic() - start >= 0.95
    assert writer.transactions == 7


async def test_an_epoch_moved_under_the_writer_refuses_stale_transactions(client, prefix):
    """With epoch_key, a transaction carrying an old token changes nothing (as a late commit
    of a timed-out one would), and the writer goes on under a new token."""
    epoch = f"{prefix}epoch"
    writer = Writer(client=client, epoch_key=epoch, max_ops=10)
    await writer.apply(Changes(puts={f"{prefix}a": b"1"}))
    old = (await client.get(epoch.encode())).value
    late = client.transactions.put(f"{prefix}a".encode(), b"late")
    await client.put(epoch.encode(), b"someone-else")  # the epoch moves
    ok, _ = await client.transaction(compare=[client.transactions.value(epoch.encode()) == old],
                                     success=[late], failure=[])
    assert not ok  # what a late commit of a transaction under `old` would do: nothing
    await writer.apply(Changes(puts={f"{prefix}b": b"2"}))
    assert (await client.get(f"{prefix}b".encode())).value == b"2"
    assert (await client.get(f"{prefix}a".encode())).value == b"1"
    assert writer.epochs == 2 and (await client.get(epoch.encode())).value not in (old, b"someone-else")


def test_the_request_holds_the_batch_in_order_under_the_compares():
    from aetcd import rpc

    from fed_dns.etcd.writer import request

    compare = transactions.Version(b"/lock") == 0
    txn = request(compare=[compare], batch=[(b"/a", b"1"), (b"/b", None), (b"/c", b"")],
                  read=b"/epoch")
    assert list(txn.compare) == [compare.build_message()]
    assert [op.WhichOneof("request") for op in txn.success] == \
        ["request_put", "request_delete_range", "request_put"]
    assert [(op.request_put.key, op.request_put.value) for op in txn.success
            if op.HasField("request_put")] == [(b"/a", b"1"), (b"/c", b"")]
    assert txn.success[1].request_delete_range == rpc.DeleteRangeRequest(key=b"/b")  # that key alone
    assert [op.request_range for op in txn.failure] == [rpc.RangeRequest(key=b"/epoch")]
    assert not request(compare=[], batch=[]).failure


@pytest.mark.parametrize("code, error", [
    ("UNAVAILABLE", "ConnectionFailedError"),
    ("DEADLINE_EXCEEDED", "ConnectionTimeoutError"),
    ("INTERNAL", "InternalError"),
    ("FAILED_PRECONDITION", "PreconditionFailedError"),
    ("INVALID_ARGUMENT", "InvalidArgumentError"),
    ("UNAUTHENTICATED", "UnauthenticatedError"),
    ("PERMISSION_DENIED", "ClientError"),
    ("RESOURCE_EXHAUSTED", "ClientError"),
])
def test_a_failed_call_is_raised_as_aetcd_raises_it(code, error):
    """The writer calls Txn itself; its failures keep the classes aetcd gives them (the
    writer retries the transient ones and gives up on the others)."""
    import aetcd.exceptions
    import grpc

    from fed_dns.etcd.ranges import client_error

    status = getattr(grpc.StatusCode, code)
    exc = grpc.aio.AioRpcError(status, grpc.aio.Metadata(), grpc.aio.Metadata(), details="why")
    got = client_error(exc)
    assert type(got) is getattr(aetcd.exceptions, error) and str(got) == "why"
    assert type(got) is aetcd.exceptions._EXCEPTIONS_BY_CODE.get(status, aetcd.ClientError)
