"""DNS worker processes follow the daemon's table deltas: accumulated before live, applied with
`table.update` after; a real worker process answers over the wire."""

from __future__ import annotations

import asyncio
import contextlib
import json

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

from fed_dns.app.workers import Follow, Pending, WorkerPool, WorkerSettings
from fed_dns.server import table as table_mod
from fed_dns.server.dns import DnsServer
from tests.support import LOOPBACK, free_port

ZONE = "fed.example.com."
PREFIX = "/skydns"


def key(leaf: str) -> str:
    return f"{PREFIX}/com/example/fed/ns/svc/{leaf}"


def value(address: str) -> bytes:
    return json.dumps({"host": address}).encode()


@pytest.mark.parametrize(("steps", "expect"), [
    ([], {}),
    ([({"a": b"1"}, [])], {"a": b"1"}),
    ([({"a": b"1"}, []), ({}, ["a"])], {}),
    ([({"a": b"1"}, []), ({"a": b"2"}, [])], {"a": b"2"}),
    ([({"a": b"1"}, ["a"])], {"a": b"1"}),
    ([({}, ["a"]), ({"b": b"1"}, [])], {"b": b"1"}),
    ([({"a": b"1", "b": b"2"}, []), ({"c": b"3"}, ["a"])], {"b": b"2", "c": b"3"}),
], ids=["nothing", "put", "put-then-delete", "later-put-wins", "put-after-delete-in-one",
        "delete-of-unknown", "mixed"])
def test_pending_coalesces_deltas(steps, expect):
    pending = Pending()
    for puts, deletes in steps:
        pending.add(puts=puts, deletes=deletes)
    assert pending.entries == expect


def _settings(port: int = 0) -> WorkerSettings:
    return WorkerSettings(zone=ZONE, prefix=PREFIX, host=LOOPBACK, port=port,
                          tcp_idle_timeout=5.0, max_tcp_connections=10, max_udp_size=1232)


def _addresses(t) -> list[str]:
    return sorted(r[3] for r in t.answer(name=f"svc.ns.{ZONE}", qtype=1).answer)


def test_follow_waits_for_live_then_applies_each_delta():
    server = DnsServer(host=LOOPBACK, port=0, table=table_mod.loading(zone=ZONE))
    follow = Follow(settings=_settings(), server=server)
    follow.receive(("diff", {key("c1/a"): value("10.0.0.1"), key("c1/b"): value("10.0.0.2")}, []))
    follow.receive(("diff", {}, [key("c1/b")]))
    assert server.table.loading  # SERVFAIL until live
    follow.receive(("live",))
    live = server.table
    assert not live.loading and _addresses(live) == ["10.0.0.1"]
    follow.receive(("diff", {key("c2/a"): value("10.0.0.3")}, [key("c1/a")]))
    assert _addresses(server.table) == ["10.0.0.3"]
    assert server.table.cache is live.cache  # updated in place of a rebuild
    follow.receive(("live",))  # a repeated live changes nothing
    assert _addresses(server.table) == ["10.0.0.3"]


def _ask(port: int) -> dns.message.Message:
    q = dns.message.make_query(f"svc.ns.{ZONE}", "A")
    return dns.query.udp(q, LOOPBACK, port=port, timeout=2)


async def test_a_worker_process_answers_from_the_published_deltas():
    port = free_port()
    pool = WorkerPool(settings=_settings(port), count=2)
    pool.start()
    try:
        async def answers(rcode: int, addresses: set[str] | None = None, *, what: str) -> None:
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

        pool.publish(puts={key("c1/a"): value("10.0.0.1")}, deletes=(), live=False)
        await answers(dns.rcode.SERVFAIL, what="a loading worker")
        pool.publish(puts={key("c1/b"): value("10.0.0.2")}, deletes=[], live=True)
        await answers(dns.rcode.NOERROR, {"10.0.0.1", "10.0.0.2"}, what="live with both deltas")
        pool.publish(puts={}, deletes=[key("c1/a")], live=True)
        await answers(dns.rcode.NOERROR, {"10.0.0.2"}, what="following a delete")
        assert pool.alive()
    finally:
        await pool.close()
