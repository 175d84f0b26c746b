"""The UDP loops: recvmmsg/sendmmsg batches (several datagrams per call) and the recvfrom
fallback answer the same, whatever mix of queries arrives together."""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
import time

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest

from fed_dns.server import mmsg
from fed_dns.server import table as table_mod
from fed_dns.server.udp import BATCH
from tests.server.conftest import ZONE, entries, running_server
from tests.server.helpers import addresses
from tests.support import LOOPBACK

LINUX_MMSG = mmsg.available()
BIG = 60  # addresses of big.ns: 60 A records do not fit in 512 bytes -> TC without EDNS
RECORDS = {
    **{f"c{i}.svc{n}.ns": {"host": f"10.0.{n}.{i + 1}", "ttl": 5} for n in range(10) for i in range(2)},
    **{f"c{i}.big.ns": {"host": f"10.1.0.{i + 1}"} for i in range(BIG)},
    "t.ns": {"text": "hello"},
}
TABLE = table_mod.build(zone=ZONE, entries=entries(RECORDS))

# batch sizes: the default, a small one (50 queries take several rounds), 0 = recvfrom loop
LOOPS = [pytest.param(BATCH, id="mmsg", marks=pytest.mark.skipif(not LINUX_MMSG, reason="no mmsg")),
         pytest.param(4, id="mmsg-4", marks=pytest.mark.skipif(not LINUX_MMSG, reason="no mmsg")),
         pytest.param(0, id="recvfrom")]


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _query(qid: int, name: str, rdtype: str = "A", **kwargs) -> bytes:
    q = dns.message.make_query(name, rdtype, **kwargs)
    q.id = qid
    return q.to_wire()


