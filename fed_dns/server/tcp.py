"""DNS over TCP (RFC 7766): 2-byte length framing, pipelined queries answered in order,
an idle timeout, and a cap on open connections (over it, new ones are closed at once)."""

from __future__ import annotations

import asyncio
import struct

from fed_dns.server.stats import Stats
from fed_dns.server.topology import client_region
from fed_dns.server.udp import answer

MAX_BUFFERED = 2 * 65537  # unanswered bytes kept per connection before reading pauses


class TcpState:
    """What every connection of one listener shares: the table, the counters, the limits."""

    def __init__(self, *, table, stats: Stats, idle_timeout: float, max_connections: int,
                 max_udp: int, identity: str | None = None) -> None:
        self.table = table
        self.identity = identity
        self.stats = stats
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_udp = max_udp
        self.connections: set[TcpProtocol] = set()

    def close_all(self) -> None:
        for conn in list(self.connections):
            conn.close()


class TcpProtocol(asyncio.Protocol):
    def __init__(self, state: TcpState) -> None:
        self.state = state
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.paused = False
        self.peer = ""  # the client's address, for its region (topology)

    def connection_made(self, transport) -> None:  # type: ignore[override]
        st = self.state
        if len(st.connections) >= st.max_connections:
            st.stats.drop("tcp", "connection_cap")
            transport.abort()
            return
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""
        st.connections.add(self)
        st.stats.tcp_connections += 1
        st.stats.tcp_open = len(st.connections)
        self._arm()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.state.idle_timeout, self._idle)

    def _idle(self) -> None:
        self.state.stats.tcp_idle_closed += 1
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        self.buf += data
        self._arm()
        try:
            self._drain()
        except Exception:  # noqa: BLE001 - never let one connection stop the server
            self.state.stats.errors += 1
            self.transport.abort()

    def _drain(self) -> None:
        st = self.state
        topology = st.table.topology
        region = client_region(topology, self.peer) if topology.active and self.peer else 0
        while len(self.buf) >= 2:
            (n,) = struct.unpack_from("!H", self.buf)
            if len(self.buf) < 2 + n:
                break
            query = bytes(self.buf[2:2 + n])
            del self.buf[:2 + n]
            response = answer(table=st.table, stats=st.stats, protocol="tcp", query=query,
                              max_udp=st.max_udp, identity=st.identity, region=region)
            if response is not None:
                self.transport.write(struct.pack("!H", len(response)) + response)
        if len(self.buf) > MAX_BUFFERED:
            self.transport.abort()

    def pause_writing(self) -> None:  # the client does not read: stop reading its queries
        if self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self.paused:
            self.paused = False
            self.transport.resume_reading()

    def connection_lost(self, exc) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.transport is not None:
            self.state.connections.discard(self)
            self.state.stats.tcp_open = len(self.state.connections)
        self.transport = None
