"""DNS worker processes for `fed-dns run` (`dns.workers: N`, `auto` by default).

With workers, the daemon answers no DNS itself and keeps no table: N processes each run a
DnsServer on the DNS port (SO_REUSEPORT when N > 1) and build their tables from the deltas
the daemon's reconcile emits, so a query never waits behind the control work (watch events,
reconcile steps, etcd writes) that holds the daemon's GIL and loop.

Messages, daemon -> worker: `("diff", puts, deletes, seq)` (one or several runs' delta,
deletes applied first; `seq` numbers the diffs), `("live",)` once the daemon is settled. A
diff of more than `DIFF_CHUNK` keys comes as `("part", puts, deletes)` messages and a last
`"diff"` of the rest: unpickling one message holds the worker's GIL throughout (a failover's
35,000 keys: 8-15 ms in which no query was answered), a part under a millisecond; the worker
applies the parts to a table it does not answer from yet and swaps in the whole diff at its
`"diff"`, so no query sees part of a Service. A worker applies each delta to its
table as it comes (O(delta)) but answers SERVFAIL in the zone until live, like the daemon.
Worker -> daemon: `("bound", port)` or `("failed", reason)` at start, `("live",)` once it
answers from its table and `("applied", seq)` after each diff (the daemon is ready only
once every worker answers and has applied what was published by then), `("stats", counters)` every
`STATS_PERIOD` so /metrics counts every process's queries.

No event loop touches a pipe: `publish` queues the delta and a sender thread sends it (deltas
that queued up while a worker was slow to read are merged into one: a later put or delete of
a key wins), and on each side a reader thread receives whole messages and hands them to the
loop. A worker exits on `("stop",)` or when its pipe closes, so none outlives the daemon.
Signals to the whole process group are the daemon's to act on: a worker ignores SIGINT
(Ctrl-C), and after a SIGTERM it keeps answering until the daemon stops it, or stops by
itself after `term_grace` (a SIGTERM sent to it alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import queue
import signal
import socket
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

log = logging.getLogger("fed_dns.workers")

STOP_GRACE = 5.0
STATS_PERIOD = 1.0
START_TIMEOUT = 30.0  # a worker that has not bound its sockets by then fails the start
DIFF_CHUNK = 2_000  # keys per message (its unpickling holds the worker's GIL: ~0.5 ms)


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
    term_grace: float = STOP_GRACE  # a worker SIGTERMed stops by itself after this (see _worker)


class WorkerStartError(RuntimeError):
    """A worker could not listen (the port taken, an address not on this host) or died."""


def coalesce(messages: Iterable[tuple]) -> list[tuple]:
    """Messages in order, with each run of consecutive diffs merged into one: deletes before
    puts within a diff, a later put or delete of a key wins over an earlier one; the merged
    diff carries the sequence number of the last one."""
    out: list[tuple] = []
    merged: dict[str, bytes | None] | None = None
    last = 0
    for message in messages:
        if message[0] != "diff":
            if merged is not None:
                out.append(_diff(merged, last))
                merged = None
            out.append(message)
            continue
        _, puts, deletes, seq = message
        merged = {} if merged is None else merged
        for key in deletes:
            merged[key] = None
        merged.update(puts)
        last = seq
    if merged is not None:
        out.append(_diff(merged, last))
    return out


def split(message: tuple, *, size: int | None = None) -> list[tuple]:
    """A diff of more than `size` keys as `("part", puts, deletes)` messages of at most `size`
    keys, deletes first, and a last `"diff"` with the rest and the sequence number; any other
    message as it is. Applied in order, they leave what the diff leaves (its puts and deletes
    name distinct keys, as `coalesce` and the reconcile's deltas give them)."""
    size = DIFF_CHUNK if size is None else size
    if message[0] != "diff":
        return [message]
    _, puts, deletes, seq = message
    if len(puts) + len(deletes) <= size:
        return [message]
    items: list[tuple[str, bytes | None]] = [(key, None) for key in deletes]
    items.extend(puts.items())
    out = []
    for start in range(0, len(items), size):
        chunk = items[start:start + size]
        out.append(("part", {k: v for k, v in chunk if v is not None}, [k for k, v in chunk if v is None]))
    last = out.pop()
    out.append(("diff", last[1], last[2], seq))
    return out


def _diff(merged: Mapping[str, bytes | None], seq: int) -> tuple:
    return ("diff", {k: v for k, v in merged.items() if v is not None},
            [k for k, v in merged.items() if v is None], seq)


class _Sender:
    """A thread that sends queued messages to every worker: the loop only queues."""

    def __init__(self, conns: list) -> None:
        self._conns = conns
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._gone: set[int] = set()
        self._thread = threading.Thread(target=self._run, name="dns-worker-sender", daemon=True)
        self._thread.start()

    def put(self, message: tuple) -> None:
        self._queue.put(message)

    def stop(self) -> None:
        """Send what is queued, then end the thread (blocking: call from a thread)."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._queue.get_nowait())
            stop = None in batch
            for message in (part for m in coalesce(m for m in batch if m is not None) for part in split(m)):
                for index, conn in enumerate(self._conns):
                    if index in self._gone:
                        continue
                    try:
                        conn.send(message)
                    except (OSError, ValueError) as exc:  # the worker died: reported once
                        self._gone.add(index)
                        log.error("DNS worker %d is gone: %s", index + 1, exc)
            if stop:
                return


class WorkerPool:
    """Starts the worker processes and keeps them in step with the daemon's table deltas."""

    def __init__(self, *, settings: WorkerSettings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.port = settings.port  # the bound port once started (settings.port may be 0)
        self.live = False  # "live" sent
        self.stats: dict[int, dict] = {}  # worker index -> its latest counters
        self._acked: set[int] = set()  # workers answering from their live table
        self.published = 0  # sequence number of the last diff queued
        self._applied: dict[int, int] = {}  # worker index -> last diff it applied
        self._workers: list[tuple[multiprocessing.Process, object]] = []
        self._bound: dict[int, asyncio.Future] = {}
        self._readers: list[threading.Thread] = []
        self._sender: _Sender | None = None

    @property
    def indices(self) -> range:
        return range(1, self.count + 1)

    async def start(self) -> None:
        """Start the processes, each once the one before has bound the port (the first may
        bind port 0 and the others then share the port it got). Raises WorkerStartError."""
        ctx = multiprocessing.get_context("spawn")
        loop = asyncio.get_running_loop()
        for index in self.indices:
            settings = self.settings if index == 1 else _with_port(self.settings, self.port)
            mine, theirs = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=_worker_entry, args=(settings, index, self.count > 1, theirs, mine),
                               name=f"fed-dns-dns-{index}", daemon=True)
            self._bound[index] = loop.create_future()
            proc.start()
            theirs.close()
            self._workers.append((proc, mine))
            reader = threading.Thread(target=_read, args=(mine, loop, functools.partial(self._receive, index)),
                                      name=f"dns-worker-{index}-reader", daemon=True)
            reader.start()
            self._readers.append(reader)
            self.port = await self._wait_bound(index, proc)
        self._sender = _Sender([conn for _, conn in self._workers])

    async def _wait_bound(self, index: int, proc) -> int:
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while True:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(self._bound[index]), 0.2)
            if not proc.is_alive():
                raise WorkerStartError(f"DNS worker {index} exited with {proc.exitcode} before listening")
            if asyncio.get_running_loop().time() > deadline:
                raise WorkerStartError(f"DNS worker {index} did not listen within {START_TIMEOUT:g} s")

    def _receive(self, index: int, message: tuple | None) -> None:
        """A worker's message (None: its pipe closed), on the loop."""
        if message is None:
            return
        kind, *payload = message
        future = self._bound.get(index)
        if kind == "bound" and future is not None and not future.done():
            future.set_result(payload[0])
        elif kind == "failed" and future is not None and not future.done():
            future.set_exception(WorkerStartError(payload[0]))
        elif kind == "live":
            self._acked.add(index)
        elif kind == "applied":
            self._applied[index] = payload[0]
        elif kind == "stats":
            self.stats[index] = payload[0]

    def counters(self, index: int, kind: str) -> dict:
        """Worker `index`'s latest counters of one kind (`requests`, `dropped`, `durations`,
        `tcp_closed`, `gc`): a metrics source."""
        return self.stats.get(index, {}).get(kind, {})

    def publish(self, *, puts: Mapping[str, bytes], deletes: Iterable[str], live: bool) -> None:
        """Queue one run's table delta (deletes applied first, then puts); `live`: the daemon
        is settled, so the workers answer from their tables from now on. O(delta), no I/O."""
        deletes = list(deletes)
        if self._sender is None:
            return
        if puts or deletes:
            self.published += 1
            self._sender.put(("diff", dict(puts), deletes, self.published))
        if live and not self.live:
            self._sender.put(("live",))
            self.live = True

    def applied_through(self, seq: int) -> bool:
        """Every worker has applied the diffs up to `seq` (its table holds them)."""
        return all(self._applied.get(index, 0) >= seq for index in self.indices)

    def answering(self) -> bool:
        """Every worker is alive and answers from its live table."""
        return self.alive() and len(self._acked) == self.count

    def alive(self) -> bool:
        return bool(self._workers) and all(proc.is_alive() for proc, _ in self._workers)

    async def close(self) -> None:
        """Send what is queued, ask every worker to stop, wait (killing one that does not
        stop within STOP_GRACE), then close the pipes."""
        sender, self._sender = self._sender, None
        if sender is None and self._workers:
            sender = _Sender([conn for _, conn in self._workers])  # a start that failed
        if sender is not None:
            sender.put(("stop",))
            await asyncio.to_thread(sender.stop)
        procs = [proc for proc, _ in self._workers]
        await asyncio.to_thread(_join, procs)
        for reader in self._readers:  # each sees EOF once its worker has exited
            await asyncio.to_thread(reader.join, STOP_GRACE)
        for _, conn in self._workers:
            with contextlib.suppress(OSError):
                conn.close()
        self._workers, self._readers = [], []


