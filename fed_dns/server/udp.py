"""DNS over UDP: a byte-level fast path for the common query shapes, `respond` for the rest.

Every request is counted (`stats.slots`) and timed (`stats.latency`, the
`dns_request_duration_seconds` histogram): a batch of datagrams read by one recvmmsg and
answered by one sendmmsg is observed once with its count, each of its requests having
waited exactly that long from read to sent (two clock reads per batch, not per query); one
datagram at a time (recvfrom, asyncio) is timed on its own.

Fast path (no EDNS, or a bare EDNS(0) OPT): find the end of the question name, look the
lower-cased question up in the table's compiled answers, and send
`ID + header + the client's question + compiled tail [+ OPT]`. Anything else, or an answer
that would not fit, goes to `respond()`.

With an active topology each datagram comes with its source address (`reply_from`): one
cached lookup gives the client's region r, and the same fast path then reads `table.caches[r]`
(that region's orders) instead of the plain cache. Topology off: `reply` alone, unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

from fed_dns.server import mmsg
from fed_dns.server.respond import MIN_UDP, OPT_LEN, Outcome, respond, udp_limit
from fed_dns.server.stats import Stats
from fed_dns.server.table import ZoneTable, stat_slot
from fed_dns.server.topology import Clients
from fed_dns.server.wire import opt_rr

_PLAIN = b"\x00\x01\x00\x00\x00\x00\x00\x00"  # qd=1, an=ns=ar=0
_WITH_OPT = b"\x00\x01\x00\x00\x00\x00\x00\x01"  # qd=1, ar=1
_OPT_HEAD = b"\x00\x00\x29"  # root owner, type OPT
MAX_QUERY = 4096  # bytes read per datagram; a longer "query" is cut and gets FORMERR
BATCH = 64  # datagrams per recvmmsg/sendmmsg where those work (0: recvfrom/sendto)


def record(stats: Stats, protocol: str, outcome: Outcome) -> None:
    if outcome.malformed:
        stats.drop(protocol, "malformed")
    else:
        stats.slots[protocol][stat_slot(outcome.qtype, outcome.rcode)] += 1
        if outcome.response is None:
            stats.drop(protocol, "unanswerable")
    if outcome.truncated:
        stats.truncated += 1


def answer(*, table: ZoneTable, stats: Stats, protocol: str, query: bytes, max_udp: int,
           identity: str | None, region: int = 0) -> bytes | None:
    """The full (slow) path for one query: respond and count it (the transports time it,
    with the sending). Both transports use it."""
    outcome = respond(table, query, tcp=protocol == "tcp", max_udp=max_udp, identity=identity,
                      region=region)
    record(stats, protocol, outcome)
    return outcome.response


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, *, table: ZoneTable, stats: Stats, max_udp: int,
                 identity: str | None = None) -> None:
        self.stats = stats
        self.identity = identity
        self.slots = stats.slots["udp"]
        self.latency = stats.latency["udp"]
        self.max_udp = max_udp
        self.opts = (opt_rr(udp_size=max_udp), opt_rr(udp_size=max_udp, do=True))
        self.transport: asyncio.DatagramTransport | None = None
        self.region = 0  # the current datagram's client region (reply_from sets it)
        self.clients = Clients(table.topology)
        self.swap(table)

    def swap(self, table: ZoneTable) -> None:
        self.table = table
        self.caches = table.caches
        self.cache = table.cache
        if table.topology != self.clients.topology:
            self.clients = Clients(table.topology)
        self.regional = table.topology.active  # datagrams go through reply_from

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.sendto = transport.sendto

    def datagram_received(self, data: bytes, addr) -> None:  # asyncio transports, recvfrom
        start = time.perf_counter_ns()
        response = self.reply_from(data, addr[0]) if self.regional else self.reply(data)
        if response is not None:
            try:
                self.sendto(response, addr)
            except Exception:  # noqa: BLE001 - a failed send: count it, go on
                self.stats.errors += 1
        self.latency.observe_us((time.perf_counter_ns() - start) / 1000)

    def reply_from(self, data: bytes, address: bytes | str) -> bytes | None:
        """`reply` for a client at `address` (packed, or text): its region's answers."""
        caches = self.caches
        region = self.clients.region(address)
        self.region = region if region < len(caches) else 0
        self.cache = caches[self.region]
        return self.reply(data)

    def reply(self, data: bytes) -> bytes | None:  # the hot path: every transport's one
        """The response to one datagram (None: send nothing). Never raises."""
        try:
            end = data.find(0, 12)
            ent = self.cache.get(data[12:end + 5].lower())
            if ent is not None and not data[2] & 0xF8:
                extra = len(data) - end - 5
                if extra == 0:
                    if data[4:12] == _PLAIN and end + ent.size <= 507:
                        self.slots[ent.slot] += 1  # counted first: seen once answered
                        return b"".join((data[:2], ent.hdrs[data[2] & 1],
                                         data[12:end + 5], next(ent.cycle)))
                elif extra == OPT_LEN and data[4:12] == _WITH_OPT:
                    o = end + 5
                    if data[o:o + 3] == _OPT_HEAD and not data[o + 6] and not data[o + 9] \
                            and not data[o + 10]:
                        limit = udp_limit(client=data[o + 3] << 8 | data[o + 4],
                                          max_udp=self.max_udp)
                        if o + ent.size + OPT_LEN <= limit:
                            self.slots[ent.slot] += 1
                            return b"".join((data[:2], ent.hdrs[2 | data[2] & 1], data[12:o],
                                             next(ent.cycle), self.opts[data[o + 7] >> 7]))
            return answer(table=self.table, stats=self.stats, protocol="udp", query=data,
                          max_udp=self.max_udp, identity=self.identity, region=self.region)
        except Exception:  # noqa: BLE001 - never let one packet stop the server
            self.stats.errors += 1
            return None

    def error_received(self, exc: Exception) -> None:  # ICMP errors: nothing to do
        pass


