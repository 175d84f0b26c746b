"""ZoneMirror against a real etcd: load, propagation, outages, compaction."""

from __future__ import annotations

import asyncio
import signal
import statistics
import time

import aetcd
import pytest

from fed_dns.etcd.backoff import Backoff
from fed_dns.etcd.client import EtcdSettings, connect
from fed_dns.etcd.mirror import ZoneMirror
from fed_dns.etcd.writer import Writer
from fed_dns.model import Changes as ModelChanges
from tests.etcd.helpers import Changes, running, until

FAST = Backoff(initial=0.05, maximum=0.3)


async def test_loads_the_prefix_and_nothing_else(client, settings, prefix):
    await client.put(f"{prefix}a".encode(), b"1")
    await client.put(f"{prefix}b/c".encode(), b"2")
    await client.put(f"{prefix[:-1]}x".encode(), b"outside")  # shares the text, not the prefix
    changes = Changes()
    mirror = ZoneMirror(settings=settings, prefix=prefix, on_change=changes)
    async with running(mirror.run()):
        await until(lambda: mirror.connected, what="mirror connected")
        want = {f"{prefix}a": b"1", f"{prefix}b/c": b"2"}
        assert dict(mirror.snapshot) == want
        assert mirror.get(f"{prefix}a") == b"1" and mirror.get(f"{prefix}x") is None
        [load] = changes.changes
        assert load.reload and dict(load.puts) == want and load.deletes == frozenset()
        assert load.revision == mirror.revision > 0 and mirror.stale_seconds == 0
        assert mirror.stats().loads == 1 and mirror.stats().keys == 2


async def test_puts_and_deletes_reach_on_change_fast(client, settings, prefix):
    changes = Changes()
    mirror = ZoneMirror(settings=settings, prefix=prefix, on_change=changes)
    latencies = []
    async with running(mirror.run()):
        await until(lambda: mirror.connected, what="mirror connected")
        for i in range(40):
            key = f"{prefix}k{i // 2}"
            before = len(changes.calls)
            start = time.monotonic()
            if i % 2:
                await client.delete(key.encode())
                want = None
            else:
                await client.put(key.encode(), f"v{i}".encode())
                want = f"v{i}".encode()
            await until(lambda: len(changes.calls) > before, timeout=1.0, what="on_change")
            latencies.append(changes.calls[before][0] - start)
            assert changes.state.get(key) == want == mirror.get(key)
            if want is None:
                assert changes.last.deletes == {key} and not changes.last.puts
            else:
                assert dict(changes.last.puts) == {key: want} and not changes.last.deletes
            assert not changes.last.reload and changes.last.revision == mirror.revision
    latencies.sort()
    median, worst = statistics.median(latencies), latencies[-1]
    print(f"\nwrite-to-on_change latency: median {median * 1000:.2f} ms, "
          f"p90 {latencies[int(len(latencies) * 0.9)] * 1000:.2f} ms, max {worst * 1000:.2f} ms")
    assert worst < 1.0
    assert mirror.events == 40


async def test_a_transaction_is_one_on_change(client, settings, prefix):
    changes = Changes()
    mirror = ZoneMirror(settings=settings, prefix=prefix, on_change=changes)
    await client.put(f"{prefix}gone".encode(), b"x")
    async with running(mirror.run()):
        await until(lambda: mirror.connected, what="mirror connected")
        before = len(changes.calls)
        tx = client.transactions
        await client.transaction(compare=[], success=[
            tx.put(f"{prefix}k{i}".encode(), b"v") for i in range(50)
        ] + [tx.delete(f"{prefix}gone".encode())], failure=[])
        await until(lambda: len(mirror.snapshot) == 50, timeout=2.0, what="the transaction")
        # Never a half-applied transaction: the whole of it comes in one call.
        [change] = changes.changes[before:]
        assert len(change.puts) == 50 and change.deletes == {f"{prefix}gone"}
        assert changes.state == dict(mirror.snapshot)


async def test_snapshot_is_a_live_read_only_view_and_changes_are_frozen(
        client, settings, prefix):
    changes = Changes()
    mirror = ZoneMirror(settings=settings, prefix=prefix, on_change=changes)
    view = mirror.snapshot
    async with running(mirror.run()):
        await until(lambda: mirror.connected, what="mirror connected")
        await client.put(f"{prefix}a".encode(), b"1")
        await until(lambda: f"{prefix}a" in view, what="put seen through the first view")
        await client.put(f"{prefix}a".encode(), b"2")
        await until(lambda: view.get(f"{prefix}a") == b"2", what="second put")
        await client.delete(f"{prefix}a".encode())
        await until(lambda: f"{prefix}a" not in view, what="delete")
        assert mirror.snapshot is view
        with pytest.raises(TypeError):
            view[f"{prefix}b"] = b"2"  # type: ignore[index]
        # What each call reported stays as it was reported.
        assert [dict(c.puts) for c in changes.changes] == [
            {}, {f"{prefix}a": b"1"}, {f"{prefix}a": b"2"}, {}]
        with pytest.raises(TypeError):
            changes.last.puts[f"{prefix}b"] = b"2"  # type: ignore[index]


