"""`fed-dns serve --etcd URL --zone ZONE [--listen H:P] [--prefix P] [--workers N] [--http H:P]`

The DNS tier alone: a ZoneMirror on the zone's etcd keys feeds its changes to
`server.table.update()` (a full `build()` on loads) and `DnsServer.swap()`. When etcd is away the last table keeps answering (serve stale). With
`--workers N`, N processes each run their own mirror and server on one port
(SO_REUSEPORT); the parent only supervises them. SIGINT/SIGTERM: stop listening, stop the
mirror, exit 0. Bad arguments: exit 2 with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass

from fed_dns.app import logs, runtime

log = logging.getLogger("fed_dns.serve")

STOP_GRACE = 10.0  # seconds a worker gets to stop before it is killed


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeOptions:
    endpoints: tuple[str, ...]
    zone: str
    host: str
    port: int
    prefix: str
    workers: int
    http: tuple[str, int] | None
    topology: object | None = None  # server.topology.Topology from --config (None: off)
    log_format: str = "text"
    log_level: str = "info"


def parse_hostport(value: str, *, what: str) -> tuple[str, int]:
    """`127.0.0.1:53`, `[::1]:53` -> (host, port); ValueError with the reason."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{what} {value!r}: expected HOST:PORT with a port 0..65535")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ValueError(f"{what} {value!r}: {host!r} is not an IP address") from None
        host = "127.0.0.1"
    return host, int(port)


def options(args) -> ServeOptions:
    """The command line checked; ValueError names the bad argument."""
    from fed_dns.etcd.client import EtcdSettings
    from fed_dns.records.names import name_to_key, normalize_zone

    zone = normalize_zone(args.zone)
    name_to_key(name=zone, prefix=args.prefix)  # a bad prefix raises here
    endpoints = tuple(e.strip() for e in args.etcd.split(",") if e.strip())
    EtcdSettings(endpoints=endpoints)  # checks every URL
    host, port = parse_hostport(args.listen, what="--listen")
    if args.workers < 1:
        raise ValueError(f"--workers {args.workers}: must be at least 1")
    http = parse_hostport(args.http, what="--http") if args.http else None
    return ServeOptions(endpoints=endpoints, zone=zone, host=host, port=port,
                        prefix=args.prefix, workers=args.workers, http=http,
                        topology=answer_order(getattr(args, "config", None)),
                        log_format=getattr(args, "log_format", "text"),
                        log_level=getattr(args, "log_level", "info"))


def answer_order(path: str | None):
    """The Topology of a fed-dns config file (its topology section, the clusters' regions and
    weights), or None. A bad file raises ValueError with every problem."""
    if path is None:
        return None
    from fed_dns import config as config_mod
    from fed_dns.app import components

    try:
        cfg = config_mod.load(path)
    except config_mod.ConfigError as exc:
        raise ValueError(f"--config:\n{exc}") from None
    return components.topology(config=cfg, members=tuple(c.spec() for c in cfg.clusters))


def main(args) -> int:
    logs.setup(fmt=getattr(args, "log_format", "text"), level=getattr(args, "log_level", "info"))
    try:
        opts = options(args)
    except ValueError as exc:
        print(f"fed-dns serve: {exc}", file=sys.stderr)
        return 2
    if opts.workers == 1:
        return run_worker(opts, index=0, reuse_port=False)
    return supervise(opts)


# -- one worker ---------------------------------------------------------------------------

def run_worker(opts: ServeOptions, *, index: int, reuse_port: bool) -> int:
    import uvloop

    from fed_dns.app import runtime

    runtime.tune_for_dns()
    return uvloop.run(serve(opts, index=index, reuse_port=reuse_port))


class Feed:
    """Mirror changes -> tables. Changes pending between two builds coalesce (a later put or
    delete of a key overrides an earlier one; a reload replaces everything pending) and are
    applied with `table.update` (O(changed)); a reload is a full `build` against the live
    table, which keeps every compiled answer whose names did not change.

    `on_change` takes a `MirrorChange` (etcd.mirror), read by its attributes `puts`,
    `deletes`, `reload` and `revision`.
    """

    def __init__(self, *, opts: ServeOptions, server) -> None:
        self.opts = opts
        self.server = server
        self.base = None  # the newest reload's puts (the whole prefix), until built
        self.pending: dict[str, bytes | None] = {}  # key -> value, None: delete
        self.revision = 0  # of the newest change received
        self.changed = asyncio.Event()
        self.builds = 0
        self.changed_keys = 0  # keys the last build changed (a load: every key)
        self._freezer = runtime.Freezer()
        self.last_build_ms = 0.0

    def on_change(self, change) -> None:
        if change.reload:
            self.base = change.puts
            self.pending = {}
        else:
            pending = self.pending
            for key in change.deletes:
                pending[key] = None
            pending.update(change.puts)
        self.revision = change.revision
        self.changed.set()

    def build(self):
        """The next table from the live one and what is pending (None: nothing to build)."""
        from fed_dns.server import table

        current = self.server.table
        if self.base is None and (not self.pending or current.loading):
            return None  # deltas before the first load wait for it
        new = current
        self.changed_keys = (len(self.base) if self.base is not None else 0) + len(self.pending)
        if self.base is not None:
            new = table.build(zone=self.opts.zone, entries=self.base, prefix=self.opts.prefix,
                              previous=None if current.loading else current,
                              topology=self.opts.topology)
        if self.pending:
            puts = {k: v for k, v in self.pending.items() if v is not None}
            deletes = [k for k, v in self.pending.items() if v is None]
            new = table.update(previous=new, puts=puts, deletes=deletes)
        self.base, self.pending = None, {}
        return new

    async def run(self) -> None:
        while True:
            await self.changed.wait()
            self.changed.clear()
            start = time.perf_counter()
            loaded = self.base is not None
            try:
                new = self.build()
            except Exception:  # noqa: BLE001 - keep serving the last good table
                log.exception("zone table build failed; still serving the previous table")
                continue
            if new is None:
                continue
            self.server.swap(new)
            if loaded:
                runtime.release_free_memory()  # the load's pages, freed on gRPC's threads' arenas
            self._freezer.changed(self.changed_keys)
            self.builds += 1
            self.last_build_ms = (time.perf_counter() - start) * 1000
            if new.dropped:
                log.warning("values that are not SkyDNS records were skipped",
                            extra={"dropped": new.dropped})
            await asyncio.sleep(0)  # let queries in between two builds


