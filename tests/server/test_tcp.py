"""DNS over TCP (RFC 7766): framing, pipelining, idle timeout, connection cap."""

from __future__ import annotations

import socket
import struct
import time

import dns.message
import dns.rcode

from tests.server.helpers import addresses, ask
from tests.support import LOOPBACK, wait_for

Z = "fed.example.com."
RECORDS = {"c1.svc.ns": {"host": "10.0.0.1", "ttl": 5}, "c2.svc.ns": {"host": "10.0.0.2", "ttl": 5}}


def _connect(port: int) -> socket.socket:
    s = socket.create_connection((LOOPBACK, port), timeout=3)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _frame(msg: dns.message.Message) -> bytes:
    wire = msg.to_wire()
    return struct.pack("!H", len(wire)) + wire


def _read_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def _read_msg(s: socket.socket) -> dns.message.Message:
    (n,) = struct.unpack("!H", _read_exact(s, 2))
    return dns.message.from_wire(_read_exact(s, n))


def _closed(s: socket.socket, *, timeout: float) -> bool:
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_pipelined_queries_answered_in_order(serve_records):
    srv = serve_records(RECORDS)
    queries = [dns.message.make_query(n, "A") for n in
               [f"svc.ns.{Z}", f"c1.svc.ns.{Z}", f"nope.ns.{Z}", "example.org."] * 5]
    with _connect(srv.port) as s:
        s.sendall(b"".join(_frame(q) for q in queries))  # all at once, one write
        answers = [_read_msg(s) for _ in queries]
    assert [a.id for a in answers] == [q.id for q in queries]
    assert [dns.rcode.to_text(a.rcode()) for a in answers[:4]] == \
        ["NOERROR", "NOERROR", "NXDOMAIN", "REFUSED"]
    assert sorted(addresses(answers[0])) == ["10.0.0.1", "10.0.0.2"]


def test_a_query_split_across_segments(serve_records):
    srv = serve_records(RECORDS)
    frame = _frame(dns.message.make_query(f"c2.svc.ns.{Z}", "A"))
    with _connect(srv.port) as s:
        for byte in frame:
            s.sendall(bytes([byte]))
            time.sleep(0.001)
        assert addresses(_read_msg(s)) == ["10.0.0.2"]


def test_garbage_on_tcp_gets_formerr_and_the_connection_lives(serve_records):
    srv = serve_records(RECORDS)
    with _connect(srv.port) as s:
        junk = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x3f"  # a name that runs off
        s.sendall(struct.pack("!H", len(junk)) + junk)
        (n,) = struct.unpack("!H", _read_exact(s, 2))
        reply = _read_exact(s, n)
        assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == dns.rcode.FORMERR
        s.sendall(_frame(dns.message.make_query(f"c1.svc.ns.{Z}", "A")))
        assert addresses(_read_msg(s)) == ["10.0.0.1"]


def test_idle_connection_is_closed_after_the_timeout(serve_records):
    srv = serve_records(RECORDS, tcp_idle_timeout=0.3)
    with _connect(srv.port) as s:
        s.sendall(_frame(dns.message.make_query(f"c1.svc.ns.{Z}", "A")))
        _read_msg(s)
        start = time.monotonic()
        assert _closed(s, timeout=3)
        assert 0.2 < time.monotonic() - start < 2.5
    wait_for(lambda: srv.stats.tcp_idle_closed == 1, timeout=2, what="idle close counted")


def test_a_silent_client_is_dropped_too(serve_records):
    srv = serve_records(RECORDS, tcp_idle_timeout=0.3)
    with _connect(srv.port) as s:
        s.sendall(b"\x00")  # half a length prefix, then nothing
        assert _closed(s, timeout=3)


def test_connections_over_the_cap_are_closed_and_udp_still_answers(serve_records):
    srv = serve_records(RECORDS, max_tcp_connections=3)
    held = [_connect(srv.port) for _ in range(3)]
    try:
        for s in held:  # each one accepted and answering
            s.sendall(_frame(dns.message.make_query(f"c1.svc.ns.{Z}", "A")))
            _read_msg(s)
        extra = [_connect(srv.port) for _ in range(5)]
        for s in extra:
            assert _closed(s, timeout=3)
            s.close()
        assert addresses(ask(srv.port, f"c1.svc.ns.{Z}")) == ["10.0.0.1"]  # UDP unaffected
        assert srv.stats.dropped[("tcp", "connection_cap")] == 5
        held.pop().close()
        wait_for(lambda: srv.stats.tcp_open == 2, timeout=3, what="a slot freed")
        assert addresses(ask(srv.port, f"c1.svc.ns.{Z}", tcp=True)) == ["10.0.0.1"]
    finally:
        for s in held:
            s.close()
