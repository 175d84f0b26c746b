"""DNS over TCP against hostile clients (issue 11): real sockets on loopback.

A client that pipelines and never reads is closed once its unsent answers pass the bound
(memory stays flat, other clients keep being served); a client trickling one byte at a time
is closed at the idle timeout (a deadline per message, not per byte); a full connection cap
evicts the least recently active connection instead of refusing newcomers.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Iterator

import dns.message

from tests.server.helpers import addresses, ask, read_msg, tcp_closed, tcp_connect, tcp_frame
from tests.support import wait_for

Z = "fed.example.com."
RECORDS = {"c1.svc.ns": {"host": "10.0.0.1", "ttl": 5}, "c2.svc.ns": {"host": "10.0.0.2", "ttl": 5}}
# one name with 200 addresses: a 3.3 kB answer to a 40-byte query
WIDE = {**RECORDS, **{f"c{i}.wide.ns": {"host": f"10.1.{i // 256}.{i % 256}"} for i in range(200)}}


def _frame(name: str) -> bytes:
    return tcp_frame(dns.message.make_query(name, "A"))


def _ask(s: socket.socket, name: str) -> list[str]:
    s.sendall(_frame(name))
    return addresses(read_msg(s))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@contextlib.contextmanager
def flooding(port: int, *, clients: int) -> Iterator[list[threading.Thread]]:
    """`clients` connections (4 kB receive buffers), each sending pipelined queries for a
    3.3 kB answer (80 kB of queries asking for 6.6 MB of answers, again and again) and
    reading nothing, in a thread each, which ends when the server closes its connection."""
    blob = _frame(f"wide.ns.{Z}") * 2000
    stop = threading.Event()
    socks = [tcp_connect(port, rcvbuf=4096) for _ in range(clients)]
    threads = [threading.Thread(target=_flood, args=(s, blob, stop), daemon=True) for s in socks]
    try:
        for t in threads:
            t.start()
        yield threads
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)
        for s in socks:
            s.close()


def _flood(s: socket.socket, blob: bytes, stop: threading.Event) -> None:
    """Send pipelined queries until the server closes us (or the test stops); read nothing."""
    s.settimeout(0.2)
    while not stop.is_set():
        try:
            s.sendall(blob)
        except TimeoutError:
            continue  # the server is not reading now: try again
        except OSError:
            return  # closed by the server: what the test waits for


def test_clients_that_pipeline_and_never_read_are_closed_with_memory_flat(serve_records):
    srv = serve_records(WIDE, max_tcp_unsent=64 * 1024)
    probe = ask(srv.port, f"wide.ns.{Z}", tcp=True)  # compiled once, before the baseline
    assert len(addresses(probe)) == 200
    before = _rss_mb()
    with flooding(srv.port, clients=20) as threads:
        wait_for(lambda: not any(t.is_alive() for t in threads), timeout=30,
                 what="every non-reading client closed by the server")
        grown = _rss_mb() - before
    # before the bound: each connection kept ~20 MB of answers (one 256 kB read of queries
    # answered in full), 400 MB here; now each holds at most 64 kB + one answer
    assert grown < 80, f"RSS grew {grown:.0f} MB"
    assert srv.stats.tcp_unread_closed == 20
    wait_for(lambda: srv.stats.tcp_open == 0, timeout=5, what="no connection left")
    assert addresses(ask(srv.port, f"c1.svc.ns.{Z}", tcp=True)) == ["10.0.0.1"]


def test_a_reading_client_is_served_during_a_flood_of_non_readers(serve_records):
    srv = serve_records(WIDE, max_tcp_connections=8, max_tcp_unsent=64 * 1024)
    with flooding(srv.port, clients=6) as threads:
        with tcp_connect(srv.port) as good:
            for _ in range(50):  # a pipelining client that reads gets every answer
                good.sendall(_frame(f"wide.ns.{Z}") * 4)
                assert all(len(addresses(read_msg(good))) == 200 for _ in range(4))
        wait_for(lambda: not any(t.is_alive() for t in threads), timeout=30,
                 what="non-readers closed by the server")
    assert srv.stats.tcp_unread_closed == 6


def test_a_trickling_client_is_closed_at_the_idle_timeout(serve_records):
    srv = serve_records(RECORDS, tcp_idle_timeout=0.5)
    frame = _frame(f"{'x' * 60}.c1.svc.ns.{Z}")  # 100 bytes: 10 s at one byte per 0.1 s
    with tcp_connect(srv.port) as s:
        start = time.monotonic()
        sent = 0
        closed = False
        while sent < len(frame) and not closed:
            try:
                s.sendall(frame[sent:sent + 1])
            except OSError:
                closed = True
                break
            sent += 1
            # the pace of the trickle; a close shows up as readable (EOF) meanwhile
            if select.select([s], [], [], 0.1)[0]:
                closed = tcp_closed(s, timeout=1)
        elapsed = time.monotonic() - start
    assert closed, "a byte every 0.1 s kept the connection open"
    assert sent < len(frame)
    assert 0.4 < elapsed < 4.0, elapsed
    assert srv.stats.tcp_idle_closed == 1


def test_each_complete_query_moves_the_deadline(serve_records):
    srv = serve_records(RECORDS, tcp_idle_timeout=1.0)
    with tcp_connect(srv.port) as s:
        start = time.monotonic()
        for _ in range(6):  # 2.4 s in all, each query 0.4 s after the one before
            assert _ask(s, f"c1.svc.ns.{Z}") == ["10.0.0.1"]
            time.sleep(0.4)  # the client's pace, not a synchronisation
        assert _ask(s, f"c2.svc.ns.{Z}") == ["10.0.0.2"]
        assert time.monotonic() - start > 1.0  # longer than one idle timeout
        assert tcp_closed(s, timeout=5)  # and then the timeout applies
    assert srv.stats.tcp_idle_closed == 1


def test_a_full_cap_evicts_the_least_recently_active_connection(serve_records):
    srv = serve_records(RECORDS, max_tcp_connections=3)
    a, b, c = (tcp_connect(srv.port) for _ in range(3))
    d = e = None
    try:
        for s in (a, b, c, b):  # activity order now: a, c, b
            assert _ask(s, f"c1.svc.ns.{Z}") == ["10.0.0.1"]
        d = tcp_connect(srv.port)
        assert _ask(d, f"c2.svc.ns.{Z}") == ["10.0.0.2"]  # admitted: a goes
        assert tcp_closed(a, timeout=3)
        e = tcp_connect(srv.port)
        assert _ask(e, f"c2.svc.ns.{Z}") == ["10.0.0.2"]  # then c, the least recent
        assert tcp_closed(c, timeout=3)
        assert _ask(b, f"c1.svc.ns.{Z}") == ["10.0.0.1"]  # b, active later, still served
        assert (srv.stats.tcp_evicted, srv.stats.tcp_open) == (2, 3)
        assert ("tcp", "connection_cap") not in srv.stats.dropped
    finally:
        for s in (a, b, c, d, e):
            if s is not None:
                s.close()


def test_a_cap_full_of_silent_and_trickling_clients_does_not_lock_out_new_ones(serve_records):
    srv = serve_records(RECORDS, max_tcp_connections=10, tcp_idle_timeout=30)
    squatters = [tcp_connect(srv.port) for _ in range(10)]
    newcomers: list[socket.socket] = []
    try:
        for i, s in enumerate(squatters):
            if i % 2:
                s.sendall(b"\x00")  # half a length prefix, then nothing
        wait_for(lambda: srv.stats.tcp_open == 10, timeout=5, what="the cap filled")
        for _ in range(10):  # each newcomer (kept open) evicts a squatter and is answered
            newcomers.append(tcp_connect(srv.port))
            assert _ask(newcomers[-1], f"c1.svc.ns.{Z}") == ["10.0.0.1"]
        assert all(tcp_closed(s, timeout=3) for s in squatters)
        assert (srv.stats.tcp_evicted, srv.stats.tcp_open) == (10, 10)
        assert all(_ask(s, f"c2.svc.ns.{Z}") == ["10.0.0.2"] for s in newcomers)
    finally:
        for s in squatters + newcomers:
            s.close()


def test_a_long_pipeline_is_answered_completely_and_in_order(serve_records):
    """Thousands of queries in one write are answered a turn (PER_TURN) at a time, reading
    paused meanwhile and resumed after: every answer, in order, and the connection lives."""
    srv = serve_records(RECORDS)
    names = [f"c{1 + i % 2}.svc.ns.{Z}" for i in range(5000)]
    queries = [dns.message.make_query(n, "A") for n in names]
    got: list[dns.message.Message] = []
    with tcp_connect(srv.port) as s:
        reader = threading.Thread(target=lambda: got.extend(read_msg(s) for _ in queries),
                                  daemon=True)
        reader.start()
        s.sendall(b"".join(tcp_frame(q) for q in queries))
        reader.join(timeout=30)
        assert [m.id for m in got] == [q.id for q in queries]
        assert [addresses(m) for m in got[:2]] == [["10.0.0.1"], ["10.0.0.2"]]
        assert _ask(s, f"c1.svc.ns.{Z}") == ["10.0.0.1"]
    assert srv.stats.tcp_unread_closed == 0


def _established(server_port: int, client_port: int) -> bool:
    """The server's side of the connection from `client_port` is still an open socket."""
    want = f":{server_port:04X}", f":{client_port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, remote, state = line.split()[1:4]
            if local.endswith(want[0]) and remote.endswith(want[1]) and state == "01":
                return True
    return False


