"""Capped exponential backoff with jitter for reconnecting watches. Pure."""

from __future__ import annotations


def delay(*, attempt: int, initial: float, maximum: float, jitter: float) -> float:
    """Seconds to wait before retry number `attempt` (0-based).

    `initial * 2**attempt`, capped at `maximum`, then scaled by a factor in [0.5, 1.0]
    chosen by `jitter` in [0, 1) (pass `random.random()`), so members that broke together
    do not reconnect together.
    """
    base = min(maximum, initial * 2 ** min(attempt, 32))
    return base * (0.5 + 0.5 * jitter)
