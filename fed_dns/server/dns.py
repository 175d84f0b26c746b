"""`DnsServer`: one UDP and one TCP listener on the same address, answering from a table
that `swap()` replaces atomically (a question sees the old table or the new, never half)."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from fed_dns.server.respond import MAX_UDP
from fed_dns.server.stats import Stats
from fed_dns.server.table import ZoneTable
from fed_dns.server.tcp import MAX_UNSENT, TcpProtocol, TcpState
from fed_dns.server.udp import BATCH, UdpProtocol, UdpThread


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _socket(*, host: str, port: int, kind: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(_family(host), kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if kind == socket.SOCK_DGRAM:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class DnsServer:
    def __init__(self, *, host: str, port: int, table: ZoneTable, tcp_idle_timeout: float = 10.0,
                 max_tcp_connections: int = 1000, max_udp_size: int = MAX_UDP,
                 reuse_port: bool = False, tcp_backlog: int = 1024,
                 identity: str | None = None, udp_batch: int = BATCH,
                 max_tcp_unsent: int = MAX_UNSENT) -> None:
        """`identity`, when set, answers `id.server`/`hostname.bind` CH TXT (which worker).
        `udp_batch`: datagrams per recvmmsg/sendmmsg (0: one recvfrom/sendto each).
        `max_tcp_unsent`: unsent answer bytes a TCP client may leave unread before it is
        closed; at `max_tcp_connections` a new connection evicts the least recently active."""
        self.host = host
        self.port = port
        self.table = table
        self.stats = Stats()
        self.reuse_port = reuse_port
        self.tcp_backlog = tcp_backlog
        self.udp_batch = udp_batch
        self._udp = UdpProtocol(table=table, stats=self.stats, max_udp=max_udp_size,
                                identity=identity)
        self._tcp = TcpState(table=table, stats=self.stats, idle_timeout=tcp_idle_timeout,
                             max_connections=max_tcp_connections, max_udp=max_udp_size,
                             identity=identity, max_unsent=max_tcp_unsent)
        self._udp_thread: UdpThread | None = None
        self._tcp_server: asyncio.Server | None = None

    def _bind_pair(self) -> tuple[socket.socket, socket.socket]:
        """UDP and TCP on one port (port 0: the kernel picks one free for both)."""
        for _ in range(20):
            udp = _socket(host=self.host, port=self.port, kind=socket.SOCK_DGRAM,
                          reuse_port=self.reuse_port)
            port = udp.getsockname()[1]
            try:
                tcp = _socket(host=self.host, port=port, kind=socket.SOCK_STREAM,
                              reuse_port=self.reuse_port)
            except OSError:
                udp.close()
                if self.port:
                    raise
                continue
            return udp, tcp
        raise OSError(f"no port free for both UDP and TCP on {self.host}")

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        udp, tcp = self._bind_pair()
        self.port = udp.getsockname()[1]
        # accepted sockets inherit it: the kernel holds at most ~2x this per connection for a
        # client that does not read (autotuned, it grew to 4 MB, each answered at our cost)
        with contextlib.suppress(OSError):
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._tcp.max_unsent)
        try:
            self._tcp_server = await loop.create_server(lambda: TcpProtocol(self._tcp), sock=tcp,
                                                        backlog=self.tcp_backlog)
        except BaseException:
            tcp.close()
            udp.close()
            raise
        self._udp_thread = UdpThread(sock=udp, protocol=self._udp, batch=self.udp_batch)
        self._udp_thread.start()

    def swap(self, table: ZoneTable) -> None:
        """Answer from `table` from the next question on."""
        self.table = table
        self._udp.swap(table)
        self._tcp.table = table
        self.stats.table_swaps += 1

    async def close(self) -> None:
        if self._tcp_server is not None:
            self._tcp_server.close()
            self._tcp.close_all()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp_server.wait_closed(), timeout=2)
            self._tcp_server = None
        if self._udp_thread is not None:
            await asyncio.to_thread(self._udp_thread.close)
            self._udp_thread = None

    async def __aenter__(self) -> DnsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