def _read(conn, loop: asyncio.AbstractEventLoop, deliver) -> None:
    """A reader thread: blocking reads of whole messages, each handed to the loop; None at
    the end. (Never `add_reader` on a pipe: uvloop makes the fd non-blocking, and a message
    arriving in parts then raised BlockingIOError in `recv`, which ended the worker.)"""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = None
        try:
            loop.call_soon_threadsafe(deliver, message)
        except RuntimeError:  # the loop is closed
            return
        if message is None or message == ("stop",):
            return


def _with_port(settings: WorkerSettings, port: int) -> WorkerSettings:
    import dataclasses

    return dataclasses.replace(settings, port=port)


def _join(procs: list[multiprocessing.Process]) -> None:
    for proc in procs:
        proc.join(timeout=STOP_GRACE)
        if proc.is_alive():
            proc.kill()
            proc.join()


class Follow:
    """A worker's side of the pipe: deltas -> its table, served once live."""

    def __init__(self, *, settings: WorkerSettings, server) -> None:
        from fed_dns.app import runtime
        from fed_dns.server import table

        self.server = server
        self.table = table.build(zone=settings.zone, entries={}, prefix=settings.prefix,
                                 topology=settings.topology)
        self.live = False
        self._freezer = runtime.Freezer()
        self._parts = None  # the table with a diff's parts applied so far, not answered from yet

    def receive(self, message: tuple) -> tuple | None:
        """Apply one message; the reply to send back, if any."""
        from fed_dns.server import table

        if message[0] in ("part", "diff"):
            puts, deletes = message[1], message[2]
            with self._freezer.applying(len(puts) + len(deletes)):
                updated = table.update(previous=self.table if self._parts is None else self._parts,
                                       puts=puts, deletes=deletes)
            if message[0] == "part":
                self._parts = updated
                return None
            self._parts, self.table = None, updated
            if self.live:
                self.server.swap(self.table)
            return ("applied", message[3])
        elif message[0] == "live" and not self.live:
            self.live = True
            self.server.swap(self.table)
            log.info("DNS worker: answering from the live table (%d records)", len(self.table))
            return ("live",)
        return None


