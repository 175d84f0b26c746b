"""etcd's history compacted as kube-apiserver compacts it: the round's decision (a table), then
replicas sharing a real etcd of the test's own (one compacts per round, another takes over
when it stops), a revision compacted further already, and etcd down."""

from __future__ import annotations

import asyncio
import signal
import uuid

import pytest

from fed_dns.etcd import compactor as compaction
from fed_dns.etcd import ranges
from fed_dns.etcd.client import EtcdSettings, connect
from fed_dns.etcd.compactor import Compactor, Known, Outcome, decide
from fed_dns.etcd.connection import ERRORS, ClusterClient
from tests.support import free_port


@pytest.mark.parametrize(("known", "won", "seen", "revision", "expected"), [
    # a replica's first round: it wins on an absent key (version 0) and compacts nothing
    (Known(), True, 0, 100, Outcome(known=Known(version=1, revision=100), compact_to=0)),
    # it won the round before: compacts to that round's revision, keeps the last interval
    (Known(version=1, revision=100), True, 0, 250, Outcome(known=Known(version=2, revision=250), compact_to=100)),
    # another replica compacted since: take its version, compact nothing
    (Known(version=1, revision=100), False, 2, 250, Outcome(known=Known(version=2, revision=250), compact_to=0)),
    # a first round that loses (another replica runs already)
    (Known(), False, 7, 90, Outcome(known=Known(version=7, revision=90), compact_to=0)),
    # the key deleted meanwhile (version read as 0): start over, compact nothing
    (Known(version=3, revision=100), False, 0, 300, Outcome(known=Known(version=0, revision=300), compact_to=0)),
    # won after a lost round: compacts to the revision of the lost round
    (Known(version=2, revision=250), True, 0, 400, Outcome(known=Known(version=3, revision=400), compact_to=250)),
], ids=["first-round", "won-again", "lost", "first-round-lost", "key-deleted", "won-after-lost"])
def test_a_round_decides_from_the_last_round(known, won, seen, revision, expected):
    assert decide(known=known, won=won, seen_version=seen, revision=revision) == expected


@pytest.fixture
async def clients(etcd_fresh):
    settings = EtcdSettings(endpoints=(etcd_fresh.url,), timeout=2.0)
    made = [await connect(settings) for _ in range(2)]
    try:
        yield made
    finally:
        for client in made:
            await client.close()


async def write(client, count: int) -> int:
    key = f"/test-{uuid.uuid4().hex[:8]}".encode()
    revision = 0
    for n in range(count):
        revision = (await client.put(key, str(n).encode())).header.revision
    return revision


async def readable(client, revision: int) -> bool:
    return await ranges.revision_readable(client, b"/", revision=revision, timeout=2.0)


async def test_replicas_compact_once_a_round_and_keep_the_last_interval(clients):
    one, two = (Compactor(client=c, interval=300, timeout=2.0) for c in clients)
    await write(clients[0], 5)
    assert (await one.round()).compact_to == 0  # first rounds compact nothing
    assert (await two.round()).compact_to == 0
    kept = one.known.revision  # etcd's revision at replica one's first round
    last = await write(clients[0], 5)
    won = await one.round()
    assert won.compact_to == kept and one.compactions == 1 and one.compacted == kept
    assert not await readable(clients[0], kept - 1)  # older history is gone
    assert await readable(clients[0], kept)  # the last interval's is kept
    assert await readable(clients[0], last)
    lost = await two.round()  # the same round for replica two: one compacted already
    assert lost.compact_to == 0 and two.compactions == 0
    # Replica one stops: two, in step since its lost round, compacts at its next round.
    await write(clients[0], 3)
    took_over = await two.round()
    assert took_over.compact_to == lost.known.revision and two.compactions == 1
    assert not await readable(clients[0], lost.known.revision - 1)
    value = (await clients[0].get(compaction.KEY)).value
    assert value == str(lost.known.revision).encode()  # as kube-apiserver writes it: the revision


async def test_a_revision_compacted_further_already_is_no_error(clients):
    one = Compactor(client=clients[0], interval=300, timeout=2.0)
    await write(clients[0], 3)
    await one.round()
    newest = await write(clients[0], 3)
    await clients[1].compact(newest)  # an operator, or etcd's own auto-compaction
    outcome = await one.round()
    assert outcome.compact_to < newest
    assert one.compactions == 0 and one.compacted == 0 and one.last_error is None
    assert one.known.version == 2  # the round counts: the others stay in step


class _PausingEtcdAfterTheTxn(Compactor):
    """A Compactor whose etcd stops answering (SIGSTOP) right after a round's transaction:
    its compaction call then fails on a real timeout."""

    def __init__(self, *, etcd, **kwargs) -> None:
        super().__init__(**kwargs)
        self.etcd = etcd
        self.pause = False

    async def _txn(self, request):
        response = await super()._txn(request)
        if self.pause:
            self.etcd.proc.send_signal(signal.SIGSTOP)
        return response


async def test_a_won_round_whose_compaction_fails_keeps_the_new_version(etcd_fresh, clients):
    """As kube-apiserver: the won round moved KEY's version, so the next round compares with
    the new one (wins, compacts) instead of losing a round to itself."""
    one = _PausingEtcdAfterTheTxn(etcd=etcd_fresh, client=clients[0], interval=300, timeout=0.5)
    await write(clients[0], 3)
    await one.round()  # first round: version 1
    await write(clients[0], 3)
    one.pause = True
    try:
        with pytest.raises(ERRORS):
            await one.round()  # won (version 2), its compaction timed out
    finally:
        etcd_fresh.proc.send_signal(signal.SIGCONT)
    one.pause = False
    assert one.compactions == 0 and one.known.version == 2
    kept = one.known.revision
    await write(clients[0], 3)
    outcome = await one.round()
    assert outcome.compact_to == kept and one.compactions == 1
    assert not await readable(clients[0], kept - 1)


async def test_the_loop_compacts_every_interval(clients):
    one = Compactor(client=clients[0], interval=0.05, timeout=2.0)
    task = asyncio.create_task(one.run())
    try:
        first = await write(clients[0], 3)
        for _ in range(200):
            if one.compactions >= 2:
                break
            await write(clients[0], 1)
            await asyncio.sleep(0.01)
        assert one.compactions >= 2 and one.compacted > first
        assert not await readable(clients[0], one.compacted - 1)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_etcd_down_is_counted_and_the_loop_goes_on():
    client = ClusterClient(settings=EtcdSettings(endpoints=(f"http://127.0.0.1:{free_port()}",), timeout=0.2))
    one = Compactor(client=client, interval=0.05, timeout=0.2)
    task = asyncio.create_task(one.run())
    try:
        for _ in range(200):
            if one.errors >= 2:
                break
            await asyncio.sleep(0.02)
        assert one.errors >= 2 and one.rounds == 0 and one.compactions == 0
        assert one.last_error and "127.0.0.1" in one.last_error
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


def test_an_interval_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        Compactor(client=None, interval=0, timeout=1.0)
