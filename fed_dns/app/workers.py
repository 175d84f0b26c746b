"""Extra DNS worker processes for `fed-dns run` (`dns.workers: N`).

The daemon's own DnsServer is worker 0; workers 1..N-1 are processes that each run a
DnsServer on the same port (SO_REUSEPORT) and get the daemon's table changes over a pipe:
`("diff", puts, deletes)` with each run's delta, `("live",)` once the daemon's table goes
live. Until then a worker answers SERVFAIL like the daemon and only accumulates the deltas;
at live it builds its table once, then applies each delta with `table.update`. A worker
exits when the pipe closes, so no worker outlives the daemon. Each worker sends its DNS
counters back every `STATS_PERIOD` (`("stats", requests, dropped, durations)`), so the
daemon's /metrics counts every process's queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

log = logging.getLogger("fed_dns.workers")

STOP_GRACE = 5.0
STATS_PERIOD = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSettings:
    zone: str
    prefix: str
    host: str
    port: int
    tcp_idle_timeout: float
    max_tcp_connections: int
    max_udp_size: int
    max_tcp_unsent: int = 128 * 1024
    log_format: str = "text"
    log_level: str = "info"
    topology: object | None = None  # server.topology.Topology: answer order (None: off)


class Pending:
    """Deltas accumulated before going live: a later put or delete of a key wins."""

    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}

    def add(self, *, puts: Mapping[str, bytes], deletes: Iterable[str]) -> None:
        """Deletes first, then puts (as `table.update` applies them)."""
        for key in deletes:
            self.entries.pop(key, None)
        self.entries.update(puts)


class WorkerPool:
    """Starts the worker processes and keeps them in step with the daemon's table."""

    def __init__(self, *, settings: WorkerSettings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.live = False
        self.stats: dict[int, dict[str, dict]] = {}  # worker index -> its latest counters
        self._workers: list[tuple[multiprocessing.Process, object]] = []

    def start(self) -> None:
        """Start the processes and read their counters on the running event loop."""
        ctx = multiprocessing.get_context("spawn")
        loop = asyncio.get_running_loop()
        for index in range(1, self.count):
            mine, theirs = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=_worker_entry, args=(self.settings, index, theirs, mine),
                               name=f"fed-dns-dns-{index}", daemon=True)
            proc.start()
            theirs.close()
            self._workers.append((proc, mine))
            loop.add_reader(mine.fileno(), self._receive, index, mine)

    def _receive(self, index: int, conn) -> None:
        try:
            while conn.poll():
                kind, *payload = conn.recv()
                if kind == "stats":
                    requests, dropped, durations = payload
                    self.stats[index] = {"requests": requests, "dropped": dropped,
                                         "durations": durations}
        except (EOFError, OSError):
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(conn.fileno())

    def counters(self, index: int, kind: str) -> dict:
        """Worker `index`'s latest `requests`, `dropped` or `durations` (a metrics source)."""
        return self.stats.get(index, {}).get(kind, {})

    def publish(self, *, puts: Mapping[str, bytes], deletes: Iterable[str], live: bool) -> None:
        """Send one run's table delta (deletes applied first, then puts); `live`: the daemon's
        table is live, so the workers answer from theirs from now on."""
        deletes = list(deletes)
        messages: list[tuple] = []
        if puts or deletes:
            messages.append(("diff", dict(puts), deletes))
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
        self.live = self.live or live

    def alive(self) -> bool:
        return all(proc.is_alive() for proc, _ in self._workers)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for _, conn in self._workers:
            with contextlib.suppress(Exception):
                loop.remove_reader(conn.fileno())
            with contextlib.suppress(OSError):
                conn.close()  # EOF: each worker stops listening and exits
        procs, self._workers = [proc for proc, _ in self._workers], []
        await asyncio.to_thread(_join, procs)


def _join(procs: list[multiprocessing.Process]) -> None:
    for proc in procs:
        proc.join(timeout=STOP_GRACE)
        if proc.is_alive():
            proc.kill()
            proc.join()


class Follow:
    """A worker's side of the pipe: messages -> its server's table."""

    def __init__(self, *, settings: WorkerSettings, server) -> None:
        self.settings = settings
        self.server = server
        self.pending: Pending | None = Pending()  # None once live

    def receive(self, message: tuple) -> None:
        from fed_dns.app import runtime
        from fed_dns.server import table

        s = self.settings
        if message[0] == "diff":
            _, puts, deletes = message
            if self.pending is not None:
                self.pending.add(puts=puts, deletes=deletes)
            else:
                self.server.swap(table.update(previous=self.server.table, puts=puts,
                                              deletes=deletes))
                if len(puts) + len(deletes) >= runtime.BIG_CHANGE:
                    runtime.after_big_change()
        elif message[0] == "live" and self.pending is not None:
            entries, self.pending = self.pending.entries, None
            self.server.swap(table.build(zone=s.zone, entries=entries, prefix=s.prefix,
                                         topology=s.topology))
            runtime.after_big_change()


def _worker_entry(settings: WorkerSettings, index: int, conn, unused) -> None:
    import uvloop

    from fed_dns.app import logs, runtime

    unused.close()
    runtime.tune_for_dns()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the daemon decides
    logs.setup(fmt=settings.log_format, level=settings.log_level)
    uvloop.run(_worker(settings, index, conn))


async def _worker(settings: WorkerSettings, index: int, conn) -> None:
    from fed_dns.server import dns, table

    loop = asyncio.get_running_loop()
    identity = f"{socket.gethostname()} worker {index} pid {os.getpid()}"
    server = dns.DnsServer(host=settings.host, port=settings.port, reuse_port=True,
                           identity=identity,
                           table=table.loading(zone=settings.zone, prefix=settings.prefix),
                           tcp_idle_timeout=settings.tcp_idle_timeout,
                           max_tcp_connections=settings.max_tcp_connections,
                           max_tcp_unsent=settings.max_tcp_unsent,
                           max_udp_size=settings.max_udp_size)
    await server.start()
    follow = Follow(settings=settings, server=server)
    done = asyncio.Event()

    def readable() -> None:
        try:
            while conn.poll():
                follow.receive(conn.recv())
        except (EOFError, OSError):
            done.set()

    async def report() -> None:
        while True:
            await asyncio.sleep(STATS_PERIOD)
            stats = server.stats
            try:
                conn.send(("stats", stats.requests, stats.dropped, stats.durations))
            except OSError:
                done.set()
                return

    loop.add_reader(conn.fileno(), readable)
    reporter = asyncio.create_task(report(), name="stats-report")
    try:
        await done.wait()
    finally:
        reporter.cancel()
        loop.remove_reader(conn.fileno())
        await server.close()
