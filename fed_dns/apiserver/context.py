"""What the HTTP handlers of one simulated cluster share: its store, token and run state."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from fed_dns.sim.store import Store


@dataclass(eq=False)
class Served:
    store: Store
    token: str
    url: str = ""
    bookmark_interval: float = 5.0
    watch_timeout: float = 1800.0
    namespace_grace: float = 0.5  # how long a namespace deleted over the API stays Terminating
    hung: bool = False
    _resumed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._resumed.set()

    def hang(self) -> None:
        self.hung = True
        self._resumed.clear()

    def resume(self) -> None:
        self.hung = False
        self._resumed.set()

    async def until_answering(self) -> None:
        """Return at once when serving; while hung, block until revived."""
        while self.hung:
            await self._resumed.wait()
