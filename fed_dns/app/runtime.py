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
import sys
from collections.abc import Callable

SWITCH_INTERVAL = 0.0005  # seconds a thread may hold the GIL while another waits
BIG_CHANGE = 1_000  # Services (or keys) in one run past which its new objects are frozen


def tune_for_dns() -> None:
    """Call once at the start of a process that serves DNS."""
    sys.setswitchinterval(SWITCH_INTERVAL)


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
