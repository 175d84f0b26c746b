"""Capped exponential backoff with jitter, shared by every etcd loop that retries."""

from __future__ import annotations

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
