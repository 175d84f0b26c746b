"""DNS over TCP (RFC 7766): 2-byte length framing, pipelined queries answered in order, and
three bounds a hostile client cannot stretch:

- unsent answers: a connection whose unsent bytes pass `max_unsent` (the transport's write
  buffer high-water mark: `pause_writing` is called) is a client that does not read; it is
  aborted at once, its buffer freed (counted as `tcp_unread_closed`). A client that reads
  never gets there: the kernel's socket buffers come first (`DnsServer` sets the listener's
  SO_SNDBUF to the same bound, so those stay small too).
- time: a deadline per message, not per byte. Each connection must complete its next query
  within `idle_timeout` of the previous one's (or of its opening); bytes of an unfinished
  query do not move the deadline, so a trickle is closed like a silent client
  (`tcp_idle_closed`). One timer per connection, re-armed only when it fires early.
- connections: at `max_connections`, a new connection evicts the connection that has gone
  longest without a complete query (the oldest idle one; `tcp_evicted`) instead of being
  refused, so a full set of idle or trickling clients cannot lock new clients out.

Unanswered input is bounded too: at most one unfinished message (2 + 65,535 bytes) and one
read's worth of complete ones wait in a connection's buffer; a connection answers at most
`PER_TURN` queries per callback (reading paused until the rest are answered), so one client
pipelining thousands of queries delays the others by a turn, not by all its answers; and it
stops answering the moment it is closed.
"""

from __future__ import annotations

import asyncio
import struct
import time

from fed_dns.server.stats import Stats
from fed_dns.server.topology import client_region
from fed_dns.server.udp import answer

MAX_BUFFERED = 2 * 65537  # bytes of unfinished query kept per connection (a safety net)
MAX_UNSENT = 128 * 1024  # unsent answer bytes per connection before it is closed
PER_TURN = 64  # queries answered per callback; more pipelined ones wait for the next turn


class TcpState:
    """What every connection of one listener shares: the table, the counters, the limits,
    and the open connections, least recently active first (a dict used as an ordered set)."""

    def __init__(self, *, table, stats: Stats, idle_timeout: float, max_connections: int,
                 max_udp: int, identity: str | None = None, max_unsent: int = MAX_UNSENT) -> None:
        self.table = table
        self.identity = identity
        self.stats = stats
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_udp = max_udp
        self.max_unsent = max_unsent
        self.connections: dict[TcpProtocol, None] = {}

    def admit(self, conn: TcpProtocol) -> bool:
        """Register a new connection, evicting the least recently active one when full
        (False: nothing to evict, a cap of 0)."""
        if len(self.connections) >= self.max_connections:
            oldest = next(iter(self.connections), None)
            if oldest is None:
                return False
            self.stats.tcp_evicted += 1
            oldest.close()  # leaves `connections` at once
        self.connections[conn] = None
        self.stats.tcp_open = len(self.connections)
        return True

    def active(self, conn: TcpProtocol) -> None:
        """`conn` completed a query: it becomes the most recently active."""
        connections = self.connections
        if conn in connections:
            del connections[conn]
            connections[conn] = None

    def forget(self, conn: TcpProtocol) -> None:
        if self.connections.pop(conn, 0) is None:
            self.stats.tcp_open = len(self.connections)

    def close_all(self) -> None:
        for conn in list(self.connections):
            conn.close()


class TcpProtocol(asyncio.Protocol):
    def __init__(self, state: TcpState) -> None:
        self.state = state
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.deadline = 0.0  # loop time by which the next query must be complete
        self.peer = ""  # the client's address, for its region (topology)
        self.waiting = False  # reading paused: complete queries wait for the next turn

    def connection_made(self, transport) -> None:  # type: ignore[override]
        st = self.state
        if not st.admit(self):
            st.stats.drop("tcp", "connection_cap")
            transport.abort()
            return
        self.transport = transport
        transport.set_write_buffer_limits(high=st.max_unsent)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""
        st.stats.tcp_connections += 1
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + st.idle_timeout
        self.timer = loop.call_at(self.deadline, self._expire)

    def _expire(self) -> None:
        """The timer: close when the deadline has passed, else wait for the (later) one."""
        if self.transport is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() >= self.deadline:
            self.state.stats.tcp_idle_closed += 1
            self.close()
        else:
            self.timer = loop.call_at(self.deadline, self._expire)

    def close(self) -> None:
        """Close now: gracefully when every answer has reached the kernel, else abort (a
        transport closed with unsent answers would wait, holding them, for a client that
        may never read)."""
        transport = self.transport
        if transport is not None:
            self._release()
            if transport.get_write_buffer_size():
                transport.abort()
            else:
                transport.close()

    def abort(self) -> None:
        transport = self.transport
        if transport is not None:
            self._release()
            transport.abort()

    def _release(self) -> None:
        self.transport = None
        self.buf = bytearray()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.state.forget(self)

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        self.buf += data
        self._turn()

    def _turn(self) -> None:
        """Answer up to PER_TURN queries; with more waiting, stop reading and come back
        after the other callbacks (one client's 256 kB of pipelined queries must not hold
        the loop for everyone else)."""
        if self.transport is None:
            return
        try:
            more = self._drain()
        except Exception:  # noqa: BLE001 - never let one connection stop the server
            self.state.stats.errors += 1
            self.abort()
            return
        transport = self.transport
        if transport is None:
            return
        if more:
            if not self.waiting:
                self.waiting = True
                transport.pause_reading()
            asyncio.get_running_loop().call_soon(self._turn)
        elif self.waiting:
            self.waiting = False
            transport.resume_reading()

    def _drain(self) -> bool:
        """Answer the complete queries in the buffer, PER_TURN at most; True when a complete
        one is left."""
        st = self.state
        buf = self.buf
        topology = st.table.topology
        region = client_region(topology, self.peer) if topology.active and self.peer else 0
        at = 0
        answered = 0
        more = False
        while len(buf) - at >= 2 and self.transport is not None:
            (n,) = struct.unpack_from("!H", buf, at)
            if len(buf) - at < 2 + n:
                break
            if answered == PER_TURN:
                more = True
                break
            query = bytes(buf[at + 2:at + 2 + n])
            at += 2 + n
            answered += 1
            start = time.perf_counter_ns()
            response = answer(table=st.table, stats=st.stats, protocol="tcp", query=query,
                              max_udp=st.max_udp, identity=st.identity, region=region)
            if response is not None:  # may call pause_writing: then transport is None
                self.transport.write(struct.pack("!H", len(response)) + response)
            st.stats.latency["tcp"].observe_us((time.perf_counter_ns() - start) / 1000)
        if self.transport is None:
            return False
        del buf[:at]
        if answered:
            self.deadline = asyncio.get_running_loop().time() + st.idle_timeout
            st.active(self)
        if not more and len(buf) > MAX_BUFFERED:  # never: the rest is one unfinished query
            self.abort()
            return False
        return more

    def pause_writing(self) -> None:
        """More than `max_unsent` answer bytes wait for a client that does not read them."""
        self.state.stats.tcp_unread_closed += 1
        self.abort()

    def connection_lost(self, exc) -> None:
        if self.transport is not None:
            self._release()
