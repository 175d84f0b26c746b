"""Small async helpers for the etcd tests (`until` and `running` live in tests.support)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from tests.support import running, until  # noqa: F401 - re-exported for the etcd tests


class Changes:
    """Records every on_change call with the time it came."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, Mapping[str, bytes]]] = []

    def __call__(self, snapshot: Mapping[str, bytes]) -> None:
        self.calls.append((time.monotonic(), snapshot))

    @property
    def last(self) -> Mapping[str, bytes] | None:
        return self.calls[-1][1] if self.calls else None