def _unsent(srv) -> list[int]:
    return srv.call(lambda: [c.transport.get_write_buffer_size()
                             for c in srv.server._tcp.connections if c.transport is not None])


def test_an_idle_close_with_unsent_answers_frees_them(serve_records):
    """A client that stops reading with answers unsent (under the bound) and goes quiet is
    closed at the idle timeout and its answers dropped: the socket does not linger open
    waiting to flush them."""
    srv = serve_records({**WIDE, **{f"c{i}.big.ns": {"host": f"10.2.{i // 256}.{i % 256}"}
                                    for i in range(4100)}}, tcp_idle_timeout=1.0)
    with tcp_connect(srv.port, rcvbuf=4096) as s:
        for _ in range(64):  # 64 kB answers, one at a time, until some wait in user space
            answered = srv.stats.answered() + 1
            s.sendall(_frame(f"big.ns.{Z}"))
            wait_for(lambda: srv.stats.answered() >= answered, timeout=5, what="answered")
            if any(_unsent(srv)):
                break
        assert any(_unsent(srv)) and srv.stats.tcp_unread_closed == 0
        client_port = s.getsockname()[1]
        wait_for(lambda: srv.stats.tcp_idle_closed == 1, timeout=5, what="the idle close")
        wait_for(lambda: not _established(srv.port, client_port), timeout=5,
                 what="the server's socket closed")
