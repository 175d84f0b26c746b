"""Extra DNS worker processes for `fed-dns run` (`dns.workers: N`).

The daemon's own DnsServer is worker 0; workers 1..N-1 are processes that each run a
DnsServer on the same port (SO_REUSEPORT) and get the daemon's table as diffs over a pipe:
`("diff", puts, deletes)` after every reconcile run that changed it, `("live",)` once the
daemon's table goes live (until then a worker answers SERVFAIL like the daemon). A worker
exits when the pipe closes, so no worker outlives the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger("fed_dns.workers")

STOP_GRACE = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSettings:
    zone: str
    prefix: str
    host: str
    port: int
    tcp_idle_timeout: float
    max_tcp_connections: int
    max_udp_size: int
    log_format: str = "text"
    log_level: str = "info"
    topology: object | None = None  # server.topology.Topology: answer order (None: off)


def diff(*, old: Mapping[str, bytes], new: Mapping[str, bytes]) -> tuple[dict[str, bytes], list[str]]:
    """Puts and deletes that turn `old` into `new` (pure)."""
    puts = {k: v for k, v in new.items() if old.get(k) != v}
    deletes = [k for k in old if k not in new]
    return puts, deletes


class WorkerPool:
    """Starts the worker processes and keeps them in step with the daemon's table."""

    def __init__(self, *, settings: WorkerSettings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.sent: dict[str, bytes] = {}
        self.live = False
        self._workers: list[tuple[multiprocessing.Process, object]] = []

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        for index in range(1, self.count):
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker_entry, args=(self.settings, index, parent, child),
                               name=f"fed-dns-dns-{index}", daemon=True)
            proc.start()
            parent.close()
            self._workers.append((proc, child))

    def publish(self, entries: Mapping[str, bytes], *, live: bool) -> None:
        puts, deletes = diff(old=self.sent, new=entries)
        messages = []
        if puts or deletes:
            messages.append(("diff", puts, deletes))
        if live and not self.live:
            messages.append(("live",))
        if not messages:
            return
        for proc, conn in self._workers:
            for message in messages:
                try:
                    conn.send(message)
                except OSError as exc:
                    log.error("DNS worker %s is gone: %s", proc.name, exc)
        self.sent = dict(entries)
        self.live = self.live or live

    def alive(self) -> bool:
        return all(proc.is_alive() for proc, _ in self._workers)

    def close(self) -> None:
        for _, conn in self._workers:
            with contextlib.suppress(OSError):
                conn.close()  # EOF: each worker stops listening and exits
        for proc, _ in self._workers:
            proc.join(timeout=STOP_GRACE)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self._workers = []


def _worker_entry(settings: WorkerSettings, index: int, conn, unused) -> None:
    import uvloop

    from fed_dns.app import logs

    unused.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the daemon decides
    logs.setup(fmt=settings.log_format, level=settings.log_level)
    uvloop.run(_worker(settings, index, conn))


async def _worker(settings: WorkerSettings, index: int, conn) -> None:
    from fed_dns.server import dns, table

    loop = asyncio.get_running_loop()
    identity = f"{socket.gethostname()} worker {index} pid {os.getpid()}"
    server = dns.DnsServer(host=settings.host, port=settings.port, reuse_port=True,
                           identity=identity, table=table.loading(zone=settings.zone),
                           tcp_idle_timeout=settings.tcp_idle_timeout,
                           max_tcp_connections=settings.max_tcp_connections,
                           max_udp_size=settings.max_udp_size)
    await server.start()
    entries: dict[str, bytes] = {}
    live = False
    done = asyncio.Event()

    def readable() -> None:
        nonlocal live
        try:
            while conn.poll():
                message = conn.recv()
                if message[0] == "diff":
                    _, puts, deletes = message
                    for key in deletes:
                        entries.pop(key, None)
                    entries.update(puts)
                elif message[0] == "live":
                    live = True
        except (EOFError, OSError):
            done.set()
            return
        if live:
            server.swap(table.build(zone=settings.zone, entries=entries, prefix=settings.prefix,
                                    previous=server.table, topology=settings.topology))

    loop.add_reader(conn.fileno(), readable)
    try:
        await done.wait()
    finally:
        loop.remove_reader(conn.fileno())
        await server.close()
