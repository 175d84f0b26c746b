"""The level-triggered reconcile loop (as external-dns's controller).

Events only mark the loop dirty; a run recomputes the desired zone from the current views,
health and probe results, swaps the DNS table and writes the etcd diff. Runs are coalesced:
a burst of events causes one run, and a run that fails is retried with backoff while DNS
keeps answering from the last good table.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from fed_dns.app.metrics import LAG_BUCKETS, LocalHistogram
from fed_dns.model import Changes, ClusterView, DesiredZone, Health, ServiceKey, ZoneSettings
from fed_dns.records import plan, render

log = logging.getLogger("fed_dns.reconcile")

ProbeResults = Mapping[tuple[str, ServiceKey, str], bool]


def apply_changes(*, current: Mapping[str, bytes], changes: Changes) -> dict[str, bytes]:
    """What the store holds once `changes` are written: the table DNS should answer from."""
    entries = dict(current)
    for key in changes.deletes:
        entries.pop(key, None)
    entries.update(changes.puts)
    return entries


@dataclass
class ReconcileStats:
    runs: int = 0
    failures: int = 0
    writes: int = 0
    last_run_seconds: float = 0.0
    last_error: str = ""
    published_records: int = 0
    published_services: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    failovers: int = 0
    lag: LocalHistogram = field(default_factory=lambda: LocalHistogram(LAG_BUCKETS))  # event -> table swap


@dataclass(frozen=True, slots=True, kw_only=True)
class Inputs:
    """A consistent snapshot of everything a run decides from."""

    views: Mapping[str, ClusterView]
    health: Mapping[str, Health]
    probes: ProbeResults
    current: Mapping[str, bytes]


class Reconciler:
    """Owns the dirty flag and the run loop; everything it decides with is pure (records.*)."""

    def __init__(
        self,
        *,
        settings: ZoneSettings,
        inputs: Callable[[], Inputs],
        publish: Callable[[Mapping[str, bytes]], None],
        write: Callable[[Changes], Awaitable[None]] | None,
        may_write: Callable[[], bool] = lambda: True,
        debounce: float = 0.005,
        retry_max: float = 5.0,
    ) -> None:
        self._settings = settings
        self._inputs = inputs
        self._publish = publish
        self._write = write
        self._may_write = may_write
        self._debounce = debounce
        self._retry_max = retry_max
        self._dirty = asyncio.Event()
        self._dirty_since: float | None = None
        self.stats = ReconcileStats()
        self.desired: DesiredZone | None = None
        self.entries: Mapping[str, bytes] = {}
        self._unhealthy: set[tuple[str, str]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False

    def mark_dirty(self) -> None:
        if self._dirty_since is None:
            self._dirty_since = time.monotonic()
        self._dirty.set()

    async def run(self) -> None:
        delay = 0.0
        while True:
            if delay:
                try:
                    await asyncio.wait_for(self._dirty.wait(), timeout=delay)
                except TimeoutError:
                    pass
            else:
                await self._dirty.wait()
            await asyncio.sleep(self._debounce)  # coalesce a burst into one run
            if self._stopping:
                return
            self._dirty.clear()
            since, self._dirty_since = self._dirty_since, None
            try:
                await self.run_once(since=since)
                delay = 0.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must survive; DNS keeps the last table
                self.stats.failures += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                delay = min(self._retry_max, max(0.2, delay * 2))
                log.warning("reconcile failed, retrying in %.1fs: %s", delay, self.stats.last_error)
                self._dirty_since = self._dirty_since or since
                self._dirty.set()
                continue

    async def stop(self, *, grace: float) -> None:
        """Start no new run; let the one in flight (an etcd transaction) finish within grace."""
        self._stopping = True
        self._dirty.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=grace)
        except TimeoutError:
            log.warning("reconcile run still in flight after %.1fs; cancelling it", grace)

    async def run_once(self, *, since: float | None = None) -> Changes:
        self._idle.clear()
        try:
            return await self._run_once(since=since)
        finally:
            self._idle.set()

    async def _run_once(self, *, since: float | None) -> Changes:
        inputs = self._inputs()
        rendered = render.render(views=inputs.views, health=inputs.health,
                                 settings=self._settings, probes=inputs.probes)
        changes = plan.calculate(current=inputs.current, desired=rendered.zone)
        entries = apply_changes(current=inputs.current, changes=changes)
        self._publish(entries)
        self.desired, self.entries = rendered.zone, entries
        self._count(rendered, inputs, since)
        if changes and self._write is not None and self._may_write():
            await self._write(changes)
            self.stats.writes += 1
        return changes

    def _count(self, rendered: render.Rendered, inputs: Inputs, since: float | None) -> None:
        stats = self.stats
        stats.runs += 1
        stats.last_run_seconds = time.monotonic()
        if since is not None:
            stats.lag.observe(stats.last_run_seconds - since)
        stats.published_records = len(rendered.zone.records)
        rejected: dict[str, int] = {}
        for rejection in rendered.rejected:
            rejected[rejection.reason] = rejected.get(rejection.reason, 0) + 1
        stats.rejected = rejected
        fallbacks = {(record.cluster, record.host) for record in rendered.zone.records.values()
                     if record.port == -1 and record.cluster}
        stats.published_services = sum(len(v.services) for v in inputs.views.values())
        new = fallbacks - self._unhealthy
        stats.failovers += len(new)
        for cluster, target in sorted(new):
            log.info("failover: %s withdrawn for %s", cluster, target)
        self._unhealthy = fallbacks
