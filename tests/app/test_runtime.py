"""The GC policy of DNS-serving processes (app.runtime): timed collections, survivors of a
full collection frozen, the table's deltas frozen every BIG_CHANGE keys (big ones applied
with the collector off), a thaw every period that frees cycles frozen while alive, and freed
heap pages given back to the OS after a load."""

from __future__ import annotations

import gc
import json
import os
import platform
import subprocess
import sys
import weakref

import pytest

from fed_dns.app import runtime
from tests.support import REPO


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Node:
    def __init__(self) -> None:
        self.other = self  # a reference cycle: only the cyclic GC frees it


@pytest.fixture
def policy():
    """A GcRuntime of the test's own, installed for the test only."""
    clock = Clock()
    gcr = runtime.GcRuntime(freeze=True, thaw_period=60.0, clock=clock)
    gcr.clock = clock
    gc.unfreeze()
    gc.collect()
    gc.callbacks.append(gcr.callback)
    try:
        yield gcr
    finally:
        gc.callbacks.remove(gcr.callback)
        gc.unfreeze()
        gc.collect()


def counts(gcr: runtime.GcRuntime) -> list[int]:
    return [sum(gcr.snapshot()[(str(g),)][0].values()) for g in range(3)]


def test_each_collection_is_timed_in_its_generation():
    gcr = runtime.GcRuntime()
    gc.callbacks.append(gcr.callback)
    try:
        gc.collect(0)
        gc.collect(1)
        gc.collect(2)
    finally:
        gc.callbacks.remove(gcr.callback)
    assert counts(gcr) == [1, 1, 1]
    assert gc.get_freeze_count() == 0  # timing only: nothing frozen without `freeze`


def test_what_survives_a_full_collection_is_frozen_and_the_next_one_walks_only_newer_objects(policy):
    kept = [Node() for _ in range(20_000)]
    gc.collect()
    frozen = gc.get_freeze_count()
    assert frozen >= len(kept)  # the survivors (the nodes among them) left the collector's sight
    newer = [[i] for i in range(100)]
    gc.collect()
    assert gc.get_freeze_count() >= frozen + len(newer)
    assert counts(policy)[2] == 2
    del kept, newer


def test_garbage_cycles_are_still_freed_by_the_collection_that_sees_them(policy):
    node = Node()
    ref = weakref.ref(node)
    del node  # garbage before any freeze
    gc.collect()
    assert ref() is None


def test_a_cycle_frozen_while_alive_is_freed_by_the_thaw_once_its_period_is_over(policy):
    node = Node()
    ref = weakref.ref(node)
    gc.collect()  # frozen while alive
    del node
    gc.collect()
    assert ref() is not None  # frozen: the price of freezing (bounded by the thaw)
    policy.clock.now = 59.0
    assert not policy.thaw_if_due()
    assert ref() is not None and gc.get_freeze_count() > 0
    policy.clock.now = 60.0
    assert policy.thaw_if_due()  # unfrozen, one full collection over everything
    assert ref() is None
    assert gc.get_freeze_count() > 0  # its survivors frozen again
    assert policy.thaws == 1
    assert not policy.thaw_if_due()  # the next one a period later
    policy.clock.now = 120.0
    assert policy.thaw_if_due()


def test_no_thaw_without_freezing():
    clock = Clock()
    gcr = runtime.GcRuntime(freeze=False, thaw_period=1.0, clock=clock)
    clock.now = 10.0
    assert not gcr.thaw_if_due()


def test_small_deltas_are_frozen_every_big_change_keys():
    """Churn: deltas of a few keys; what replaced frozen records is frozen every BIG_CHANGE
    keys, never left to pile up in the young generations."""
    gc.unfreeze()  # whatever an earlier test left frozen
    gc.collect()
    freezer = runtime.Freezer()
    step = runtime.BIG_CHANGE // 4
    try:
        made = []
        for _ in range(3):
            made.append([[i] for i in range(100)])
            freezer.changed(step)
        assert gc.get_freeze_count() == 0
        freezer.changed(step)
        assert gc.get_freeze_count() >= 300
        assert freezer.unfrozen == 0
    finally:
        gc.unfreeze()
        gc.collect()


@pytest.mark.parametrize(("count", "enabled", "paused", "frozen"), [
    (runtime.BIG_CHANGE, True, True, True),  # a big delta: no collection during it, frozen after
    (runtime.BIG_CHANGE - 1, True, False, False),  # a small one: the collector as it was
    (runtime.BIG_CHANGE, False, True, True),  # the collector already off stays off
])
def test_a_big_delta_is_applied_with_the_collector_off_and_frozen_after(count, enabled, paused, frozen):
    gc.unfreeze()  # whatever an earlier test left frozen
    gc.collect()
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    freezer = runtime.Freezer()
    try:
        with freezer.applying(count):
            during = gc.isenabled()
            made = [[i] for i in range(100)]
        assert during is (enabled and not paused)
        assert gc.isenabled() is enabled
        assert (gc.get_freeze_count() >= len(made)) is frozen
    finally:
        (gc.enable if was else gc.disable)()
        gc.unfreeze()
        gc.collect()


