"""DNS worker processes follow the daemon's table deltas: applied with `table.update` as they
come, served once live; queued deltas merge; real worker processes answer over the wire."""

from __future__ import annotations

import asyncio
import contextlib
import json

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fed_dns.app import workers
from fed_dns.app.workers import Follow, WorkerPool, WorkerSettings, WorkerStartError, coalesce, split
from fed_dns.server import table as table_mod
from fed_dns.server.dns import DnsServer
from tests.support import LOOPBACK, free_port

ZONE = "fed.example.com."
PREFIX = "/skydns"


def key(leaf: str) -> str:
    return f"{PREFIX}/com/example/fed/ns/svc/{leaf}"


def value(address: str) -> bytes:
    return json.dumps({"host": address}).encode()


D = "diff"


@pytest.mark.parametrize(("messages", "expect"), [
    ([], []),
    ([(D, {"a": b"1"}, [], 1)], [(D, {"a": b"1"}, [], 1)]),
    ([(D, {"a": b"1"}, [], 1), (D, {}, ["a"], 2)], [(D, {}, ["a"], 2)]),
    ([(D, {"a": b"1"}, [], 1), (D, {"a": b"2"}, [], 2)], [(D, {"a": b"2"}, [], 2)]),
    ([(D, {"a": b"1"}, ["a"], 1)], [(D, {"a": b"1"}, [], 1)]),
    ([(D, {}, ["a"], 1), (D, {"b": b"1"}, [], 2)], [(D, {"b": b"1"}, ["a"], 2)]),
    ([(D, {"a": b"1", "b": b"2"}, [], 4), (D, {"c": b"3"}, ["a"], 5)], [(D, {"b": b"2", "c": b"3"}, ["a"], 5)]),
    ([(D, {"a": b"1"}, [], 1), ("live",), (D, {"a": b"2"}, [], 2)],
     [(D, {"a": b"1"}, [], 1), ("live",), (D, {"a": b"2"}, [], 2)]),
    ([("live",), ("live",)], [("live",), ("live",)]),
], ids=["nothing", "put", "put-then-delete", "later-put-wins", "put-after-delete-in-one",
        "delete-then-put-elsewhere", "mixed", "live-keeps-its-place", "only-live"])
def test_queued_deltas_merge_between_live_messages(messages, expect):
    assert coalesce(messages) == expect


@given(st.lists(st.tuples(st.dictionaries(st.sampled_from("abcd"), st.binary(max_size=2), max_size=3),
                          st.lists(st.sampled_from("abcde"), max_size=3)), max_size=8))
def test_a_merged_delta_leaves_what_the_deltas_one_by_one_leave(deltas):
    def apply(state: dict, message: tuple) -> dict:
        _, puts, deletes, _seq = message
        state = {k: v for k, v in state.items() if k not in deletes}
        return {**state, **puts}

    one_by_one, merged = {"e": b"x"}, {"e": b"x"}
    for puts, deletes in deltas:
        one_by_one = apply(one_by_one, (D, puts, deletes, 0))
    messages = coalesce((D, puts, deletes, seq) for seq, (puts, deletes) in enumerate(deltas, 1))
    for message in messages:
        merged = apply(merged, message)
    assert merged == one_by_one
    assert [m[3] for m in messages] == ([len(deltas)] if deltas else [])  # the last one's number


@pytest.mark.parametrize(("message", "size", "expect"), [
    (("live",), 1, [("live",)]),
    ((D, {"a": b"1"}, ["b"], 3), 2, [(D, {"a": b"1"}, ["b"], 3)]),
    ((D, {"a": b"1", "c": b"3"}, ["b"], 3), 2, [("part", {"a": b"1"}, ["b"]), (D, {"c": b"3"}, [], 3)]),
    ((D, {"c": b"3"}, ["a", "b", "d"], 9), 2, [("part", {}, ["a", "b"]), (D, {"c": b"3"}, ["d"], 9)]),
], ids=["not-a-diff", "small", "deletes-first", "parts-then-the-rest"])
def test_a_big_diff_goes_in_parts(message, size, expect):
    assert split(message, size=size) == expect


@given(puts=st.dictionaries(st.sampled_from("abcdefgh"), st.binary(max_size=2), max_size=8),
       deletes=st.sets(st.sampled_from("ijklmnop"), max_size=8), size=st.integers(1, 5))
