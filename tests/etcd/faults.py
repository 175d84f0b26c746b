"""What the failover test and bench/etcd_faults.py run against a cluster: writes flowing
through a Writer, and a watch on how many electors lead at once."""

from __future__ import annotations

import asyncio
import time

from fed_dns.etcd.leader import LeaderElector
from fed_dns.etcd.writer import WriteFailed, Writer
from fed_dns.model import Changes


class Flow:
    """Writes flowing through a Writer: one put (and every third time a delete of an older
    key) per apply, retried until written; `expected` is what etcd must hold."""

    def __init__(self, writer: Writer, prefix: str) -> None:
        self.writer = writer
        self.prefix = prefix
        self.expected: dict[str, bytes] = {}
        self.written = 0
        self.last_ok = time.monotonic()
        self.longest_gap = 0.0  # longest time without a successful write
        self.stopping = False

    async def run(self) -> None:
        """Until `stopping` is set (a write in flight is finished, never cancelled)."""
        i = 0
        while not self.stopping:
            key = f"{self.prefix}k{i:05}"
            deletes = (f"{self.prefix}k{i - 2:05}",) if i % 3 == 2 else ()
            change = Changes(puts={key: str(i).encode()}, deletes=deletes)
            while True:
                try:
                    await self.writer.apply(change)
                    break
                except WriteFailed:
                    await asyncio.sleep(0.02)
            now = time.monotonic()
            self.longest_gap = max(self.longest_gap, now - self.last_ok)
            self.last_ok = now
            self.expected[key] = str(i).encode()
            for gone in deletes:
                self.expected.pop(gone, None)
            self.written += 1
            i += 1
            await asyncio.sleep(0.01)


class Leaders:
    """on_change of every elector: records the most leaders seen at any one time."""

    def __init__(self) -> None:
        self.electors: list[LeaderElector] = []
        self.most = 0

    def __call__(self, _leading: bool) -> None:
        self.most = max(self.most, sum(e.is_leader for e in self.electors))

    def current(self) -> list[LeaderElector]:
        return [e for e in self.electors if e.is_leader]