class UdpThread:
    """The UDP socket read by a blocking loop in a thread of its own.

    Cheaper per packet than an event-loop transport (no callback and address conversions
    per datagram): the socket calls release the GIL, so the event loop (TCP, the etcd mirror,
    HTTP) still runs between packets. Where recvmmsg/sendmmsg work (`mmsg.available()`) the
    loop takes up to `batch` datagrams per call and sends their answers in one; else (or with
    `batch=0`) one recvfrom and one sendto per datagram. Either way each datagram goes through
    `UdpProtocol.reply`. `close()` wakes the loop (see there).
    """

    def __init__(self, *, sock: socket.socket, protocol: UdpProtocol,
                 batch: int = BATCH) -> None:
        self.sock = sock
        self.protocol = protocol
        self.stopping = False
        self.batch = mmsg.Batch(sock, size=batch, recv_slot=MAX_QUERY,
                                send_slot=max(protocol.max_udp, MIN_UDP)) \
            if batch > 0 and mmsg.available() else None
        run = self._run if self.batch is None else self._run_batched
        self.thread = threading.Thread(target=run, name="dns-udp", daemon=True)

    def start(self) -> None:
        self.sock.setblocking(True)
        self.protocol.connection_made(self.sock)
        self.thread.start()

    def _run_batched(self) -> None:
        batch = self.batch
        exchange = batch.exchange
        protocol = self.protocol
        reply, reply_from = protocol.reply, protocol.reply_from
        observe = protocol.latency.observe_us
        while not self.stopping:
            try:
                if protocol.regional:
                    n = exchange(reply_from, source=True)
                else:
                    n = exchange(reply)
            except OSError:
                if self.stopping:
                    break
                continue
            observe(batch.elapsed_ns / 1000, n)  # each of the n: read together, sent together

    def _run(self) -> None:
        recv = self.sock.recvfrom
        handle = self.protocol.datagram_received
        while not self.stopping:
            try:
                data, addr = recv(MAX_QUERY)
            except OSError:
                if self.stopping:
                    break
                continue
            if self.stopping:
                break
            handle(data, addr)

    def close(self) -> None:
        """Stop the loop and close the socket. The loop blocks in a receive: a shutdown of
        the socket wakes it on Linux (the receive returns nothing; `shutdown` itself says
        ENOTCONN for an unconnected UDP socket, after waking it). A datagram sent to the port
        is the fallback elsewhere, but not enough alone: with SO_REUSEPORT (several DNS
        workers on one port) the kernel gives it to any socket of the group, and the loop it
        was meant for slept on until the join's timeout (the worker stopped 5 s late, or was
        killed)."""
        self.stopping = True
        host, port = self.sock.getsockname()[:2]
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        wake = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        try:
            with socket.socket(self.sock.family, socket.SOCK_DGRAM) as s:
                s.sendto(b"", (wake, port))
        except OSError:
            pass
        self.thread.join(timeout=5)
        self.sock.close()
