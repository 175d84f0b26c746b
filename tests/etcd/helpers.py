"""Small async helpers for the etcd tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any


async def until(predicate: Callable[[], Any], *, timeout: float = 5.0, what: str = "condition"):
    """Poll predicate() on the event loop until truthy; its value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(coro: Coroutine) -> AsyncIterator[asyncio.Task]:
    """Run a coroutine (a `run()` loop) as a task for the block; cancel and await it after."""
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Changes:
    """Records every on_change call with the time it came."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, Mapping[str, bytes]]] = []

    def __call__(self, snapshot: Mapping[str, bytes]) -> None:
        self.calls.append((time.monotonic(), snapshot))

    @property
    def last(self) -> Mapping[str, bytes] | None:
        return self.calls[-1][1] if self.calls else None