def test_parts_applied_in_order_leave_what_the_diff_leaves(puts, deletes, size):
    start = {"i": b"x", "z": b"y"}
    messages = split((D, puts, sorted(deletes), 4), size=size)
    state = dict(start)
    for message in messages:
        assert len(message[1]) + len(message[2]) <= size
        state = {k: v for k, v in state.items() if k not in message[2]} | message[1]
    assert state == {k: v for k, v in start.items() if k not in deletes} | puts
    assert [m[0] for m in messages] == ["part"] * (len(messages) - 1) + [D] and messages[-1][3] == 4


def test_parts_are_answered_only_with_the_whole_diff():
    """A diff in parts: the worker answers the table before it until the diff's last message
    (no query sees part of a Service), then acknowledges it once."""
    server = DnsServer(host=LOOPBACK, port=0, table=table_mod.loading(zone=ZONE))
    follow = Follow(settings=_settings(), server=server)
    follow.receive((D, {key("c1/a"): value("10.0.0.1")}, [], 1))
    follow.receive(("live",))
    messages = split((D, {key("c1/b"): value("10.0.0.2"), key("c1/c"): value("10.0.0.3")}, [key("c1/a")], 2),
                     size=1)
    assert [m[0] for m in messages] == ["part", "part", D]
    for message in messages[:-1]:
        assert follow.receive(message) is None
        assert _addresses(server.table) == ["10.0.0.1"]
    assert follow.receive(messages[-1]) == ("applied", 2)
    assert _addresses(server.table) == ["10.0.0.2", "10.0.0.3"]
    follow.receive((D, {}, [key("c1/b")], 3))  # the next diff starts from the swapped table
    assert _addresses(server.table) == ["10.0.0.3"]


def _settings(port: int = 0) -> WorkerSettings:
    return WorkerSettings(zone=ZONE, prefix=PREFIX, host=LOOPBACK, port=port,
                          tcp_idle_timeout=5.0, max_tcp_connections=10, max_udp_size=1232)


def _addresses(t) -> list[str]:
    return sorted(r[3] for r in t.answer(name=f"svc.ns.{ZONE}", qtype=1).answer)


def test_follow_applies_each_delta_and_answers_once_live():
    server = DnsServer(host=LOOPBACK, port=0, table=table_mod.loading(zone=ZONE))
    follow = Follow(settings=_settings(), server=server)
    assert follow.receive(("diff", {key("c1/a"): value("10.0.0.1"), key("c1/b"): value("10.0.0.2")}, [],
                           1)) == ("applied", 1)  # acknowledged: readiness waits for it
    assert follow.receive(("diff", {}, [key("c1/b")], 2)) == ("applied", 2)
    assert server.table.loading  # SERVFAIL until live
    assert _addresses(follow.table) == ["10.0.0.1"]  # built as the deltas came
    assert follow.receive(("live",)) == ("live",)  # acknowledged: the daemon may say ready
    live = server.table
    assert not live.loading and _addresses(live) == ["10.0.0.1"]
    follow.receive(("diff", {key("c2/a"): value("10.0.0.3")}, [key("c1/a")], 3))
    assert _addresses(server.table) == ["10.0.0.3"]
    assert server.table.cache is live.cache  # updated in place of a rebuild
    assert follow.receive(("live",)) is None  # a repeated live changes nothing
    assert _addresses(server.table) == ["10.0.0.3"]


def _ask(port: int) -> dns.message.Message:
    q = dns.message.make_query(f"svc.ns.{ZONE}", "A")
    return dns.query.udp(q, LOOPBACK, port=port, timeout=2)


