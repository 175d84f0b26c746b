"""Retry helpers shared by every etcd loop: capped exponential backoff with jitter, and a
guard against swallowed cancellations."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Delay before retry number `attempt` (0-based): min(maximum, initial * factor**attempt),
    scaled by a random factor in [1 - jitter, 1] so that replicas do not retry in step."""

    initial: float = 0.1
    maximum: float = 3.0
    factor: float = 2.0
    jitter: float = 0.5

    def delay(self, attempt: int) -> float:
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return base * (1.0 - self.jitter * random.random())


def check_cancelled() -> None:
    """Raise CancelledError if the current task was asked to stop.

    On Python 3.11 `asyncio.wait_for` (ours and aetcd's) swallows a cancellation that comes
    just as the awaited call finishes; a retry loop would then go on forever. Loops call this
    at the top of every turn, so a cancelled task always ends.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
