"""Interpreter settings for processes that answer DNS while they do other work.

The UDP loop runs in a thread of its own; the event loop (reconcile, table updates, etcd,
watches) holds the GIL in between. Two interpreter defaults then decide DNS latency, measured
with bench/table_update.py (a 35,000-key failover delta applied to a 300,000-key table while a
client queries): with the default 5 ms switch interval p99 was 10-14 ms; with 0.5 ms it was
3.2-3.5 ms. And the cyclic garbage collector's full collections walk every tracked object
(the zone's records and their compiled answers: hundreds of thousands) and found nothing to
collect (the zone data holds no cycles) while holding the GIL for 250-680 ms each.

So: a short switch interval, and the long-lived zone data moved out of the collector's sight
with `gc.freeze()` after a big change (refcounting still frees it when it is replaced; only
cycles among frozen objects would never be collected, and the zone has none).
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import Callable

SWITCH_INTERVAL = 0.0005  # seconds a thread may hold the GIL while another waits
BIG_CHANGE = 1_000  # Services (or keys) in one run past which its new objects are frozen


GC_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
THAW_PERIOD = 3600.0  # seconds between two full collections over everything (see GcRuntime)

log = logging.getLogger("fed_dns.runtime")


class GcRuntime:
    """The cyclic GC of a process that holds a zone: each collection timed per generation
    (`snapshot()`, the metric `gc_pause_seconds`), and, with `freeze`, what survived a full
    collection frozen.

    Why freeze: under churn the records that replace frozen ones are new objects, and every
    full collection walked all of them again. At 10 x 5,000 the scale bench measured 3-4 full
    collections a minute of 0.43-0.53 s each, in the daemon and in the DNS worker: the
    answer p99 under churn (385 ms) was those stalls. Frozen after each full collection, the
    next one walks only what came since (tens of ms).

    The price: an object frozen while alive and later freed as part of a reference cycle is
    not collected (refcounting still frees everything else). A full collection has just freed
    the cycles that were garbage then, so only cycles alive at that moment are at risk; and
    every `thaw_period` the freeze is undone, so the next full collection walks (and frees)
    everything: one long pause an hour, logged with what it freed. Install one per process
    (`gc_runtime()`); the callback runs inside the collector, after it has finished."""

    def __init__(self, *, freeze: bool = False, thaw_period: float = THAW_PERIOD,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from fed_dns.app.metrics import LocalHistogram

        self.histograms = tuple(LocalHistogram(GC_BUCKETS) for _ in range(3))
        self.freeze = freeze
        self.thaw_period = thaw_period
        self._clock = clock
        self._thawed_at = clock()
        self._thawing = False  # unfrozen: the next full collection walks everything
        self._started = 0.0

    def callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        generation = min(info.get("generation", 2), 2)
        self.histograms[generation].observe(took)
        if generation != 2 or not self.freeze:
            return
        if self._thawing:
            self._thawing = False
            log.info("gc: a full collection over every object freed %d in %.3fs",
                     info.get("collected", 0), took)
        elif self._clock() - self._thawed_at >= self.thaw_period:
            gc.unfreeze()
            self._thawed_at, self._thawing = self._clock(), True
            return
        gc.freeze()

    def snapshot(self) -> dict[tuple[str], tuple[dict[float, int], float]]:
        """The metric source: generation -> (counts, sum)."""
        return {(str(g),): h.snapshot() for g, h in enumerate(self.histograms)}


_RUNTIME: GcRuntime | None = None


def gc_runtime(*, freeze: bool = False) -> GcRuntime:
    """This process's GcRuntime, installed on first use (`freeze` turned on by any call)."""
    global _RUNTIME
    if _RUNTIME is None:
        _RUNTIME = GcRuntime(freeze=freeze)
        gc.callbacks.append(_RUNTIME.callback)
    _RUNTIME.freeze = _RUNTIME.freeze or freeze
    return _RUNTIME


def tune_for_dns() -> None:
    """Call once at the start of a process that serves DNS: a short switch interval, and
    the GC timed and freezing what survives full collections (`GcRuntime`)."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc_runtime(freeze=True)


def after_big_change() -> None:
    """Call after a load or a big update of long-lived zone data: moves every object alive
    now out of the collector's sight (O(1)). Only after big changes, which are rare, so the
    cycles that happen to be alive then and die later (never collected) stay few."""
    gc.freeze()


class Freezer:
    """When to call `after_big_change` for a table that changes in deltas: after a big delta,
    and while the zone is still loading every BIG_CHANGE keys (a zone loaded in 20 ms slices
    is never one big change, and full collections walked the growing zone again and again:
    seconds of start, long stalls)."""

    def __init__(self) -> None:
        self.unfrozen = 0  # keys changed since the last freeze

    def changed(self, count: int, *, loading: Callable[[], bool]) -> None:
        self.unfrozen += count
        if count >= BIG_CHANGE or (self.unfrozen >= BIG_CHANGE and loading()):
            after_big_change()
            self.unfrozen = 0
