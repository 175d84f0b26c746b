"""The level-triggered, incremental reconcile loop (as external-dns's controller, but cost
follows the change).

Events (a member's changed Services, a health change, probe results, store events) go into a
`records.incremental.ZoneState` and mark the loop dirty. A run steps through the dirty
Services in chunks of `chunk` Services, swapping each chunk's table delta into DNS at once and
yielding to the event loop between chunks, so leases, probes and watches keep their deadlines
whatever the size of the change. The etcd writes of a run are handed to a separate writer
task: DNS never waits for etcd, and a slow or failing etcd never delays the next run.

Our own writes are applied to the state's view of the store as each plan is made
("optimistic": the state takes them in its step, `own=ASSUME`), so the next run plans against
them and never writes a key twice; when a write fails (etcd down, leadership lost) the keys it
did not write are read back from the store and re-planned.
A periodic full pass (`resync_period`) re-checks every Service, in the same chunks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from fed_dns.app.metrics import LAG_BUCKETS, LocalHistogram
from fed_dns.model import Changes
from fed_dns.records.incremental import ASSUME, WRITTEN

log = logging.getLogger("fed_dns.reconcile")

Publish = Callable[[Mapping[str, bytes], Iterable[str]], None]
Write = Callable[[Changes], Awaitable[None]]

# Between two steps the loop waits this long for I/O: a bare sleep(0) runs the ready callbacks
# once, which is not enough for a gRPC call (the lease keepalive) to complete while steps follow
# one another; the test that holds each step for 0.1 s loses its lease with sleep(0) and keeps
# it with this.
YIELD = 0.001
SLICE = 0.02  # seconds of stepping before the loop is given back (one DNS swap per slice)
# A run's first second is DNS's: its writes wait until it ends or is that old (see _dns_first).
WRITE_HOLD = 1.0
LOG_REJECTIONS = 20  # new rejections logged per run, one line each; the rest are counted


def apply_changes(*, current: Mapping[str, bytes], changes: Changes) -> dict[str, bytes]:
    """What the store holds once `changes` are written (pure; tests and tools)."""
    entries = dict(current)
    for key in changes.deletes:
        entries.pop(key, None)
    entries.update(changes.puts)
    return entries


@dataclass
class ReconcileStats:
    runs: int = 0  # runs that stepped at least one Service
    drained: int = 0  # runs that ended with nothing dirty (everything marked before is in the table)
    steps: int = 0  # chunks stepped
    services_stepped: int = 0
    failures: int = 0  # failed runs and failed writes
    writes: int = 0  # successful write calls
    written_ops: int = 0
    last_run_seconds: float = 0.0
    last_run_duration: float = 0.0
    longest_step: float = 0.0  # seconds the longest slice held the event loop
    last_error: str = ""
    failovers: int = 0
    resyncs: int = 0
    published_records: int = 0
    published_services: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # reason code -> objects now rejected
    lag: LocalHistogram = field(default_factory=lambda: LocalHistogram(LAG_BUCKETS))  # event -> table swap


class _Pending:
    """Writes not yet handed to etcd: the latest value (or deletion) per key."""

    def __init__(self) -> None:
        self.items: dict[str, bytes | None] = {}

    def merge(self, changes: Changes) -> None:
        for key in changes.deletes:
            self.items[key] = None
        self.items.update(changes.puts)

    def take(self) -> Changes:
        items, self.items = self.items, {}
        return Changes(puts={k: v for k, v in items.items() if v is not None},
                       deletes=tuple(k for k, v in items.items() if v is None))

    def __bool__(self) -> bool:
        return bool(self.items)


class Reconciler:
    """Owns the dirty flag, the run loop and the writer task; what it decides with is pure
    (`records.incremental`)."""

    def __init__(
        self,
        *,
        state,
        publish: Publish,
        write: Write | None,
        may_write: Callable[[], bool] = lambda: True,
        chunk: int = 20,
        slice_seconds: float = SLICE,
        debounce: float = 0.005,
        retry_max: float = 5.0,
        resync_period: float = 300.0,
        write_hold: float = WRITE_HOLD,
    ) -> None:
        """`state`: a records.incremental.ZoneState. `publish(puts, deletes)`: the table
        delta (DNS). `write(changes)`: etcd (None: nothing is written; the state's store is
        then the table itself). A failed write is re-planned from what the store last
        reported of its keys (the state's `stored`)."""
        self.state = state
        self._publish = publish
        self._write = write
        self._may_write = may_write
        self._chunk = chunk
        self._slice = slice_seconds
        self._debounce = debounce
        self._retry_max = retry_max
        self._resync_period = resync_period
        self._write_hold = write_hold
        self._run_started: float | None = None  # the monotonic start of the run in progress
        # (None between runs)
        self._dirty = asyncio.Event()
        self._dirty_since: float | None = None
        self._pending = _Pending()
        self._write_wanted = asyncio.Event()
        self._write_delay = 0.0
        self.stats = ReconcileStats()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writes_idle = asyncio.Event()
        self._writes_idle.set()
        self._stopping = False
        self._logged_rejections: frozenset = frozenset()

    @property
    def entries(self) -> Mapping[str, bytes]:
        """What the DNS table holds (the store with the pending plan applied)."""
        return self.state.entries

    def mark_dirty(self) -> None:
        if self._dirty_since is None:
            self._dirty_since = time.monotonic()
        self._dirty.set()

    def resync(self) -> None:
        """Re-check every Service (in slices): the periodic consistency pass."""
        self.state.mark_all()
        self.stats.resyncs += 1
        self.mark_dirty()

    def became_leader(self) -> None:
        """Write what this replica planned while it could not write: the Services whose plan
        is pending (O(those), not a full pass: a leadership that flaps under load must not
        turn every regain into a pass over the whole zone)."""
        if self.state.mark_unwritten():
            self.mark_dirty()

    async def run(self) -> None:
        """The step loop and the writer, until cancelled."""
        writer = asyncio.create_task(self._write_loop(), name="reconcile-writer")
        try:
            await self._step_loop()
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _step_loop(self) -> None:
        delay = 0.0
        next_resync = time.monotonic() + self._resync_period
        while True:
            timeout = max(0.0, next_resync - time.monotonic())
            if delay:
                timeout = min(timeout, delay)
            try:
                async with asyncio.timeout(timeout):  # not wait_for (3.11)
                    await self._dirty.wait()
            except TimeoutError:
                if time.monotonic() >= next_resync:
                    next_resync = time.monotonic() + self._resync_period
                    self.resync()
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

    async def stop(self, *, grace: float) -> None:
        """Start no new run; let the run and the writes in flight finish within grace."""
        self._stopping = True
        self._dirty.set()
        try:
            async with asyncio.timeout(grace):  # not wait_for (3.11)
                await self._idle.wait()
            async with asyncio.timeout(grace):  # not wait_for (3.11)
                await self._writes_idle.wait()
        except TimeoutError:
            log.warning("reconcile still busy after %.1fs; cancelling it", grace)

    async def run_once(self, *, since: float | None = None) -> Changes:
        """Step every dirty Service, in slices of about `slice_seconds` of work (steps of
        `chunk` Services): each slice's table delta goes to DNS at once and its writes to the
        writer, then the loop is free for I/O. Returns every change this run planned
        (written by the writer, if this replica may write)."""
        self._idle.clear()
        started = self._run_started = time.monotonic()
        planned = _Pending()
        failovers: dict[str, list[str]] = {}
        try:
            stepped = 0
            while self.state.has_work:
                t0 = time.monotonic()
                puts: dict[str, bytes] = {}
                deletes: set[str] = set()
                writes = _Pending()
                own = self._owner()
                while True:  # one slice: steps until the time budget is spent
                    step = self.state.step(limit=self._chunk, own=own)
                    for key in step.table_deletes:
                        puts.pop(key, None)
                        deletes.add(key)
                    for key, value in step.table_puts.items():
                        deletes.discard(key)
                        puts[key] = value
                    self.stats.steps += 1
                    self.stats.services_stepped += len(step.services)
                    stepped += len(step.services)
                    self._count_failovers(step, failovers)
                    if step.changes:
                        writes.merge(step.changes)
                    if not self.state.has_work or time.monotonic() - t0 >= self._slice:
                        break
                if puts or deletes:
                    self._publish(puts, deletes)
                changes = writes.take()
                if changes:
                    planned.merge(changes)
                    if own == ASSUME:
                        self._pending.merge(changes)
                        self._write_wanted.set()
                self.stats.longest_step = max(self.stats.longest_step, time.monotonic() - t0)
                if self.state.has_work:
                    await asyncio.sleep(YIELD)  # leases, probes, watches and DNS go first
            self.stats.drained += 1
            self._log_failovers(failovers)
            # Drained: everything marked so far is in the table. An empty delta tells the owner
            # so (it goes live at a drained run, not in the middle of the first pass).
            self._publish({}, ())
            if stepped:
                self._count_published()
                now = time.monotonic()
                self.stats.runs += 1
                self.stats.last_run_seconds = now
                self.stats.last_run_duration = now - started
                if since is not None:
                    self.stats.lag.observe(now - since)
            return planned.take()
        finally:
            self._run_started = None
            self._idle.set()

    def _count_published(self) -> None:
        state = self.state
        self.stats.published_records = state.records
        self.stats.published_services = state.services
        rejected: dict[str, int] = {}
        for rejection in state.rejected:  # by kind: a fixed set of codes (the text is logged)
            rejected[rejection.kind] = rejected.get(rejection.kind, 0) + 1
        self.stats.rejected = rejected
        now = frozenset(state.rejected)
        new = sorted(now - self._logged_rejections)
        for rejection in new[:LOG_REJECTIONS]:
            log.warning("not published: cluster %s: %s %s: %s (%s)", rejection.cluster,
                        rejection.kind, rejection.name, rejection.reason, rejection.kind)
        if len(new) > LOG_REJECTIONS:
            log.warning("not published: %d more objects (see /status)", len(new) - LOG_REJECTIONS)
        self._logged_rejections = now

    def _count_failovers(self, step, into: dict[str, list[str]]) -> None:
        for cluster, target in getattr(step, "failovers", ()):
            self.stats.failovers += 1
            into.setdefault(cluster, []).append(target)

    @staticmethod
    def _log_failovers(by_cluster: dict[str, list[str]]) -> None:
        """One line per cluster per run (a member's failover is thousands of Services)."""
        for cluster, targets in sorted(by_cluster.items()):
            sample = ", ".join(sorted(targets)[:3])
            more = f" and {len(targets) - 3} more" if len(targets) > 3 else ""
            log.info("failover: %s withdrawn for %d Service(s): %s%s", cluster, len(targets),
                     sample, more)

    # -- the writer ----------------------------------------------------------------------

    def _owner(self) -> str | None:
        """What becomes of the plans the next steps make (taken by the state as it plans):
        written by this replica's writer (planned against as assumed until etcd echoes
        them), the store itself when there is no etcd (the table is the store), or nothing
        (a follower plans for its table but never writes)."""
        if self._write is None:
            return WRITTEN
        return ASSUME if self._may_write() else None

    async def _write_loop(self) -> None:
        while True:
            await self._write_wanted.wait()
            if self._write_delay:
                await asyncio.sleep(self._write_delay)
            await self._dns_first()
            self._write_wanted.clear()
            await self.flush()

    async def _dns_first(self) -> None:
        """Wait for the run in progress to end, but no longer than until it is `write_hold`
        s old. Its table deltas then reach DNS without the writes (and etcd's echo of them)
        taking the CPU between its slices: a member's failover at 10 x 5,000 is a run of
        about half a second whose DNS withdrawal is due a second after detection, and its
        etcd withdrawal five. A longer run (a start's first pass) writes as it goes."""
        started = self._run_started
        if started is None:
            return
        left = started + self._write_hold - time.monotonic()
        if left <= 0:
            return
        try:
            async with asyncio.timeout(left):  # not wait_for (3.11)
                await self._idle.wait()
        except TimeoutError:
            pass

    async def flush(self) -> bool:
        """Write what is pending now; False when that failed (it is then re-planned)."""
        changes = self._pending.take()
        if not changes:
            return True
        self._writes_idle.clear()
        try:
            if not self._may_write():
                self._failed(changes, "not the leader any more")
                return False
            try:
                await self._write(changes)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - re-planned from what the store holds
                unwritten = getattr(exc, "unwritten", None) or changes
                self._failed(unwritten, f"{type(exc).__name__}: {exc}")
                self._write_delay = min(self._retry_max, max(0.2, self._write_delay * 2))
                return False
            self._write_delay = 0.0
            self.stats.writes += 1
            self.stats.written_ops += len(changes.puts) + len(changes.deletes)
            return True
        finally:
            if not self._pending:
                self._writes_idle.set()

    def _failed(self, changes: Changes, reason: str) -> None:
        """Forget the optimistic values of `changes`: read the store's, re-plan those keys."""
        self.stats.failures += 1
        self.stats.last_error = reason
        log.warning("etcd write of %d operations failed, re-planning: %s",
                    len(changes.puts) + len(changes.deletes), reason)
        keys = [*changes.puts, *changes.deletes]
        stored = self.state.stored
        puts: dict[str, bytes] = {}
        deletes: list[str] = []
        for key in keys:
            value = stored(key)
            if value is None:
                deletes.append(key)
            else:
                puts[key] = value
        self.state.update_current(puts=puts, deletes=deletes)
        self.mark_dirty()