async def test_survives_etcd_stop_and_restart(etcd_fresh, prefix):
    settings = EtcdSettings(endpoints=(etcd_fresh.url,), timeout=1.0)
    client = await connect(settings)
    await client.put(f"{prefix}kept".encode(), b"1")
    await client.put(f"{prefix}removed".encode(), b"2")
    await client.close()
    changes = Changes()
    mirror = ZoneMirror(settings=settings, prefix=prefix, on_change=changes, backoff=FAST)
    async with running(mirror.run()):
        await until(lambda: mirror.connected, what="mirror connected")
        await asyncio.to_thread(etcd_fresh.stop)
        await until(lambda: not mirror.connected, timeout=5.0, what="mirror to notice")
        assert dict(mirror.snapshot) == {f"{prefix}kept": b"1", f"{prefix}removed": b"2"}
        stale = mirror.stale_seconds
        await asyncio.sleep(0.5)
        assert mirror.stale_seconds >= stale + 0.4
        assert mirror.last_error and etcd_fresh.url.split("//")[1] in mirror.last_error

        await asyncio.to_thread(etcd_fresh.start)
        client = await connect(settings)
        try:
            await client.put(f"{prefix}new".encode(), b"3")
            await client.delete(f"{prefix}removed".encode())
        finally:
            await client.close()
        await until(lambda: f"{prefix}new" in mirror.snapshot
                    and f"{prefix}removed" not in mirror.snapshot,
                    timeout=10.0, what="changes made during the outage")
        await until(lambda: mirror.connected, what="reconnected")
        assert mirror.stale_seconds == 0
        assert dict(mirror.snapshot) == {f"{prefix}kept": b"1", f"{prefix}new": b"3"}
        assert mirror.reconnects >= 1
        assert mirror.reloads == 0  # resumed from its revision, no full re-read
        assert changes.state == dict(mirror.snapshot)
        assert [c.reload for c in changes.changes].count(True) == 1


async def test_starts_while_etcd_is_down_and_catches_up(etcd_fresh, prefix):
    settings = EtcdSettings(endpoints=(etcd_fresh.url,), timeout=1.0)
    await asyncio.to_thread(etcd_fresh.stop)
    mirror = ZoneMirror(settings=settings, prefix=prefix, backoff=FAST)
    async with running(mirror.run()):
        await asyncio.sleep(0.5)
        assert not mirror.connected and not mirror.loaded and dict(mirror.snapshot) == {}
        assert mirror.stale_seconds >= 0.4
        await asyncio.to_thread(etcd_fresh.start)
        client = await connect(settings)
        await client.put(f"{prefix}a".encode(), b"1")
        await client.close()
        await until(lambda: mirror.snapshot.get(f"{prefix}a") == b"1", timeout=10.0,
                    what="first load after etcd came up")


async def test_compaction_past_its_revision_re_loads(client, settings, prefix):
    for i in range(5):
        await client.put(f"{prefix}k{i}".encode(), f"v{i}".encode())
    changes = Changes()
    mirror = ZoneMirror(settings=settings, prefix=prefix, on_change=changes, backoff=FAST)
    async with running(mirror.run()):
        await until(lambda: mirror.connected, what="mirror connected")
    seen = mirror.revision
    # While the mirror is away: deletions, changes, additions, then history is compacted.
    await client.delete(f"{prefix}k0".encode())
    await client.delete(f"{prefix}k1".encode())
    await client.put(f"{prefix}k2".encode(), b"changed")
    put = await client.put(f"{prefix}k9".encode(), b"added")
    await client.compact(put.header.revision)
    async with running(mirror.run()):
        await until(lambda: mirror.connected, what="mirror connected again")
        assert mirror.reloads == 1 and mirror.revision >= put.header.revision > seen
        want = {f"{prefix}k2": b"changed", f"{prefix}k3": b"v3", f"{prefix}k4": b"v4",
                f"{prefix}k9": b"added"}
        assert dict(mirror.snapshot) == want
        assert changes.last.reload and dict(changes.last.puts) == want
        assert changes.state == want
        await client.put(f"{prefix}k3".encode(), b"after")  # and it watches on
        await until(lambda: mirror.snapshot.get(f"{prefix}k3") == b"after", what="watch")
        assert changes.state == dict(mirror.snapshot)