async def _answers(port: int, rcode: int, addresses: set[str] | None = None, *, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        got = None
        with contextlib.suppress(dns.exception.DNSException, OSError):
            reply = await asyncio.to_thread(_ask, port)  # nothing until it listens
            got = (reply.rcode(), {rd.address for rrset in reply.answer for rd in rrset})
        if got is not None and got[0] == rcode and addresses in (None, got[1]):
            return
        assert asyncio.get_running_loop().time() < deadline, f"{what}: {got}"
        await asyncio.sleep(0.05)


async def _until(predicate, *, what: str, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def _one_live_worker(settings: WorkerSettings | None = None, puts: dict | None = None):
    """One worker process, live with `puts`: (its pool, its process), closed after."""
    pool = WorkerPool(settings=settings or _settings(0), count=1)
    await pool.start()
    try:
        pool.publish(puts=puts or {}, deletes=(), live=True)
        await _until(pool.answering, what="live")
        (proc, _), = pool._workers
        yield pool, proc
    finally:
        await pool.close()


@pytest.mark.parametrize("chunk", [workers.DIFF_CHUNK, 1], ids=["whole", "in-parts"])
async def test_worker_processes_answer_from_the_published_deltas(chunk, monkeypatch):
    monkeypatch.setattr(workers, "DIFF_CHUNK", chunk)  # the sender splits (in this process)
    pool = WorkerPool(settings=_settings(0), count=2)  # port 0: the first binds, the second shares
    await pool.start()
    try:
        port = pool.port
        assert port != 0
        pool.publish(puts={key("c1/a"): value("10.0.0.1")}, deletes=(), live=False)
        await _answers(port, dns.rcode.SERVFAIL, what="a loading worker")
        assert not pool.answering()
        pool.publish(puts={key("c1/b"): value("10.0.0.2")}, deletes=[], live=True)
        await _until(pool.answering, what="both workers acknowledge live")
        assert pool.published == 2
        await _until(lambda: pool.applied_through(2), what="both workers applied both diffs")
        for _ in range(10):  # fresh source ports: both SO_REUSEPORT sockets
            await _answers(port, dns.rcode.NOERROR, {"10.0.0.1", "10.0.0.2"}, what="live with both deltas")
        pool.publish(puts={key("c1/c"): value("10.0.0.3")}, deletes=[key("c1/a")], live=True)  # 2 parts
        await _answers(port, dns.rcode.NOERROR, {"10.0.0.2", "10.0.0.3"}, what="following a delete and a put")
        await _until(lambda: pool.applied_through(3), what="both workers applied the third diff")
        assert pool.alive()
        await _until(lambda: pool.counters(1, "gc") and pool.counters(2, "gc"),
                     what="both workers report their counters, GC pauses with them")
        assert set(pool.counters(1, "gc")) == {("0",), ("1",), ("2",)}
    finally:
        await pool.close()
    assert not pool.alive()


async def test_publish_never_waits_for_a_worker_that_does_not_read():
    """A stopped worker: the deltas queue in the sender (the loop goes on at once) and reach
    it merged when it runs again."""
    import os
    import signal
    import time

    async with _one_live_worker() as (pool, proc):
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            big = {key(f"c1/{i}"): value(f"10.1.{i // 250}.{i % 250}") for i in range(2000)}
            started = time.monotonic()
            for round_ in range(30):  # ~30 x 2,000 keys: far more than a pipe buffer holds
                pool.publish(puts=big, deletes=(), live=True)
            pool.publish(puts={key("c1/a"): value("10.0.0.9")},
                         deletes=[key(f"c1/{i}") for i in range(2000)], live=True)
            assert time.monotonic() - started < 1.0, "publish waited for the pipe"
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        await _answers(pool.port, dns.rcode.NOERROR, {"10.0.0.9"}, what="caught up after SIGCONT")


async def test_a_worker_that_cannot_listen_fails_the_start_with_the_reason():
    import socket

    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind((LOOPBACK, 0))
    try:
        pool = WorkerPool(settings=_settings(taken.getsockname()[1]), count=1)
        with pytest.raises(WorkerStartError, match=f"cannot listen on {LOOPBACK}:{taken.getsockname()[1]}"):
            await pool.start()
        await pool.close()
        assert not pool.alive()
    finally:
        taken.close()


async def test_a_sigterm_to_the_group_leaves_the_workers_stop_to_the_daemon(caplog):
    """systemd (KillMode=control-group) or `kill -TERM -PGID` signal every process at once:
    the worker keeps answering until the daemon's ordered shutdown stops it, and exits
    cleanly, never logged as gone."""
    import os
    import signal

    async with _one_live_worker(puts={key("c1/a"): value("10.0.0.1")}) as (pool, proc):
        os.kill(proc.pid, signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert proc.is_alive()
        await _answers(pool.port, dns.rcode.NOERROR, {"10.0.0.1"}, what="answering after SIGTERM")
        pool.publish(puts={key("c1/b"): value("10.0.0.2")}, deletes=(), live=True)  # and following
        await _answers(pool.port, dns.rcode.NOERROR, {"10.0.0.1", "10.0.0.2"}, what="following after SIGTERM")
    assert proc.exitcode == 0
    assert not [r for r in caplog.records if "is gone" in r.getMessage()]


async def test_a_worker_sigtermed_alone_stops_after_its_grace():
    import dataclasses
    import os
    import signal

    async with _one_live_worker(dataclasses.replace(_settings(0), term_grace=0.3)) as (pool, proc):
        os.kill(proc.pid, signal.SIGTERM)
        await _until(lambda: not proc.is_alive(), what="the worker stops by itself")
        assert proc.exitcode == 0 and not pool.alive()