def _burst(port: int, packets: list[bytes], *, expect: int, host: str = LOOPBACK,
           timeout: float = 3.0) -> dict[int, bytes]:
    """Send every packet from one socket without waiting, then read `expect` responses:
    {ID: response}."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    got: dict[int, bytes] = {}
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.settimeout(timeout)
        for p in packets:
            s.sendto(p, (host, port))
        while len(got) < expect:
            data = s.recv(65535)
            qid = struct.unpack("!H", data[:2])[0]
            assert qid not in got, f"two responses for ID {qid}"
            got[qid] = data
        s.settimeout(0.2)  # nothing more than expected comes
        with pytest.raises(TimeoutError):
            s.recv(65535)
    return got


@pytest.fixture(params=LOOPS)
def server(request):
    with running_server(TABLE, udp_batch=request.param) as srv:
        thread = srv.server._udp_thread
        assert (thread.batch is not None) == (request.param > 0)
        yield srv
    assert not thread.thread.is_alive()  # close() woke and ended the loop


def test_the_mmsg_loop_is_used_on_linux():
    if not sys.platform.startswith("linux"):
        pytest.skip("not Linux")
    assert LINUX_MMSG
    with running_server(TABLE) as srv:
        assert srv.server._udp_thread.batch is not None


def test_fifty_queries_sent_at_once_all_answered_with_their_ids(server):
    queries = {1000 + i: f"svc{i % 10}.ns.{ZONE}" for i in range(50)}
    got = _burst(server.port, [_query(qid, name) for qid, name in queries.items()], expect=50)
    assert set(got) == set(queries)
    for qid, name in queries.items():
        msg = dns.message.from_wire(got[qid])
        assert msg.question[0].name.to_text() == name
        n = int(name[3])
        assert sorted(addresses(msg)) == [f"10.0.{n}.1", f"10.0.{n}.2"]
    assert server.stats.errors == 0
    counts, total = server.stats.durations[("udp",)]  # dns_request_duration_seconds
    assert sum(counts.values()) == 50 and 0 < total / 50 < 0.5


def test_mixed_fast_slow_malformed_and_truncated_in_one_burst(server):
    svc = f"svc3.ns.{ZONE}"
    cases = {  # ID -> (packet, check of the parsed response)
        1: (_query(1, svc), lambda m: sorted(addresses(m)) == ["10.0.3.1", "10.0.3.2"]),
        2: (_query(2, svc, use_edns=0, payload=1232),  # fast path with OPT
            lambda m: len(addresses(m)) == 2 and m.edns == 0),
        3: (_query(3, svc, use_edns=0, options=[dns.edns.GenericOption(10, b"12345678")]),
            lambda m: len(addresses(m)) == 2),  # an EDNS option: slow path
        4: (_query(4, f"nope.ns.{ZONE}"), lambda m: m.rcode() == dns.rcode.NXDOMAIN),
        5: (_query(5, "example.org."), lambda m: m.rcode() == dns.rcode.REFUSED),
        6: (_query(6, f"t.ns.{ZONE}", "TXT"), lambda m: b"hello" in m.to_wire()),
        7: (_query(7, f"big.ns.{ZONE}"),  # 60 A records, no EDNS: TC, nothing cut mid-RRset
            lambda m: m.flags & dns.flags.TC and not m.answer),
        8: (_query(8, f"big.ns.{ZONE}", use_edns=0, payload=1232),  # fits with EDNS
            lambda m: len(addresses(m)) == BIG and not m.flags & dns.flags.TC),
        9: (_query(9, f"SvC3.Ns.{ZONE}"), lambda m: len(addresses(m)) == 2),
    }
    formerr = {  # readable headers, broken bodies: FORMERR with the ID
        20: struct.pack("!HHHHHH", 20, 0x0100, 1, 0, 0, 0) + b"\x3f" + b"a" * 10,
        21: struct.pack("!HHHHHH", 21, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01",
        22: struct.pack("!HHHHHH", 22, 0x0100, 2, 0, 0, 0) + b"\x00\x00\x01\x00\x01" * 2,
    }
    silent = [b"", b"\x01", b"\x00\x17\x81", _query(23, svc)[:2] + b"\x81\x80" + _query(23, svc)[4:]]
    packets = []
    for i, (qid, (packet, _)) in enumerate(cases.items()):  # interleave the kinds
        packets.append(packet)
        packets.append(silent[i % len(silent)])
        if qid in (2, 5, 8):
            packets.append(formerr[{2: 20, 5: 21, 8: 22}[qid]])
    got = _burst(server.port, packets, expect=len(cases) + len(formerr))
    assert set(got) == set(cases) | set(formerr)
    for qid, (_, check) in cases.items():
        assert check(dns.message.from_wire(got[qid])), qid
    for qid in formerr:
        assert got[qid][3] & 0x0F == dns.rcode.FORMERR
    assert server.stats.errors == 0
    assert server.stats.truncated >= 1


def test_several_rounds_and_many_clients(server):
    """300 queries from 6 sockets at once: more than one batch, answers to the right sender."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(6)]
    try:
        for k, s in enumerate(socks):
            s.settimeout(3)
            for i in range(50):
                s.sendto(_query(k * 100 + i, f"svc{i % 10}.ns.{ZONE}"), (LOOPBACK, server.port))
        for k, s in enumerate(socks):
            ids = set()
            for _ in range(50):
                msg = dns.message.from_wire(s.recv(4096))
                assert msg.id // 100 == k
                assert addresses(msg)
                ids.add(msg.id)
            assert ids == {k * 100 + i for i in range(50)}
    finally:
        for s in socks:
            s.close()


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
@pytest.mark.parametrize("batch", [p.values[0] for p in LOOPS], ids=[p.id for p in LOOPS])
def test_ipv6_loopback(batch):
    if batch and not LINUX_MMSG:
        pytest.skip("no mmsg")
    with running_server(TABLE, host="::1", udp_batch=batch) as srv:
        got = _burst(srv.port, [_query(100 + i, f"svc{i}.ns.{ZONE}") for i in range(10)]
                     + [b"\x00"], expect=10, host="::1")
        for i in range(10):
            assert sorted(addresses(dns.message.from_wire(got[100 + i]))) == \
                [f"10.0.{i}.1", f"10.0.{i}.2"]
        thread = srv.server._udp_thread
    assert not thread.thread.is_alive()