def _worker_entry(settings: WorkerSettings, index: int, reuse_port: bool, conn, unused) -> None:
    import uvloop

    from fed_dns.app import logs, runtime

    unused.close()
    runtime.tune_for_dns()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the daemon decides
    logs.setup(fmt=settings.log_format, level=settings.log_level)
    uvloop.run(_worker(settings, index, reuse_port, conn))


async def _worker(settings: WorkerSettings, index: int, reuse_port: bool, conn) -> None:
    from fed_dns.app import runtime
    from fed_dns.server import dns, table

    loop = asyncio.get_running_loop()
    identity = f"{socket.gethostname()} worker {index} pid {os.getpid()}"
    server = dns.DnsServer(host=settings.host, port=settings.port, reuse_port=reuse_port,
                           identity=identity,
                           table=table.loading(zone=settings.zone, prefix=settings.prefix),
                           tcp_idle_timeout=settings.tcp_idle_timeout,
                           max_tcp_connections=settings.max_tcp_connections,
                           max_tcp_unsent=settings.max_tcp_unsent,
                           max_udp_size=settings.max_udp_size)
    try:
        await server.start()
    except OSError as exc:
        conn.send(("failed", f"DNS worker {index} cannot listen on {settings.host}:{settings.port}: {exc}"))
        return
    conn.send(("bound", server.port))
    follow = Follow(settings=settings, server=server)
    done = asyncio.Event()
    terminated = False

    def on_sigterm() -> None:
        # A SIGTERM to the whole group (systemd's KillMode=control-group, `kill -TERM -PGID`,
        # coreutils' timeout) reaches the daemon too, which stops its workers in its own order
        # ("stop" below): queries are answered until then, and nothing logs a worker as gone.
        # A worker SIGTERMed alone stops by itself after term_grace.
        nonlocal terminated
        if not terminated:
            terminated = True
            log.info("DNS worker %d: SIGTERM; stopping when the daemon says, or in %gs",
                     index, settings.term_grace)
            loop.call_later(settings.term_grace, done.set)

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)

    def deliver(message: tuple | None) -> None:
        if message is None or message == ("stop",):
            done.set()
            return
        reply = follow.receive(message)
        if reply is not None:
            send(reply)

    def send(message: tuple) -> None:
        try:
            conn.send(message)
        except OSError:
            done.set()

    async def report() -> None:
        while not done.is_set():
            await asyncio.sleep(STATS_PERIOD)
            send(("stats", {**counters(server.stats), "gc": runtime.gc_runtime().snapshot()}))

    reader = threading.Thread(target=_read, args=(conn, loop, deliver), name="daemon-reader", daemon=True)
    reader.start()
    reporter = asyncio.create_task(report(), name="stats-report")
    try:
        await done.wait()
    finally:
        reporter.cancel()
        await server.close()
        conn.close()  # the daemon's reader sees EOF


def counters(stats) -> dict:
    """A DnsServer's counters as the metrics read them (sent by workers)."""
    return {"requests": stats.requests, "dropped": stats.dropped, "durations": stats.durations,
            "tcp_closed": tcp_closed(stats)}


def tcp_closed(stats) -> dict:
    return {("idle",): getattr(stats, "tcp_idle_closed", 0),
            ("evicted",): getattr(stats, "tcp_evicted", 0),
            ("unread",): getattr(stats, "tcp_unread_closed", 0)}
