"""ZoneMirror against a real etcd: load, propagation, outages, compaction."""

from __future__ import annotations

import asyncio
import signal
import statistics
import time

import pytest

from fed_dns.etcd.backoff import Backoff
from fed_dns.etcd.client import EtcdSettings, connect
from fed_dns.etcd.mirror import ZoneMirror
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
        assert dict(mirror.snapshot) == {f"{prefix}a": b"1", f"{prefix}b/c": b"2"}
        assert changes.last == mirror.snapshot
        assert mirror.revision > 0 and mirror.stale_seconds == 0
        assert mirror.stats().loads == 1


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
            assert changes.last.get(key) == want
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
        await until(lambda: len(changes.calls) > before and len(changes.last) == 50,
                    timeout=2.0, what="the transaction")
        # Never a half-applied transaction: every snapshot handed out has 0 or 50 new keys.
        assert all(len(snap) in (1, 50) for _, snap in changes.calls[before:])
        assert len(changes.calls) - before == 1


async def test_snapshot_given_to_on_change_never_changes_later(client, settings, prefix):
    changes = Changes()
    mirror = ZoneMirror(settings=settings, prefix=prefix, on_change=changes)
    async with running(mirror.run()):
        await until(lambda: mirror.connected, what="mirror connected")
        first = changes.last
        await client.put(f"{prefix}a".encode(), b"1")
        await until(lambda: f"{prefix}a" in mirror.snapshot, what="put")
        assert dict(first) == {}
        with pytest.raises(TypeError):
            mirror.snapshot[f"{prefix}b"] = b"2"  # type: ignore[index]


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
        assert dict(changes.last) == want
        await client.put(f"{prefix}k3".encode(), b"after")  # and it watches on
        await until(lambda: mirror.snapshot.get(f"{prefix}k3") == b"after", what="watch")


async def test_on_change_errors_do_not_stop_the_mirror(client, settings, prefix):
    def broken(snapshot):
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
