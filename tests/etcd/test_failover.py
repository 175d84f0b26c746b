"""etcd as a cluster: a Writer, a ZoneMirror and two LeaderElectors against a real 3-member
etcd on loopback while each member in turn is SIGKILLed, then SIGSTOPped; and a member cut
off from the majority (the two others stopped) is detected, not trusted."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aetcd
import grpc
import pytest
from aetcd import rpc

from fed_dns.etcd import ranges
from fed_dns.etcd.client import EtcdSettings, EtcdUnreachable, connect
from fed_dns.etcd.connection import ClusterClient, moves_away, timed_out, usable
from fed_dns.etcd.leader import LeaderElector
from fed_dns.etcd.mirror import ZoneMirror
from fed_dns.etcd.writer import WriteFailed, Writer
from fed_dns.model import Changes as ModelChanges
from tests.etcd.cluster import etcd_cluster
from tests.etcd.faults import Flow, Leaders
from tests.etcd.helpers import Changes, running, until

TIMEOUT = 1.0  # EtcdSettings.timeout: how long a hung member may keep a call
RECOVERY = 4 * TIMEOUT + 2.0  # a fault detected (a call's deadline, then the check's), a redial, a raft election
TTL = 3.0


class _Rpc(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="x")


@pytest.mark.parametrize("exc, moves", [
    (aetcd.ConnectionFailedError("etcdserver: no leader"), True),
    (aetcd.ConnectionTimeoutError("deadline"), True),
    (aetcd.exceptions.UnauthenticatedError("invalid auth token"), True),
    (TimeoutError(), True),
    (ConnectionResetError(), True),
    (EtcdUnreachable("etcd unreachable"), True),
    (_Rpc(grpc.StatusCode.UNAVAILABLE), True),
    (_Rpc(grpc.StatusCode.DEADLINE_EXCEEDED), True),
    (_Rpc(grpc.StatusCode.OUT_OF_RANGE), False),
    (_Rpc(grpc.StatusCode.RESOURCE_EXHAUSTED), False),
    (aetcd.PreconditionFailedError("x"), False),
    (aetcd.RevisionCompactedError(5), False),
    (aetcd.WatchTimeoutError(), False),
    (aetcd.ClientError("etcdserver: permission denied"), False),
], ids=["no-leader", "deadline", "token", "timeout", "reset", "unreachable", "rpc-unavailable",
        "rpc-deadline", "rpc-compacted", "rpc-too-large", "precondition", "compacted",
        "watch-timeout", "permission"])
def test_which_errors_move_to_another_member(exc, moves):
    assert moves_away(exc) is moves


@pytest.mark.parametrize("leader, ok", [(0, False), (7, True)], ids=["no-leader", "leader"])
def test_a_member_without_a_raft_leader_is_not_used(leader, ok):
    assert (usable(rpc.StatusResponse(leader=leader)) is None) is ok


@pytest.fixture(scope="module")
def cluster():
    with etcd_cluster() as c:
        yield c


@pytest.fixture
def cluster_settings(cluster) -> EtcdSettings:
    cluster.wait_healthy()
    return EtcdSettings(endpoints=cluster.urls, timeout=TIMEOUT)


@contextlib.asynccontextmanager
async def electors(settings: EtcdSettings, key: str, leaders: Leaders):
    clients = [await connect(settings) for _ in range(2)]
    try:
        for name, client in zip("ab", clients):
            leaders.electors.append(LeaderElector(client=client, key=key, identity=name, ttl=TTL,
                                                  on_change=leaders))
        async with running(leaders.electors[0].run()), running(leaders.electors[1].run()):
            yield leaders.electors
        for elector in leaders.electors:
            await elector.resign()
    finally:
        for client in clients:
            await client.close()


async def test_each_member_killed_then_paused_in_turn(cluster, cluster_settings, prefix):
    settings = cluster_settings
    seen = Changes()
    mirror = ZoneMirror(settings=settings, prefix=prefix, on_change=seen, probe_interval=0.2)
    client = await connect(settings)
    flow = Flow(Writer(client=client, concurrency=1, retries=2, timeout=TIMEOUT,
                       epoch_key=f"/epoch-{prefix}"), prefix)
    leaders = Leaders()
    try:
        async with running(mirror.run()), electors(settings, f"/lock-{prefix}", leaders), \
                running(flow.run()) as flowing:
            await until(lambda: mirror.connected and flow.written > 5, timeout=10,
                        what="mirror and writes going")
            # Kills in turn, then pauses in turn. A failover usually moves the clients on to
            # the next member, so most faults hit the member they use (which one they pick
            # after a fault depends on which member answers first: not asserted per fault).
            hits = 0
            for fault in ("kill", "pause"):
                for index in range(len(cluster.members)):
                    url = cluster.members[index].url
                    hits += url in {client.endpoint, mirror.endpoint}
                    before = flow.written
                    getattr(cluster, fault)(index)
                    start = time.monotonic()
                    await until(lambda: flow.written > before + 3, timeout=RECOVERY,
                                what=f"writes after {fault} of member {index}")
                    await until(lambda: mirror.connected
                                and mirror.get(f"{prefix}k{flow.written - 1:05}") is not None,
                                timeout=RECOVERY, what=f"mirror after {fault} of {index}")
                    assert url not in {client.endpoint, mirror.endpoint}
                    await until(lambda: len(leaders.current()) == 1, timeout=TTL * 2,
                                what=f"a leader after {fault} of {index}")
                    assert time.monotonic() - start < RECOVERY + TTL * 2
                    (cluster.restart if fault == "kill" else cluster.resume)(index)
                    await asyncio.to_thread(cluster.wait_healthy)
            flow.stopping = True
            await flowing
            assert hits >= 4, f"only {hits} of 6 faults hit a member in use"
        assert leaders.most == 1, "two electors led at once"
        fresh = await ranges.read_prefix(client, prefix=prefix.encode(), timeout=5)
        assert fresh.data == flow.expected, "a write was lost or an orphan left"
        mirror_view = ZoneMirror(settings=settings, prefix=prefix)
        async with running(mirror_view.run()):
            await until(lambda: mirror_view.revision >= fresh.revision, timeout=5,
                        what="a second mirror")
            assert dict(mirror_view.snapshot) == fresh.data
        assert seen.state == fresh.data, "the mirror's changes lost or repeated an event"
        assert flow.longest_gap < RECOVERY
        assert client.failovers >= 1 and mirror.reconnects >= 1
    finally:
        await client.close()


async def test_a_member_cut_off_from_the_majority_is_not_trusted(cluster, cluster_settings,
                                                                 prefix):
    """Members 1 and 2 stopped: member 0 still answers Status and serializable reads and
    keeps its watch streams open, but it cannot serve a linearizable read or a write."""
    only_first = EtcdSettings(endpoints=cluster.urls[:1], timeout=TIMEOUT)
    seen = Changes()
    mirror = ZoneMirror(settings=only_first, prefix=prefix, on_change=seen, probe_interval=0.2)
    client = await connect(only_first)
    elector = LeaderElector(client=client, key=f"/lock-{prefix}", identity="a", ttl=TTL)
    await client.put(f"{prefix}a".encode(), b"1")
    try:
        async with running(mirror.run()), running(elector.run()):
            await until(lambda: mirror.connected and elector.is_leader, timeout=10,
                        what="mirror and leader")
            cluster.pause(1)
            cluster.pause(2)
            try:
                stale = await client.get(f"{prefix}a".encode(), serializable=True)
                assert stale.value == b"1"  # the minority member still answers this
                await until(lambda: not mirror.connected, timeout=RECOVERY,
                            what="the mirror to notice")
                assert mirror.last_error and mirror.stale_seconds > 0
                await until(lambda: not elector.is_leader, timeout=TTL, what="step down")
                writer = Writer(client=client, retries=0, timeout=TIMEOUT)
                with pytest.raises(WriteFailed):
                    await writer.apply(ModelChanges(puts={f"{prefix}b": b"2"}))
                assert writer.last_error and not mirror.connected
            finally:
                cluster.resume(1)
                cluster.resume(2)
            await until(lambda: mirror.connected, timeout=RECOVERY * 2, what="mirror back")
            await until(lambda: elector.is_leader, timeout=TTL * 3, what="leader again")
            await client.put(f"{prefix}c".encode(), b"3")
            await until(lambda: mirror.get(f"{prefix}c") == b"3", what="mirror current")
            fresh = await ranges.read_prefix(client, prefix=prefix.encode(), timeout=5)
            assert dict(mirror.snapshot) == fresh.data == seen.state
        await elector.resign()
    finally:
        await client.close()


async def test_connect_passes_over_a_dead_first_endpoint_and_names_each(cluster,
                                                                        cluster_settings):
    cluster.kill(0)
    try:
        client = await connect(cluster_settings)
        try:
            assert client.endpoint == cluster.urls[1] and client.connected
            assert isinstance(client, ClusterClient)
        finally:
            await client.close()
        with pytest.raises(EtcdUnreachable) as err:
            await connect(EtcdSettings(endpoints=cluster.urls[:1], timeout=TIMEOUT))
        assert cluster.urls[0] in str(err.value)
    finally:
        cluster.restart(0)


@pytest.mark.parametrize("exc, timeout", [
    (TimeoutError(), True),
    (aetcd.ConnectionTimeoutError("deadline"), True),
    (_Rpc(grpc.StatusCode.DEADLINE_EXCEEDED), True),
    (_Rpc(grpc.StatusCode.UNAVAILABLE), False),
    (aetcd.ConnectionFailedError("etcdserver: no leader"), False),
    (ConnectionResetError(), False),
], ids=["timeout", "aetcd-deadline", "rpc-deadline", "rpc-unavailable", "no-leader", "reset"])
def test_which_errors_are_only_timeouts(exc, timeout):
    assert timed_out(exc) is timeout


async def test_a_slow_call_on_a_member_that_answers_keeps_the_channel(cluster_settings, prefix, caplog):
    """A call that ran out of time (a big transaction under load) on a member that serves a
    linearizable read is no reason to move: moving closes the channel under the lease's
    keepalive. The same timeout on a paused member moves (checked: it answers nothing)."""
    caplog.set_level("INFO", logger="fed_dns.etcd.connection")
    client = await connect(cluster_settings)
    try:
        lease = await client.lease(ttl=int(TTL))
        generation = client.generation
        with pytest.raises(TimeoutError):
            await client.call(asyncio.sleep, 5, timeout=0.05)
        await until(lambda: client.timeouts_kept == 1, timeout=5, what="the check")
        assert client.generation == generation and client.failovers == 0 and client.connected
        assert "a call (sleep) ran out of time" in caplog.text  # which call, in the log
        await client.refresh_lease(lease.id)  # the lease's channel still works
        assert client.generation == generation
    finally:
        await client.close()


async def test_a_timeout_on_a_paused_member_moves_after_the_check(cluster, cluster_settings):
    client = await connect(cluster_settings)
    index = cluster.urls.index(client.endpoint)
    cluster.pause(index)
    try:
        generation = client.generation
        with pytest.raises(TimeoutError):
            await client.call(asyncio.sleep, 5, timeout=0.05)
        assert client.generation == generation and client.connected  # checking, not moved yet
        await until(lambda: client.failovers == 1, timeout=TIMEOUT + 2, what="the move")
        await client.get(b"anything")  # dials another member
        assert client.endpoint != cluster.urls[index] and client.timeouts_kept == 0
    finally:
        cluster.resume(index)
        await asyncio.to_thread(cluster.wait_healthy)
        await client.close()
