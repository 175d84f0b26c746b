"""Hostile members on loopback: oversized answers are an error, not memory; hangs show in time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import pytest

from fed_dns.watch.parse import WatchOptions
from tests.watch.conftest import until
from tests.watch.hostile import HostileMember, hang, headers

MB = 1000 * 1000
QUICK = WatchOptions(inactivity_timeout=5.0, backoff_initial=0.01, backoff_max=0.05)


@pytest.fixture
async def hostile():
    """hostile(list_=..., watch=...) -> a started HostileMember, closed at teardown."""
    members = []

    async def start(**behaviours) -> HostileMember:
        member = HostileMember(**behaviours)
        await member.start()
        members.append(member)
        return member

    yield start
    for member in members:
        await member.close()


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextlib.asynccontextmanager
async def peak_rss():
    """Samples this process's RSS every 20 ms; yields a list whose [0] is the peak growth."""
    base = rss()
    growth = [0]

    async def sample():
        while True:
            growth[0] = max(growth[0], rss() - base)
            await asyncio.sleep(0.02)

    task = asyncio.create_task(sample())
    try:
        yield growth
    finally:
        task.cancel()
        growth[0] = max(growth[0], rss() - base)


def endless(member_ref: list[HostileMember], *, head: bytes, fill: bytes, total: int):
    """Headers, `head`, then `fill` over and over until the member sent `total` bytes in all."""
    async def behaviour(writer):
        member = member_ref[0]
        await member.write(writer, headers(length=None) + head)
        while member.sent < total:
            await member.write(writer, fill)
        await hang(writer)
    return behaviour


async def test_an_endless_watch_line_is_an_error_and_memory_stays_flat(hostile, watch):
    ref: list[HostileMember] = []
    member = await hostile(watch=endless(ref, head=b'{"type": "ADDED", "object": {"x": "',
                                         fill=b"x" * 65536, total=100 * MB))
    ref.append(member)
    async with peak_rss() as growth:
        w = await watch(member, options=QUICK)
        await until(lambda: member.sent >= 100 * MB, timeout=60, what="100 MB sent by the member")
    assert w.watcher.stats.last_error.endswith(": watch: an event is longer than 4 MiB")
    assert any("longer than 4 MiB" in m for _, m in w.errors)
    assert sum(w.watcher.stats.restarts.values()) >= 5  # (socket buffers hold some of what was sent)
    assert growth[0] < 50 * MB, f"RSS grew {growth[0] / MB:.0f} MB while the member sent 100 MB"


async def test_a_list_body_beyond_the_bound_is_an_error_and_memory_stays_bounded(hostile, watch):
    ref: list[HostileMember] = []
    member = await hostile(list_=endless(ref, head=b'{"items": [', fill=b"{}, " * 16384, total=100 * MB))
    ref.append(member)
    async with peak_rss() as growth:
        w = await watch(member, options=QUICK)
        await until(lambda: member.sent >= 100 * MB, timeout=60, what="100 MB sent by the member")
    assert "list: the answer is longer than 16 MiB" in w.watcher.stats.last_error
    assert not w.view.synced
    # the page is held whole up to the bound (16 MiB and a bytearray's slack), never more
    assert growth[0] < 80 * MB, f"RSS grew {growth[0] / MB:.0f} MB while the member sent 100 MB"


async def _headers_then_hang(writer):
    writer.write(headers(length=1000))
    await hang(writer)


async def _part_of_a_list_then_hang(writer):
    writer.write(headers(length=1000) + b'{"kind": "List", "items": [')
    await hang(writer)


async def _trickled_list(writer):
    writer.write(headers(length=100000) + b'{"kind": "List", "items": [')
    for _ in range(1000):
        writer.write(b" ")
        await asyncio.sleep(0.05)


async def _watch_headers_then_hang(writer):
    writer.write(headers(length=None))
    await hang(writer)


async def _part_of_an_event_then_hang(writer):
    writer.write(headers(length=None) + b'{"type": "ADDED", "obj')
    await hang(writer)


async def _trickled_event(writer):
    writer.write(headers(length=None) + b'{"type": "ADDED", "object": {')
    for _ in range(1000):
        writer.write(b" ")
        await asyncio.sleep(0.05)


LIST_HANG = "list: no whole page within 1s"
WATCH_HANG = "no event or bookmark for 1s"
HANGS = {
    "list-accepts-never-answers": ({"list_": hang}, LIST_HANG),
    "list-headers-then-nothing": ({"list_": _headers_then_hang}, LIST_HANG),
    "list-part-of-body-then-nothing": ({"list_": _part_of_a_list_then_hang}, LIST_HANG),
    "list-body-trickled": ({"list_": _trickled_list}, LIST_HANG),
    "watch-accepts-never-answers": ({"watch": hang}, WATCH_HANG),
    "watch-headers-then-nothing": ({"watch": _watch_headers_then_hang}, WATCH_HANG),
    "watch-part-of-event-then-nothing": ({"watch": _part_of_an_event_then_hang}, WATCH_HANG),
    "watch-event-trickled": ({"watch": _trickled_event}, WATCH_HANG),
}


@pytest.mark.parametrize(("behaviours", "message"), HANGS.values(), ids=HANGS.keys())
async def test_a_hung_member_shows_the_error_within_the_inactivity_timeout(hostile, watch, behaviours, message):
    member = await hostile(**behaviours)
    options = WatchOptions(inactivity_timeout=1.0, backoff_initial=0.05, backoff_max=0.3)
    started = time.monotonic()
    w = await watch(member, options=options)
    await until(lambda: w.errors, timeout=2.0, what="the hang reported")
    took = time.monotonic() - started
    assert 0.9 <= took < 2.0
    assert message in w.watcher.stats.last_error
    assert message in w.errors[0][1] and w.errors[0][0] == member.name
