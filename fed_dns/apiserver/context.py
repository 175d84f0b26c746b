"""What the HTTP handlers of one API server share: its storage, kinds, tokens and run state."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fed_dns.apiserver.kinds import Kind, Registry
from fed_dns.apiserver.storage import Storage

# Admission: (kind, the object to store, the stored one or None) -> None, or raise ApiError.
# It may change the object in place (defaults). Called before every create and update.
Admit = Callable[[Kind, dict, "dict | None"], Awaitable[None]]


@dataclass(eq=False)
class Served:
    storage: Storage
    registry: Registry
    tokens: tuple[str, ...]  # bearer tokens accepted; empty: no authentication
    url: str = ""
    bookmark_interval: float = 5.0
    watch_timeout: float = 1800.0
    admit: Admit | None = None
    hung: bool = False
    _resumed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._resumed.set()

    def authorized(self, header: str) -> bool:
        if not self.tokens:
            return True
        sent = header.encode()
        # Every token is compared (constant time each), so timing tells nothing of which.
        return any([hmac.compare_digest(sent, f"Bearer {t}".encode()) for t in self.tokens])

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
