"""LeaderElector against a real etcd: one leader, takeover on resign, death and loss."""

from __future__ import annotations

import asyncio
import contextlib
import time

from fed_dns.etcd.client import EtcdSettings, connect
from fed_dns.etcd.leader import LeaderElector
from tests.etcd.helpers import running, until

TTL = 2.0


@contextlib.asynccontextmanager
async def replicas(settings, key, names, ttl=TTL):
    """One client (as one process) and one elector per name, all campaigning."""
    clients = [await connect(settings) for _ in names]
    electors = [LeaderElector(client=c, key=key, identity=n, ttl=ttl) for c, n in zip(clients, names)]
    tasks = {e: asyncio.create_task(e.run()) for e in electors}
    try:
        yield electors, tasks
    finally:
        for task in tasks.values():
            task.cancel()
        for task in tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for e in electors:
            await e.resign()
        for c in clients:
            await c.close()


def leaders(electors):
    return [e for e in electors if e.is_leader]


async def test_exactly_one_of_three_leads(settings, prefix):
    async with replicas(settings, f"{prefix}leader", ["a", "b", "c"]) as (electors, _):
        await until(lambda: len(leaders(electors)) == 1, what="a leader")
        winner = leaders(electors)[0]
        await until(lambda: all(e.leader == winner.leader for e in electors), what="all agree")
        # Stable: it stays the only leader over several lease refreshes.
        for _ in range(20):
            await asyncio.sleep(TTL / 10)
            assert leaders(electors) == [winner]


async def test_resign_hands_over_at_once(settings, prefix):
    changes = []
    async with replicas(settings, f"{prefix}leader", ["a", "b"]) as (electors, _):
        await until(lambda: len(leaders(electors)) == 1, what="a leader")
        old = leaders(electors)[0]
        other = next(e for e in electors if e is not old)
        start = time.monotonic()
        await old.resign()
        await until(lambda: other.is_leader, timeout=TTL + 1, what="takeover")
        took = time.monotonic() - start
        print(f"\ntakeover after resign: {took * 1000:.0f} ms")
        assert took < 1.0
        assert not old.is_leader and leaders(electors) == [other]


async def test_a_dead_leader_is_replaced_within_the_ttl(settings, prefix):
    async with replicas(settings, f"{prefix}leader", ["a", "b"]) as (electors, tasks):
        await until(lambda: len(leaders(electors)) == 1, what="a leader")
        old = leaders(electors)[0]
        other = next(e for e in electors if e is not old)
        # Dies without a word: its loop stops, its lease is no longer refreshed.
        tasks[old].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[old]
        start = time.monotonic()
        await until(lambda: other.is_leader, timeout=TTL + 1, what="takeover")
        took = time.monotonic() - start
        print(f"\ntakeover after the leader died: {took:.2f} s (ttl {TTL:g} s)")
        assert took <= TTL + 1


async def test_fence_only_for_the_leader(settings, prefix):
    async with replicas(settings, f"{prefix}leader", ["a", "b"]) as (electors, _):
        await until(lambda: len(leaders(electors)) == 1, what="a leader")
        leader = leaders(electors)[0]
        follower = next(e for e in electors if e is not leader)
        assert follower.fence() is None
        assert leader.fence() is not None


async def test_a_deleted_key_is_noticed_and_campaigned_for(client, settings, prefix):
    key = f"{prefix}leader"
    seen = []
    elector = LeaderElector(client=client, key=key, identity="a", ttl=TTL, on_change=seen.append)
    async with running(elector.run()):
        await until(lambda: elector.is_leader, what="leads")
        first = elector.fence().value
        await client.delete(key.encode())
        # Noticed on the next refresh (ttl/3), then it campaigns again with a new key.
        await until(lambda: elector.is_leader and elector.fence().value != first,
                    timeout=TTL + 1, what="new term")
        assert seen[:3] == [True, False, True] and elector.terms == 2
        await elector.resign()
    assert seen[-1] is False


async def test_etcd_gone_steps_down_and_leads_again_after(etcd_fresh, prefix):
    settings = EtcdSettings(endpoints=(etcd_fresh.url,), timeout=0.5)
    client = await connect(settings)
    elector = LeaderElector(client=client, key=f"{prefix}leader", identity="a", ttl=TTL)
    try:
        async with running(elector.run()):
            await until(lambda: elector.is_leader, what="leads")
            await asyncio.to_thread(etcd_fresh.stop)
            start = time.monotonic()
            await until(lambda: not elector.is_leader, timeout=TTL + 1, what="step down")
            print(f"\nstepped down {time.monotonic() - start:.2f} s after etcd stopped")
            assert time.monotonic() - start < TTL  # before another could have taken over
            await asyncio.to_thread(etcd_fresh.start)
            await until(lambda: elector.is_leader, timeout=3 * TTL + 5, what="leads again")
            await elector.resign()
    finally:
        await client.close()


async def test_a_stalled_leader_acts_on_nothing_until_confirmed_then_says_so(client, settings, prefix):
    """A loop stall longer than 2/3 of the TTL: is_leader is False at once (a woken process
    must not act on an old belief), and when the next refresh confirms the lease the elector
    calls on_change(True) again, so what its consumers refused meanwhile is written now
    (the reconcile had nothing else to tell it that writing was allowed again)."""
    seen: list[bool] = []
    key = f"{prefix}leader"
    elector = LeaderElector(client=client, key=key, identity="a", ttl=TTL, on_change=seen.append)
    task = asyncio.create_task(elector.run())
    try:
        await until(lambda: elector.is_leader, what="leads")
        assert seen == [True]
        time.sleep(TTL * 0.8)  # the whole loop stalls: no refresh runs meanwhile
        assert not elector.is_leader  # still believes it leads, but acts on nothing
        await until(lambda: elector.is_leader, timeout=TTL, what="confirmed again")
        assert seen == [True, True] and elector.regains == 1
        assert elector.terms == 1  # the same term: the lease was never lost
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await elector.resign()