@pytest.mark.skipif(not LINUX_MMSG, reason="no mmsg")
def test_batch_echo_on_a_udp_socket():
    """mmsg.Batch alone: each response goes back to the sender of its datagram; a datagram
    longer than the receive slot is cut; a response longer than the send slot is dropped."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as srv, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
        srv.bind((LOOPBACK, 0))
        batch = mmsg.Batch(srv, size=8, recv_slot=16, send_slot=20)
        for c in (a, b):
            c.settimeout(2)
        a.sendto(b"a1", srv.getsockname())
        b.sendto(b"b1", srv.getsockname())
        a.sendto(b"x" * 40, srv.getsockname())  # cut to 16, answer 32 > 20: dropped
        a.sendto(b"a2", srv.getsockname())
        seen: list[bytes] = []
        while len(seen) < 4:
            before = time.perf_counter_ns()
            n = batch.exchange(lambda d: seen.append(d) or d * 2)
            assert 1 <= n <= 8
            # read to sent: within this exchange (it was the loop's offsets once: hours)
            assert 0 <= batch.elapsed_ns <= time.perf_counter_ns() - before
        assert seen == [b"a1", b"b1", b"x" * 16, b"a2"]
        assert [a.recv(100), a.recv(100), b.recv(100)] == [b"a1a1", b"a2a2", b"b1b1"]


@pytest.mark.skipif(not LINUX_MMSG, reason="no mmsg")
def test_a_send_that_finds_no_room_waits_for_it_and_loses_nothing():
    """The send is tried without blocking (the GIL held); a peer whose queue is full makes
    it wait, the GIL released, until the peer reads: every answer arrives, in order."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        batch = mmsg.Batch(b, size=8, recv_slot=64, send_slot=64)
        a.settimeout(5)
        for i in range(3):
            a.send(b"q%d" % i)
        assert batch.exchange(lambda d: d + b"!") == 3  # room: sent at once
        assert [a.recv(64) for _ in range(3)] == [b"q0!", b"q1!", b"q2!"] and batch.waited == 0
        b.setblocking(False)
        filler = 0
        with contextlib.suppress(BlockingIOError):
            while True:  # a's queue full of b's datagrams
                b.send(b"f%d" % filler)
                filler += 1
        b.setblocking(True)
        assert filler > 0
        a.send(b"late")
        drained: list[bytes] = []

        def drain() -> None:
            time.sleep(0.3)  # the exchange below is waiting for room by then
            while len(drained) < filler + 1:
                drained.append(a.recv(64))

        reader = threading.Thread(target=drain)
        reader.start()
        assert batch.exchange(lambda d: d + b"!") == 1
        reader.join(timeout=10)
        assert batch.waited == 1
        assert drained == [b"f%d" % i for i in range(filler)] + [b"late!"]


@pytest.mark.skipif(not LINUX_MMSG, reason="no mmsg")
def test_datagrams_already_queued_are_read_without_blocking():
    """What is queued comes in batches without a blocking call (a unix socket: a send is
    queued at the peer before it returns); with nothing queued, the blocking read."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        batch = mmsg.Batch(b, size=4, recv_slot=16, send_slot=16)
        for i in range(6):
            a.send(b"%d" % i)
        assert batch.recv() == 4  # a batch's worth
        assert batch.recv() == 2
        b.setblocking(False)  # the blocking read now raises instead of waiting
        with pytest.raises(BlockingIOError):
            batch.recv()


@pytest.mark.parametrize("batch", [BATCH, 0], ids=["recvmmsg", "recvfrom"])
async def test_servers_sharing_a_port_each_stop_at_once(batch):
    """Two servers on one port (SO_REUSEPORT, as DNS workers): each one's close wakes its
    own receive loop. A datagram sent to the port to wake it went to either socket, and the
    other loop slept until the join's 5 s timeout (about one close in three)."""
    from fed_dns.server.dns import DnsServer

    table = table_mod.build(zone=ZONE, entries=entries({"mysql.ns": {"c1": ["10.0.0.1"]}}))
    for _ in range(20):
        first = DnsServer(host=LOOPBACK, port=0, table=table, reuse_port=True, udp_batch=batch)
        await first.start()
        second = DnsServer(host=LOOPBACK, port=first.port, table=table, reuse_port=True, udp_batch=batch)
        await second.start()
        for server in (first, second):
            started = time.monotonic()
            await server.close()
            assert time.monotonic() - started < 2.0
