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

import contextlib
import ctypes
import ctypes.util
import gc
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator

SWITCH_INTERVAL = 0.0005  # seconds a thread may hold the GIL while another waits
BIG_CHANGE = 1_000  # Services (or keys) in one run past which its new objects are frozen


GC_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Seconds between two full collections over everything (see GcRuntime). Measured at 10 x
# 5,000 under 1,000 changes/s, with a 20 s period: each such collection freed 36-56 objects
# in the daemon (0.75-1.3 s) and 0-6 in a DNS worker (1.3-3.1 s on the loaded vCPUs, every
# query waiting). So the daemon thaws hourly, and a process that only answers DNS daily.
THAW_PERIOD = 3600.0
THAW_PERIOD_DNS = 86400.0

log = logging.getLogger("fed_dns.runtime")


class GcRuntime:
    """The cyclic GC of a process that holds a zone: each collection timed per generation
    (`snapshot()`, the metric `gc_pause_seconds`); with `freeze`, what survives a full
    collection is frozen, and `thaw_if_due()` undoes every freeze once per `thaw_period`.

    Why: the zone's records are hundreds of thousands of long-lived objects with no cycles
    among them. Under churn the records that replace frozen ones are new objects, and the
    collector's counts (allocations minus deallocations) stay low while they pile up in the
    young generations, because what they replace is freed from the frozen ones: a young
    collection then walked seconds' worth of survivors (50-90 ms in the DNS worker) and a
    full one everything since the last freeze (0.43-0.53 s, 3-4 a minute at 10 x 5,000).
    Hence `Freezer` (every BIG_CHANGE keys) and the freeze after a full collection here.

    The price: an object frozen while alive and later freed as part of a reference cycle is
    not collected (refcounting frees everything else). So every `thaw_period` (`Freezer`
    asks) the freeze is undone and one full collection walks and frees everything: one long
    pause (0.5-3 s at 10 x 5,000) an hour in the daemon, a day in a DNS worker (see
    THAW_PERIOD), logged with what it freed. Install one per process (`gc_runtime()`); the
    callback runs inside the collector, after it has finished."""

    def __init__(self, *, freeze: bool = False, thaw_period: float = THAW_PERIOD,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from fed_dns.app.metrics import LocalHistogram

        self.histograms = tuple(LocalHistogram(GC_BUCKETS) for _ in range(3))
        self.freeze = freeze
        self.thaw_period = thaw_period
        self.thaws = 0
        self.dropped = 0  # samples lost to a collection that began near the recursion limit
        self._clock = clock
        self._thawed_at = clock()
        self._started = 0.0

    def callback(self, phase: str, info: dict) -> None:
        """Runs inside the collector, at whatever stack depth the collection began: near the
        recursion limit (a deeply nested JSON value being decoded) a call in here raised
        RecursionError into the interpreter's unraisable hook. Such a sample is dropped
        (`dropped`); nothing else depends on it."""
        try:
            self._observe(phase, info)
        except RecursionError:
            self.dropped += 1

    def _observe(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = min(info.get("generation", 2), 2)
        self.histograms[generation].observe(time.perf_counter() - self._started)
        if generation == 2 and self.freeze:
            gc.freeze()

    def thaw_if_due(self) -> bool:
        """Once per `thaw_period` (with `freeze`): unfreeze and collect everything now (the
        callback freezes the survivors again). Returns whether it did."""
        if not self.freeze or self._clock() - self._thawed_at < self.thaw_period:
            return False
        frozen = gc.get_freeze_count()
        started = time.perf_counter()
        gc.unfreeze()
        freed = gc.collect()
        self._thawed_at = self._clock()
        self.thaws += 1
        log.info("gc: a full collection over every object (%d had been frozen) freed %d in %.3fs",
                 frozen, freed, time.perf_counter() - started)
        return True

    def snapshot(self) -> dict[tuple[str], tuple[dict[float, int], float]]:
        """The metric source: generation -> (counts, sum)."""
        return {(str(g),): h.snapshot() for g, h in enumerate(self.histograms)}


_RUNTIME: GcRuntime | None = None


def gc_runtime(*, freeze: bool = False, thaw_period: float | None = None) -> GcRuntime:
    """This process's GcRuntime, installed on first use (`freeze` turned on by any call,
    `thaw_period` set by any call that gives one)."""
    global _RUNTIME
    if _RUNTIME is None:
        _RUNTIME = GcRuntime(freeze=freeze)
        gc.callbacks.append(_RUNTIME.callback)
    _RUNTIME.freeze = _RUNTIME.freeze or freeze
    if thaw_period is not None:
        _RUNTIME.thaw_period = thaw_period
    return _RUNTIME


def tune_for_dns(*, thaw_period: float = THAW_PERIOD_DNS) -> None:
    """Call once at the start of a process that holds a zone table: a short switch
    interval, the GC timed and freezing (`GcRuntime`, thawing every `thaw_period`), and
    glibc's mmap threshold pinned (`pin_mmap_threshold`)."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc_runtime(freeze=True, thaw_period=thaw_period)
    pin_mmap_threshold()


def lower_priority(*, by: int) -> int:
    """Make every thread of this process `by` nicer (capped at 19; never less nice than it
    is): when a CPU is wanted by both, the kernel gives it to this process's threads after
    the others' (the daemon's DNS workers). Threads started later inherit it from the
    thread that starts them. Returns the threads changed. Linux sets nice per thread (every
    task of /proc/self/task); elsewhere the process's one value."""
    if by <= 0:
        return 0
    try:
        tids = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]  # no /proc: the process
    changed = 0
    for tid in tids:
        try:
            nice = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(nice + by, 19))
        except OSError:  # a thread that has ended since the listing
            continue
        changed += 1
    return changed


