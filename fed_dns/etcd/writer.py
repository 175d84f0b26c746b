"""Writer: applies a model.Changes to etcd in fenced, bounded, throttled transactions.

Operations are sorted by key, so the keys of one name (a cluster's leaves and its fallback
CNAME) sit side by side and land in the same transaction whenever the change fits in one.
Each transaction holds at most `max_ops` operations (etcd refuses more than --max-txn-ops,
128 by default) and carries the fence compare: when the compare fails the leader has been
deposed and NotLeader is raised; the transactions already made stay (each one is whole),
the rest are not attempted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Sequence

import aetcd
import grpc
from aetcd import transactions
from asyncio_throttle import Throttler

from fed_dns.etcd.backoff import Backoff, check_cancelled
from fed_dns.model import Changes

log = logging.getLogger(__name__)

# Worth another try: etcd unreachable, slow, or between leaders of its own raft.
TRANSIENT = (aetcd.ConnectionFailedError, aetcd.ConnectionTimeoutError, aetcd.InternalError,
             grpc.RpcError, OSError, TimeoutError)

Fence = Callable[[], transactions.BaseCompare | None]


class NotLeader(Exception):
    """This replica does not (or no longer) hold the leadership: nothing was written by the
    transaction that found out."""


class WriteFailed(Exception):
    """etcd kept failing after every retry. The message is safe to log."""


class Writer:
    def __init__(self, *, client: aetcd.Client, fence: Fence | None = None, max_ops: int = 100,
                 rate_per_second: float = 50.0, retries: int = 4,
                 backoff: Backoff = Backoff(initial=0.1, maximum=2.0),
                 timeout: float = 5.0) -> None:
        if max_ops < 1:
            raise ValueError("max_ops must be at least 1")
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self._client = client
        self._fence = fence
        self._max_ops = max_ops
        # The throttler counts whole transactions in a sliding window of one period.
        if rate_per_second >= 1:
            self._throttler = Throttler(rate_limit=round(rate_per_second), period=1.0)
        else:
            self._throttler = Throttler(rate_limit=1, period=1 / rate_per_second)
        self._retries = retries
        self._backoff = backoff
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self.writes = 0  # operations written (puts + deletes)
        self.transactions = 0  # transactions that succeeded
        self.errors = 0  # failed attempts (transient errors and fence failures)

    async def apply(self, changes: Changes) -> None:
        """Write `changes`: NotLeader when fenced out, WriteFailed when etcd keeps failing."""
        ops = operations(changes)
        async with self._lock:  # one apply at a time keeps the order of changes
            for batch in chunks(ops, self._max_ops):
                await self._commit(batch)

    async def _commit(self, batch: Sequence[object]) -> None:
        attempt = 0
        while True:
            check_cancelled()
            compare = []
            if self._fence is not None:
                fence = self._fence()
                if fence is None:
                    raise NotLeader("not the leader: refusing to write")
                compare.append(fence)
            await self._throttler.acquire()
            try:
                ok, _ = await asyncio.wait_for(
                    self._client.transaction(compare=compare, success=list(batch), failure=[]),
                    timeout=self._timeout)
            except TRANSIENT as exc:
                self.errors += 1
                if attempt >= self._retries:
                    raise WriteFailed(f"etcd write failed after {attempt + 1} attempts: "
                                      f"{_describe(exc)}") from None
                delay = self._backoff.delay(attempt)
                log.warning("etcd write failed (%s), retry in %.2fs", _describe(exc), delay)
                await asyncio.sleep(delay)
                attempt += 1
                continue
            if not ok:
                self.errors += 1
                raise NotLeader("leadership lost: the fenced transaction was refused")
            self.transactions += 1
            self.writes += len(batch)
            return


def operations(changes: Changes) -> list[object]:
    """The puts and deletes of `changes` as etcd operations, sorted by key."""
    both = set(changes.puts).intersection(changes.deletes)
    if both:
        raise ValueError(f"keys both put and deleted: {sorted(both)[:5]}")
    ops: list[tuple[str, object]] = [
        (key, transactions.Put(key.encode(), value)) for key, value in changes.puts.items()]
    ops += [(key, transactions.Delete(key.encode())) for key in set(changes.deletes)]
    ops.sort(key=lambda pair: pair[0])
    return [op for _, op in ops]


def chunks(items: Sequence[object], size: int) -> Iterator[Sequence[object]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
