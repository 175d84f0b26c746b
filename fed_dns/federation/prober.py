"""Health probes: member API servers (ClusterProber) and data-plane backends (BackendProber).

Both probe every `period`, give each probe at most `timeout` (a hung peer never blocks the
loop: everything is asyncio with a hard deadline), feed each result to the pure state machine
of `federation.health`, and report decided changes through a callback. Stop them by
cancelling `run()`; everything they opened is closed on the way out.

A cluster is probed with GET `/readyz` (falling back to `/healthz` once the member answers
404 there, as API servers older than 1.16 do) using the member's own kubeconfig (see
`kubeapi`). Any 2xx is a success; another status, a connection error, a TLS error or no
answer within `timeout` is a failure. `last_error` says which, never with a credential in it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import aiohttp

from fed_dns.federation import kubeapi
from fed_dns.federation.health import ProbeState, Thresholds, transition
from fed_dns.federation.targets import Target, TargetKey
from fed_dns.model import Health, ServiceKey

log = logging.getLogger(__name__)

MAX_ERROR = 300


@dataclass(slots=True)
class ProbeCounters:
    """Plain counters, read by the app at scrape time."""

    probes: int = 0
    failures: int = 0
    transitions: int = 0
    inconclusive: int = 0  # timeouts while our own event loop was stalled: not counted


TICK = 0.05  # how often the stall watch checks that the event loop runs on time
STALL_MEMORY = 64  # stalls remembered (a probe only asks about the last few seconds)


class StallWatch:
    """Remembers when this process's event loop did not run on time (a long step, a full
    garbage collection, a CPU starved by other processes). A probe that timed out while the
    loop was stalled says nothing about the member: its answer may be sitting in the socket,
    unread. Such probes are inconclusive instead of failed, so a busy fed-dns never declares
    healthy members unreachable (a false failover of every member)."""

    def __init__(self) -> None:
        self.stalls: collections.deque[tuple[float, float]] = collections.deque(maxlen=STALL_MEMORY)
        self.due: float | None = None  # when the next tick should run

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.due = due = loop.time() + TICK
            await asyncio.sleep(TICK)
            late = loop.time() - due
            if late > TICK:
                self.stalls.append((due, loop.time()))

    def stalled(self, *, start: float, end: float, longer_than: float) -> bool:
        """Whether a stall longer than `longer_than` s overlapped [start, end] (loop time),
        the one still going on included (the tick that would record it has not run yet)."""
        if self.due is not None and end - self.due > longer_than:
            return True
        return any(b - a > longer_than and a < end and b > start for a, b in self.stalls)


async def every(*, period: float, wake: asyncio.Event, step: Callable[[], Awaitable[None]]) -> None:
    """Run `step` every `period` seconds (start to start), at once when `wake` is set.

    A step that overruns the period is followed by the next one at once, so a hung peer
    (one probe per `timeout`) still gets `failure_threshold` probes within
    `period x failure_threshold` when timeout <= period. Wakes during a step coalesce into
    one extra step.
    """
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while True:
        wake.clear()
        await step()
        next_at = max(next_at + period, loop.time())
        delay = next_at - loop.time()
        if delay > 0 and not wake.is_set():
            with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it can swallow a
                async with asyncio.timeout(delay):  # cancel that comes as the wake is set
                    await wake.wait()
        if wake.is_set():
            next_at = loop.time()


def describe(exc: BaseException, *, secrets: tuple[str, ...] = ()) -> str:
    """A short, credential-free description of an exception."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text[:MAX_ERROR]