def test_the_collector_comes_back_when_the_delta_fails():
    freezer = runtime.Freezer()
    with pytest.raises(ValueError):
        with freezer.applying(runtime.BIG_CHANGE):
            assert not gc.isenabled()
            raise ValueError("a bad delta")
    assert gc.isenabled()
    gc.unfreeze()


_NICES = r"""
import os, sys, threading
from fed_dns.app import runtime
def nices():
    return sorted(os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir("/proc/self/task"))
stop = threading.Event()
before = threading.Thread(target=stop.wait); before.start()
changed = runtime.lower_priority(by=int(sys.argv[1]))
after = threading.Thread(target=stop.wait); after.start()  # started by a thread made nicer
print(changed, *nices())
stop.set()
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="Linux: nice per thread")
@pytest.mark.parametrize("by", [0, 3, 50])
def test_lower_priority_makes_every_thread_nicer_and_later_ones_inherit_it(by):
    """In a process of its own (this one must keep its priority)."""
    base = os.getpriority(os.PRIO_PROCESS, 0)
    out = subprocess.run([sys.executable, "-c", _NICES, str(by)], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout.split()
    expected = min(base + by, 19)
    assert [int(x) for x in out] == [2 if by else 0, expected, expected, expected]


def test_a_collection_that_begins_near_the_recursion_limit_drops_its_sample_quietly():
    import sys

    gcr = runtime.GcRuntime()

    def deep() -> None:  # call the callback with (almost) no stack left, as the collector may
        try:
            deep()
        except RecursionError:
            gcr.callback("start", {"generation": 0})
            gcr.callback("stop", {"generation": 0, "collected": 0})

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        deep()
    finally:
        sys.setrecursionlimit(limit)
    assert gcr.dropped >= 1  # nothing raised out of the callback
    gcr.callback("start", {"generation": 0})
    gcr.callback("stop", {"generation": 0, "collected": 0})
    counts, _ = gcr.snapshot()[("0",)]
    assert sum(counts.values()) >= 1  # with stack to spare it observes again


_FREED_IN_THE_MIDDLE = """
import json, sys
from fed_dns.app import runtime

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])

# 200 MB in 4 KB blocks (malloc's, not pymalloc's or mmap's), all freed but the last one,
# which keeps the heap's top where it is: without a trim the pages stay in the process.
blocks = [bytes(4000) + bytes([i % 251]) for i in range(50_000)]
last = blocks[-1]
del blocks
freed = rss_kb()
released = runtime.release_free_memory()
print(json.dumps({"released": released, "freed": freed, "trimmed": rss_kb(), "again": runtime.release_free_memory()}))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_free_heap_pages_go_back_to_the_os():
    """A process's freed heap pages go back to the OS (glibc malloc_trim): its RSS drops."""
    out = subprocess.run([sys.executable, "-c", _FREED_IN_THE_MIDDLE], capture_output=True, text=True,
                         check=True, cwd=REPO, timeout=60)
    result = json.loads(out.stdout)
    assert result["released"] and result["again"]
    assert result["freed"] - result["trimmed"] > 100_000, result  # > 100 MB of the 200 returned


_BIG_BLOCKS_AFTER_A_BIGGER_ONE = """
import json, sys
from fed_dns.app import runtime

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])

pinned = runtime.pin_mmap_threshold() if sys.argv[1] == "pin" else False
big = bytearray(8 << 20)  # an 8 MiB block, freed: glibc would now take 8 MiB as its threshold
del big
base = rss_kb()
blocks, small = [], []
for i in range(200):  # 100 MB in 512 KB blocks, each followed by a small live malloc block
    blocks.append(bytearray(512 * 1024))
    small.append(bytearray(2000))
held = rss_kb()
del blocks
print(json.dumps({"pinned": pinned, "base": base, "held": held, "freed": rss_kb()}))
"""


def _big_blocks(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _BIG_BLOCKS_AFTER_A_BIGGER_ONE, mode], capture_output=True,
                         text=True, check=True, cwd=REPO, timeout=60)
    return json.loads(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_big_blocks_freed_go_back_to_the_os_with_the_threshold_pinned():
    """After an 8 MiB block is freed, 512 KB blocks still get their own mmap when the
    threshold is pinned: freeing them gives their 100 MB back at once, whatever small blocks
    live between them."""
    result = _big_blocks("pin")
    assert result["pinned"], result
    assert result["held"] - result["base"] > 90_000, result
    assert result["held"] - result["freed"] > 90_000, result
    # glibc's default, for contrast: the blocks came from the heap and their pages stay
    unpinned = _big_blocks("none")
    assert unpinned["held"] - unpinned["freed"] < 20_000, unpinned