def after_big_change() -> None:
    """Call after a load or a big update of long-lived zone data: moves every object alive
    now out of the collector's sight (O(1)), after the process's GcRuntime has thawed if
    its period is over."""
    gc_runtime().thaw_if_due()
    gc.freeze()


_LIBC: ctypes.CDLL | None | bool = False  # False: not looked up yet; None: no glibc calls here
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value, kept


def _libc() -> ctypes.CDLL | None:
    """The C library, when it has glibc's malloc_trim and mallopt (else None)."""
    global _LIBC
    if _LIBC is False:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:  # pragma: no cover - no loadable libc
            libc = None
        _LIBC = libc if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    return _LIBC


def pin_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Keep glibc serving every allocation of `size` bytes or more with its own mmap, which
    goes back to the OS when freed. By default glibc raises that threshold to the size of
    any such block freed (up to 32 MiB), after which blocks that size come from the heap,
    whose freed pages stay in the process between live small objects: after a zone load's
    ~8 MiB gRPC pages, the members' list buffers did, and the restarted daemon kept 385-395 MB
    of RSS (366 MB with 2 MiB pages); pinned, 332-337 MB (10 x 5,000). Not done when the
    environment sets MALLOC_MMAP_THRESHOLD_ (the operator's choice). False where there is no
    glibc or it is not done."""
    libc = _libc()
    if libc is None or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, size))


def release_free_memory() -> bool:
    """Give the heap's free pages back to the OS (glibc's malloc_trim(0), every arena):
    call after a burst of short-lived large allocations, such as a zone load (gRPC receives
    each ~8 MiB page and protobuf decodes it on its own threads' arenas; freed, those pages
    stayed in the process: +40-50 MB of RSS at 300,000 records, 128-137 MB after a trim
    against 177-190 MB without). A few ms; False where there is no glibc (nothing done)."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


class Freezer:
    """When to call `after_big_change` for a table that changes in deltas: after every
    BIG_CHANGE keys changed (one big delta, or many small ones: a zone loaded in 20 ms
    slices, or churn, where the records that replace frozen ones piled up unseen by the
    collector's counts; see GcRuntime)."""

    def __init__(self) -> None:
        self.unfrozen = 0  # keys changed since the last freeze

    @contextlib.contextmanager
    def applying(self, count: int) -> Iterator[None]:
        """Around applying a delta of `count` keys to the table (then `changed`). A big one
        runs with the collector off: its new objects (tens of thousands of index nodes and
        records, no cycles among them) are frozen right after, so no collection walks them
        during the update, where each young collection held the GIL for tens of ms while
        DNS queries waited (a failover delta is 35,000 keys at 10 x 5,000)."""
        paused = count >= BIG_CHANGE and gc.isenabled()
        if paused:
            gc.disable()
        try:
            yield
        finally:
            if paused:
                gc.enable()
            self.changed(count)

    def changed(self, count: int) -> None:
        self.unfrozen += count
        if self.unfrozen >= BIG_CHANGE:
            after_big_change()
            self.unfrozen = 0
