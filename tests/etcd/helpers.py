"""Small async helpers for the etcd tests (`until` and `running` live in tests.support)."""

from __future__ import annotations

import time

from fed_dns.etcd.mirror import MirrorChange
from tests.support import running, until  # noqa: F401 - re-exported for the etcd tests


class Changes:
    """Records every on_change call (a MirrorChange) with the time it came, and replays them
    into `state`, the contents a consumer that follows the changes would hold."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, MirrorChange]] = []
        self.state: dict[str, bytes] = {}

    def __call__(self, change: MirrorChange) -> None:
        assert not set(change.puts) & change.deletes, "puts and deletes overlap"
        assert not (change.reload and change.deletes), "a reload deletes nothing"
        self.calls.append((time.monotonic(), change))
        if change.reload:
            self.state.clear()
        self.state.update(change.puts)
        for key in change.deletes:
            del self.state[key]  # a delete reported is a key the consumer was told about

    @property
    def last(self) -> MirrorChange | None:
        return self.calls[-1][1] if self.calls else None

    @property
    def changes(self) -> list[MirrorChange]:
        return [change for _, change in self.calls]