async def test_a_zone_larger_than_the_grpc_message_limit_loads(client, settings, prefix):
    """6,000 values of 3 KB: 18 MB, past our channels' receive limit (16 MiB) for one range
    read."""
    writer = Writer(client=client)
    want = {f"{prefix}k{i:05}": bytes([65 + i % 26]) * 3072 for i in range(6000)}
    await writer.apply(ModelChanges(puts=want))
    try:
        with pytest.raises(aetcd.ClientError):  # one unpaginated read does not fit
            await client.get_prefix(prefix.encode())
        changes = Changes()
        mirror = ZoneMirror(settings=settings, prefix=prefix, on_change=changes)
        async with running(mirror.run()):
            await until(lambda: mirror.connected, timeout=20.0, what="mirror connected")
            assert mirror.stats().keys == 6000 and dict(mirror.snapshot) == want
            [load] = changes.changes
            assert load.reload and len(load.puts) == 6000
            await client.put(f"{prefix}k00000".encode(), b"after")  # and it watches on
            await until(lambda: mirror.get(f"{prefix}k00000") == b"after", what="watch")
    finally:
        await client.delete_prefix(prefix.encode())


async def test_on_change_errors_do_not_stop_the_mirror(client, settings, prefix):
    def broken(change):
        raise RuntimeError("consumer bug")

    mirror = ZoneMirror(settings=settings, prefix=prefix, on_change=broken)
    async with running(mirror.run()):
        await until(lambda: mirror.connected, what="mirror connected")
        await client.put(f"{prefix}a".encode(), b"1")
        await until(lambda: f"{prefix}a" in mirror.snapshot, what="put")
        assert mirror.connected


@pytest.mark.slow
async def test_a_hung_etcd_is_noticed_by_keepalive(etcd_fresh, prefix):
    """A frozen etcd (SIGSTOP) closes no socket: gRPC keepalive pings find it out."""
    settings = EtcdSettings(endpoints=(etcd_fresh.url,), timeout=1.0)
    mirror = ZoneMirror(settings=settings, prefix=prefix, backoff=FAST)
    async with running(mirror.run()):
        await until(lambda: mirror.connected, what="mirror connected")
        etcd_fresh.proc.send_signal(signal.SIGSTOP)
        try:
            start = time.monotonic()
            await until(lambda: not mirror.connected, timeout=20, what="hang noticed")
            print(f"\nhung etcd noticed after {time.monotonic() - start:.1f} s")
        finally:
            etcd_fresh.proc.send_signal(signal.SIGCONT)
        await until(lambda: mirror.connected, timeout=20, what="reconnected")


async def test_a_mirror_that_keeps_nothing_streams_the_same_changes(client, settings, prefix):
    """keep=False (the daemon's: its ZoneState is the one copy): the same load and batches,
    every delete reported (held or not), and no contents to read."""
    await client.put(f"{prefix}a".encode(), b"1")
    await client.put(f"{prefix}b".encode(), b"2")
    calls: list = []
    mirror = ZoneMirror(settings=settings, prefix=prefix, on_change=calls.append, keep=False)
    async with running(mirror.run()):
        await until(lambda: mirror.connected and calls, what="mirror connected")
        [load] = calls
        assert load.reload and dict(load.puts) == {f"{prefix}a": b"1", f"{prefix}b": b"2"}
        tx = client.transactions
        await client.transaction(compare=[], success=[
            tx.put(f"{prefix}c".encode(), b"3"), tx.delete(f"{prefix}a".encode())], failure=[])
        await client.delete(f"{prefix}never".encode())  # no such key: etcd reports nothing
        await client.put(f"{prefix}tmp".encode(), b"4")
        await client.delete(f"{prefix}tmp".encode())
        await until(lambda: f"{prefix}tmp" in set().union(*(c.deletes for c in calls)), what="the deletes")
        batches = calls[1:]
        assert not any(c.reload for c in batches)
        assert dict(batches[0].puts) == {f"{prefix}c": b"3"} and batches[0].deletes == {f"{prefix}a"}
        assert mirror.revision == batches[-1].revision
        with pytest.raises(RuntimeError, match="keeps no contents"):
            mirror.get(f"{prefix}b")
        with pytest.raises(RuntimeError, match="keeps no contents"):
            _ = mirror.snapshot
        assert mirror.stats().keys is None and mirror.stats().events == 4