async def serve(opts: ServeOptions, *, index: int = 0, reuse_port: bool = False,
                ready=None) -> int:
    """One worker until SIGINT/SIGTERM (or `ready`'s owner cancels it). `ready` (an
    asyncio.Future) gets the DnsServer once it listens."""
    from fed_dns.etcd.client import EtcdSettings
    from fed_dns.etcd.mirror import ZoneMirror
    from fed_dns.records.names import name_to_key
    from fed_dns.server import dns, table

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    identity = f"{socket.gethostname()} worker {index} pid {os.getpid()}"
    server = dns.DnsServer(host=opts.host, port=opts.port, reuse_port=reuse_port, identity=identity,
                           table=table.loading(zone=opts.zone, prefix=opts.prefix))
    try:
        await server.start()
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", opts.host, opts.port, exc)
        return 1
    feed = Feed(opts=opts, server=server)
    mirror = ZoneMirror(settings=EtcdSettings(endpoints=opts.endpoints),
                        prefix=name_to_key(name=opts.zone, prefix=opts.prefix) + "/",
                        on_change=feed.on_change, keep=False)  # the table is the one copy
    http = await _start_http(opts, server=server, mirror=mirror, feed=feed) if index == 0 else None
    log.info("serving", extra={"zone": opts.zone, "listen": f"{opts.host}:{server.port}",
                               "worker": index})
    tasks = [asyncio.create_task(mirror.run(), name="mirror"),
             asyncio.create_task(feed.run(), name="table-feed")]
    if ready is not None:
        ready.set_result(server)
    try:
        await stop.wait()
    finally:
        await server.close()  # stop listening first, then the source
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if http is not None:
            await http.close()
        log.info("stopped", extra={"worker": index})
    return 0


async def _start_http(opts: ServeOptions, *, server, mirror, feed):
    if opts.http is None:
        return None
    from fed_dns.app import http as http_mod
    from fed_dns.app import metrics as metrics_mod

    reg = metrics_mod.Metrics()
    reg.add_source("dns_requests_total", lambda: server.stats.requests)
    reg.add_source("dns_dropped_total", lambda: server.stats.dropped)
    reg.add_source("dns_request_duration_seconds", lambda: server.stats.durations)
    reg.add_source("source_stale_seconds", lambda: float(mirror.stale_seconds))
    reg.add_source("published_records", lambda: len(server.table))

    def status() -> dict:
        return {"zone": opts.zone, "records": len(server.table), "dropped": server.table.dropped,
                "etcd": {"connected": mirror.connected, "stale_seconds": mirror.stale_seconds},
                "builds": feed.builds, "last_build_ms": feed.last_build_ms,
                "dns": server.stats.snapshot()}

    endpoint = http_mod.HttpEndpoint(host=opts.http[0], port=opts.http[1], metrics=reg,
                                     status=status, ready=lambda: mirror.loaded)
    await endpoint.start()
    return endpoint


# -- several workers ----------------------------------------------------------------------

def _worker_entry(opts: ServeOptions, index: int) -> None:
    logs.setup(fmt=opts.log_format, level=opts.log_level)
    sys.exit(run_worker(opts, index=index, reuse_port=True))


def supervise(opts: ServeOptions) -> int:
    """Start the workers, wait for a signal or a worker's death, stop them all."""
    stopping = False

    def on_signal(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_entry, args=(opts, i), name=f"fed-dns-serve-{i}")
             for i in range(opts.workers)]
    rc = 0
    try:
        for proc in procs:
            proc.start()
        while not stopping:
            done = multiprocessing.connection.wait([p.sentinel for p in procs], timeout=0.2)
            if done and not stopping:
                dead = [p for p in procs if p.exitcode is not None]
                log.error("a worker exited; stopping the others",
                          extra={"workers": [f"{p.name}={p.exitcode}" for p in dead]})
                rc = 1
                break
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: the worker's own ordered shutdown
        deadline = time.monotonic() + STOP_GRACE
        for proc in procs:
            proc.join(timeout=max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return rc
