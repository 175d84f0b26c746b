"""DNS over TCP (RFC 7766): framing, pipelining, idle timeout (hostile clients and the
connection cap: test_tcp_abuse.py)."""

from __future__ import annotations

import struct
import time

import dns.message
import dns.rcode

from tests.server.helpers import (addresses, read_exact, read_msg, tcp_closed, tcp_connect,
                                  tcp_frame)
from tests.support import wait_for

Z = "fed.example.com."
RECORDS = {"c1.svc.ns": {"host": "10.0.0.1", "ttl": 5}, "c2.svc.ns": {"host": "10.0.0.2", "ttl": 5}}


def test_pipelined_queries_answered_in_order(serve_records):
    srv = serve_records(RECORDS)
    queries = [dns.message.make_query(n, "A") for n in
               [f"svc.ns.{Z}", f"c1.svc.ns.{Z}", f"nope.ns.{Z}", "example.org."] * 5]
    with tcp_connect(srv.port) as s:
        s.sendall(b"".join(tcp_frame(q) for q in queries))  # all at once, one write
        answers = [read_msg(s) for _ in queries]
    assert [a.id for a in answers] == [q.id for q in queries]
    assert [dns.rcode.to_text(a.rcode()) for a in answers[:4]] == \
        ["NOERROR", "NOERROR", "NXDOMAIN", "REFUSED"]
    assert sorted(addresses(answers[0])) == ["10.0.0.1", "10.0.0.2"]


def test_a_query_split_across_segments(serve_records):
    srv = serve_records(RECORDS)
    frame = tcp_frame(dns.message.make_query(f"c2.svc.ns.{Z}", "A"))
    with tcp_connect(srv.port) as s:
        for byte in frame:
            s.sendall(bytes([byte]))
            time.sleep(0.001)
        assert addresses(read_msg(s)) == ["10.0.0.2"]


def test_garbage_on_tcp_gets_formerr_and_the_connection_lives(serve_records):
    srv = serve_records(RECORDS)
    with tcp_connect(srv.port) as s:
        junk = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x3f"  # a name that runs off
        s.sendall(struct.pack("!H", len(junk)) + junk)
        (n,) = struct.unpack("!H", read_exact(s, 2))
        reply = read_exact(s, n)
        assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == dns.rcode.FORMERR
        s.sendall(tcp_frame(dns.message.make_query(f"c1.svc.ns.{Z}", "A")))
        assert addresses(read_msg(s)) == ["10.0.0.1"]


def test_idle_connection_is_closed_after_the_timeout(serve_records):
    srv = serve_records(RECORDS, tcp_idle_timeout=0.3)
    with tcp_connect(srv.port) as s:
        s.sendall(tcp_frame(dns.message.make_query(f"c1.svc.ns.{Z}", "A")))
        read_msg(s)
        start = time.monotonic()
        assert tcp_closed(s, timeout=3)
        assert 0.2 < time.monotonic() - start < 2.5
    wait_for(lambda: srv.stats.tcp_idle_closed == 1, timeout=2, what="idle close counted")


def test_a_silent_client_is_dropped_too(serve_records):
    srv = serve_records(RECORDS, tcp_idle_timeout=0.3)
    with tcp_connect(srv.port) as s:
        s.sendall(b"\x00")  # half a length prefix, then nothing
        assert tcp_closed(s, timeout=3)