class ClusterProber:
    """Probes one member's API server; `on_change(name, health)` on every health change."""

    def __init__(self, *, name: str, api_client: Any, period: float = 1.0, timeout: float = 1.0,
                 thresholds: Thresholds = Thresholds(),
                 on_change: Callable[[str, Health], None] | None = None) -> None:
        self.name = name
        self._configuration = api_client.configuration
        self._period = period
        self._timeout = timeout
        self._thresholds = thresholds
        self._on_change = on_change
        self._wake = asyncio.Event()
        self._path = "/readyz"
        self._endpoint: kubeapi.ApiEndpoint | None = None
        self.state = ProbeState()
        self.last_error: str | None = None
        self.last_probe: float | None = None  # time.time() of the last finished probe
        self.counters = ProbeCounters()
        self.stalls = StallWatch()

    @property
    def health(self) -> Health:
        return self.state.health

    def poke(self) -> None:
        """Probe now (a broken watch calls this), without waiting for the period."""
        self._wake.set()

    async def run(self) -> None:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"fed-dns-probe-{self.name}")
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True),
                                             trust_env=False) as session, asyncio.TaskGroup() as group:
                watch = group.create_task(self.stalls.run(), name=f"stalls-{self.name}")
                try:
                    await every(period=self._period, wake=self._wake,
                                step=lambda: self._probe(session=session, executor=executor))
                finally:
                    watch.cancel()
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    async def _probe(self, *, session: aiohttp.ClientSession, executor: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        error, timed_out = await self._check(session=session, executor=executor)
        self.counters.probes += 1
        self.last_probe = time.time()
        if timed_out and self.stalls.stalled(start=started, end=loop.time(),
                                             longer_than=self._timeout / 2):
            self.counters.inconclusive += 1  # our loop stalled, not (shown to be) the member
            self._wake.set()  # ask again at once, not a period later: a hung member is
            return  # still declared after `failure_threshold` conclusive timeouts, soon
        if error is not None:
            self.counters.failures += 1
        self.last_error = error
        before = self.state.health
        self.state = transition(state=self.state, ok=error is None, thresholds=self._thresholds)
        if self.state.health is not before:
            self.counters.transitions += 1
            log.info("cluster health changed: cluster=%s from=%s to=%s error=%s",
                     self.name, before, self.state.health, error or "-")
            if self._on_change is not None:
                try:
                    self._on_change(self.name, self.state.health)
                except Exception:
                    log.exception("on_change failed for cluster %s", self.name)

    async def _check(self, *, session: aiohttp.ClientSession,
                     executor: ThreadPoolExecutor) -> tuple[str | None, bool]:
        """(None when the member is ready, else why not; whether the probe timed out)."""
        loop = asyncio.get_running_loop()
        headers: dict[str, str] = {}
        path = self._path
        try:
            async with asyncio.timeout(self._timeout):
                if self._endpoint is None:
                    self._endpoint = await loop.run_in_executor(executor, kubeapi.endpoint, self._configuration)
                headers = await loop.run_in_executor(executor, kubeapi.auth_headers, self._configuration)
                status = await self._get(session=session, path=path, headers=headers)
                if status == 404 and path == "/readyz":
                    self._path = path = "/healthz"
                    status = await self._get(session=session, path=path, headers=headers)
        except TimeoutError:
            return f"GET {path}: no answer within {self._timeout:g}s", True
        except Exception as exc:  # noqa: BLE001 - any failure to probe is a failed probe
            secrets = tuple(headers.values()) + tuple(v.split(" ", 1)[-1] for v in headers.values())
            return f"GET {path}: {describe(exc, secrets=secrets)}", False
        if 200 <= status < 300:
            return None, False
        return f"GET {path}: HTTP {status}", False

    async def _get(self, *, session: aiohttp.ClientSession, path: str, headers: Mapping[str, str]) -> int:
        endpoint = self._endpoint
        assert endpoint is not None
        async with session.get(endpoint.base_url + path, headers=headers, ssl=endpoint.ssl,
                               server_hostname=endpoint.server_hostname, proxy=endpoint.proxy,
                               allow_redirects=False) as response:
            await response.read()
            return response.status


class BackendProber:
    """Data-plane probes (annotation `fed-dns.io/probe`): tcp connect or HTTP GET 2xx/3xx.

    `results` holds only decided targets (ready -> True, unreachable -> False): a target
    still `unknown` is left out, so render keeps it by its Service's readiness alone. It is a
    read-only live view (no copy per call). `on_change(changed)` names the targets whose
    result changed, each with its new result or None (no result any more: undecided again,
    or no longer a target). `results` changes only together with a report: at the end of a
    round (all its changes in one call), and in `set_targets`/`update_targets`
    (synchronously, before they return) for the results they drop.

    Targets are kept per (cluster, Service): `update_targets` replaces one Service's in
    O(that Service). A round probes a snapshot of every target through `concurrency` workers
    (never one task per target) and moves each state as its result comes, so the event
    loop runs between probes whatever the number of targets.
    """

    def __init__(self, *, period: float = 1.0, timeout: float = 1.0, thresholds: Thresholds = Thresholds(),
                 concurrency: int = 100,
                 on_change: Callable[[Mapping[TargetKey, bool | None]], None] | None = None) -> None:
        self._period = period
        self._timeout = timeout
        self._thresholds = thresholds
        self._concurrency = concurrency
        self._on_change = on_change
        self._targets: dict[TargetKey, Target] = {}
        self._by_service: dict[tuple[str, ServiceKey], dict[TargetKey, Target]] = {}
        self._states: dict[TargetKey, ProbeState] = {}
        self._results: dict[TargetKey, bool] = {}
        self._results_view = MappingProxyType(self._results)
        self._wake = asyncio.Event()
        self.counters = ProbeCounters()

    def set_targets(self, targets: Mapping[TargetKey, Target]) -> None:
        """Replace every target; unchanged ones keep their state, new or changed start unknown."""
        grouped: dict[tuple[str, ServiceKey], dict[TargetKey, Target]] = {}
        for key, target in targets.items():
            grouped.setdefault((key[0], key[1]), {})[key] = target
        dropped: dict[TargetKey, bool | None] = {}
        for group in self._by_service.keys() - grouped.keys():
            self._replace(group, {}, dropped)
        for group, group_targets in grouped.items():
            self._replace(group, group_targets, dropped)
        self._report(dropped)

    def update_targets(self, *, cluster: str, service: ServiceKey, targets: Mapping[TargetKey, Target]) -> None:
        """Replace one Service's targets (keys `(cluster, service, address)`), as set_targets
        does for all: O(that Service)."""
        group = (cluster, service)
        if any((key[0], key[1]) != group for key in targets):
            raise ValueError(f"targets of {cluster}/{service} must be keyed by that cluster and Service")
        dropped: dict[TargetKey, bool | None] = {}
        self._replace(group, targets, dropped)
        self._report(dropped)

    def _replace(self, group: tuple[str, ServiceKey], targets: Mapping[TargetKey, Target],
                 dropped: dict[TargetKey, bool | None]) -> None:
        old = self._by_service.pop(group, {})
        for key, target in old.items():
            if targets.get(key) != target:
                del self._targets[key]
                self._states.pop(key, None)
                if self._results.pop(key, None) is not None:
                    dropped[key] = None
        if targets:
            self._by_service[group] = dict(targets)
            self._targets.update(targets)
            if targets.keys() - old.keys() or any(old.get(k) != t for k, t in targets.items()):
                self._wake.set()

    @property
    def states(self) -> Mapping[TargetKey, ProbeState]:
        return dict(self._states)

    @property
    def results(self) -> Mapping[TargetKey, bool]:
        return self._results_view

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(force_close=True, limit=self._concurrency)
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
            await every(period=self._period, wake=self._wake, step=lambda: self._round(session=session))

    async def _round(self, *, session: aiohttp.ClientSession) -> None:
        pending = iter(list(self._targets.items()))  # a snapshot; workers share the iterator
        touched: set[TargetKey] = set()  # their state moved; `results` follows at the round's end

        async def worker() -> None:
            for key, target in pending:
                ok = await self._probe(session=session, address=key[2], target=target)
                self._record(key=key, target=target, ok=ok, touched=touched)

        workers = min(self._concurrency, len(self._targets))
        await asyncio.gather(*(worker() for _ in range(workers)))
        self._report(self._settle(touched))

    def _settle(self, touched: Iterable[TargetKey]) -> dict[TargetKey, bool | None]:
        """Bring `results` in line with the states of `touched` targets; what changed."""
        changed: dict[TargetKey, bool | None] = {}
        for key in touched:
            state = self._states.get(key)
            now = None if state is None or state.health is Health.UNKNOWN else state.health is Health.READY
            if self._results.get(key) != now:
                if now is None:
                    del self._results[key]
                else:
                    self._results[key] = now
                changed[key] = now
        return changed

    def _record(self, *, key: TargetKey, target: Target, ok: bool, touched: set[TargetKey]) -> None:
        if self._targets.get(key) != target:
            return  # replaced while we probed
        self.counters.probes += 1
        self.counters.failures += not ok
        old = self._states.get(key, ProbeState())
        self._states[key] = new = transition(state=old, ok=ok, thresholds=self._thresholds)
        if new.health is old.health:
            return
        self.counters.transitions += 1
        touched.add(key)

    def _report(self, changed: Mapping[TargetKey, bool | None]) -> None:
        if changed and self._on_change is not None:
            try:
                self._on_change(changed)
            except Exception:
                log.exception("on_change failed for backend probes")

    async def _probe(self, *, session: aiohttp.ClientSession, address: str, target: Target) -> bool:
        kind, port, path = target
        try:
            async with asyncio.timeout(self._timeout):
                if kind == "tcp":
                    _, writer = await asyncio.open_connection(address, port)
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
                    return True
                if kind == "http":
                    async with session.get(http_url(address=address, port=port, path=path),
                                           allow_redirects=False) as response:
                        return 200 <= response.status < 400
                return False
        except (TimeoutError, OSError, aiohttp.ClientError, ValueError):
            return False


def http_url(*, address: str, port: int, path: str) -> str:
    """`http://10.0.0.1:80/path`, `http://[fd00::1]:80/path`."""
    try:
        host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        host = address
    return f"http://{host}:{port}/{path.lstrip('/')}"
