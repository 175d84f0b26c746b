"""Writer against a real etcd: batching, fencing, retries, throttling."""

from __future__ import annotations

import time
from collections import Counter

import pytest

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


async def test_250_operations_are_three_transactions(client, prefix):
    for i in range(50):
        await client.put(f"{prefix}old{i:03}".encode(), b"x")
    writer = Writer(client=client, rate_per_second=1000)
    puts = {f"{prefix}new{i:03}": f'{{"host":"10.0.{i // 250}.{i % 250}"}}'.encode()
            for i in range(200)}
    deletes = tuple(f"{prefix}old{i:03}" for i in range(50))
    before = await revision(client, prefix)
    await writer.apply(Changes(puts=puts, deletes=deletes))
    after = await revision(client, prefix)
    assert await contents(client, prefix) == puts
    # Sorted by key: new000-new099 | new100-new199 | the 50 deletes. One revision each.
    result = await client.get_prefix(prefix.encode())
    per_revision = Counter(kv.mod_revision for kv in result.kvs)
    assert per_revision == {before + 1: 100, before + 2: 100}
    assert after == before + 3
    assert (writer.transactions, writer.writes, writer.errors) == (3, 250, 0)


async def test_an_empty_change_writes_nothing(client, prefix):
    writer = Writer(client=client)
    before = await revision(client, prefix)
    await writer.apply(Changes())
    assert await revision(client, prefix) == before and writer.transactions == 0


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
            writer = Writer(client=client, fence=lambda: stale)
            changes = Changes(puts={f"{prefix}r/{i:03}": b"1" for i in range(150)},
                              deletes=())
            with pytest.raises(NotLeader):
                await writer.apply(changes)
            assert await contents(client, f"{prefix}r/") == {}
            assert writer.transactions == 0 and writer.errors == 1
            await new.resign()


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
    finally:
        await client.close()


async def test_rate_limit_spaces_transactions(client, prefix):
    writer = Writer(client=client, max_ops=1, rate_per_second=5)
    start = time.monotonic()
    await writer.apply(Changes(puts={f"{prefix}{i}": b"1" for i in range(7)}))
    # 5 per second: the 6th and 7th transactions wait for the first second to pass.
    assert time.monotonic() - start >= 0.95
    assert writer.transactions == 7
