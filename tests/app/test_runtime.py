"""The GC policy of DNS-serving processes (app.runtime.GcRuntime): timed collections,
survivors of a full collection frozen, and a thaw every period that lets a full collection
free cycles frozen while they were alive."""

from __future__ import annotations

import gc
import weakref

import pytest

from fed_dns.app import runtime


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


def test_a_cycle_frozen_while_alive_is_freed_after_the_thaw_period(policy):
    node = Node()
    ref = weakref.ref(node)
    gc.collect()  # frozen while alive
    del node
    gc.collect()
    assert ref() is not None  # frozen: the price of freezing (bounded by the thaw)
    policy.clock.now = 59.0
    gc.collect()
    assert ref() is not None and gc.get_freeze_count() > 0
    policy.clock.now = 60.0
    gc.collect()  # the thaw: unfrozen, this collection's survivors stay in sight
    assert gc.get_freeze_count() == 0
    gc.collect()  # the next full collection walks everything, frees the cycle, freezes again
    assert ref() is None
    assert gc.get_freeze_count() > 0
