"""Writer: applies a model.Changes to etcd in fenced, bounded transactions, several at once.

Operations are sorted by key, so the keys of one name (a cluster's leaves and its fallback
CNAME) sit side by side and land in the same transaction whenever the change fits in one.
Each transaction holds at most `max_ops` operations (etcd refuses more than --max-txn-ops,
128 by default) and carries the fence compare.

The keys of one `apply` are distinct, so its transactions may land in any order: up to
`concurrency` of them are in flight at once (etcd commits concurrent proposals together, one
disk sync for many). Successive applies stay ordered: one apply runs at a time. No throttle
unless `rate_per_second` is given. bench/etcd_write.py against a local etcd on 2 shared
cores: the CPU is the limit (etcd's and this process's); concurrency pays where each commit
waits on a disk sync or a network round trip, so the default is 4. The transactions are
built as protobuf requests here (`request`): 100,000 puts at concurrency 4 went from
50,000-68,000 to 78,000-92,000 operations/s, and this process's CPU from 8.7-12.4 to
4.1-4.9 us an operation (bench/README.md).

- The fence refuses (a failed compare, or no fence to give): no new transaction starts, the
  ones in flight finish, and NotLeader is raised. Every transaction made is whole.
- A transaction that keeps failing after `retries` (or that etcd refuses outright, e.g. too
  large) does not stop the others: they are still written, then WriteFailed is raised with
  `.unwritten`, the puts and deletes not written, so the caller retries only those. When
  `max(2, concurrency)` transactions fail in a row (etcd is away), the rest are not tried:
  they are in `.unwritten` too.
- The client is a `connection.ClusterClient` (what `client.connect` returns): a transaction
  that fails because its member is away, or that gets no answer within `timeout`, moves the
  client to the next member, and the retry goes there.
- A transaction whose outcome is unknown (no answer in time, a dropped connection) may still
  be committed later, after the writes that followed it: a proposal that waited in a
  stopped raft leader, forwarded when it wakes. A late put of a key deleted since would come
  back as an orphan. With `epoch_key`, every transaction also compares that key with this
  writer's current token, and an unknown outcome makes a new token (a put of the key) before
  the next transaction: a late one then fails its compare and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import aetcd
import grpc
from aetcd import rpc, transactions
from asyncio_throttle import Throttler

from fed_dns.etcd.backoff import Backoff, check_cancelled
from fed_dns.etcd.connection import call
from fed_dns.etcd import ranges
from fed_dns.model import Changes

log = logging.getLogger(__name__)

# Worth another try: etcd unreachable, slow, or between leaders of its own raft.
TRANSIENT = (aetcd.ConnectionFailedError, aetcd.ConnectionTimeoutError, aetcd.InternalError,
             grpc.RpcError, OSError, TimeoutError)

Fence = Callable[[], transactions.BaseCompare | None]
# One operation: (key, value) puts, (key, None) deletes. The transaction's request is built
# from these directly: aetcd's `transaction()` made an operation object, a request and a
# RequestOp copy of it for each, then a list of the responses (3.7 us an operation; 0.5 now).
Op = tuple[bytes, bytes | None]


class NotLeader(Exception):
    """This replica does not (or no longer) hold the leadership: nothing was written by the
    transaction that found out, and no transaction was started after it."""


class WriteFailed(Exception):
    """Some transactions were not written (etcd kept failing, or refused them); every other
    one was. `unwritten` holds the puts and deletes of those not written. The message is
    safe to log."""

    def __init__(self, message: str, *, unwritten: Changes) -> None:
        super().__init__(message)
        self.unwritten = unwritten


class _Failed(Exception):
    """One transaction given up on (internal): its reason, for WriteFailed's message."""


@dataclass(slots=True, kw_only=True)
class _Run:
    """The state of one apply shared by its concurrent workers."""

    pending: deque[Sequence[object]]
    total: int
    failed: list[Sequence[object]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    streak: int = 0  # transactions failed in a row
    stop: BaseException | None = None  # NotLeader, or a bug: start nothing more


class Writer:
    def __init__(self, *, client: aetcd.Client, fence: Fence | None = None, max_ops: int = 128,
                 concurrency: int = 4, rate_per_second: float | None = None, retries: int = 4,
                 backoff: Backoff = Backoff(initial=0.1, maximum=2.0),
                 timeout: float = 5.0, epoch_key: str | None = None) -> None:
        if max_ops < 1:
            raise ValueError("max_ops must be at least 1")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if rate_per_second is not None and rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive (or None: no limit)")
        self._client = client
        self._fence = fence
        self._max_ops = max_ops
        self._concurrency = concurrency
        # The throttler counts whole transactions in a sliding window of one period.
        self._throttler: Throttler | None = None
        if rate_per_second is not None and rate_per_second >= 1:
            self._throttler = Throttler(rate_limit=round(rate_per_second), period=1.0)
        elif rate_per_second is not None:
            self._throttler = Throttler(rate_limit=1, period=1 / rate_per_second)
        self._retries = retries
        self._give_up_after = max(2, concurrency)
        self._backoff = backoff
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self._epoch_key = epoch_key.encode() if epoch_key else None
        self._token: bytes | None = None  # the epoch in force; None: make one first
        self._epoch_lock = asyncio.Lock()
        self.epochs = 0  # tokens written to epoch_key
        self.writes = 0  # operations written (puts + deletes)
        self.transactions = 0  # transactions that succeeded
        self.errors = 0  # failed attempts (transient errors, refusals, fence failures)
        self.unwritten = 0  # operations given up on (reported in WriteFailed)
        self.last_error: str | None = None  # the last failed attempt; None after a success

    @property
    def endpoint(self) -> str | None:
        """The etcd endpoint the writes go to (None when the client does not say)."""
        return getattr(self._client, "endpoint", None)

    @property
    def connected(self) -> bool:
        """Whether the client holds a channel to a member it proved healthy; it redials on the
        next write when not."""
        return bool(getattr(self._client, "connected", False))

    async def apply(self, changes: Changes) -> None:
        """Write `changes`: NotLeader when fenced out; WriteFailed (with `.unwritten`) when
        some transactions could not be written, after the others were."""
        ops = operations(changes)
        if not ops:
            return
        async with self._lock:  # one apply at a time keeps the order of changes
            batches = deque(chunks(ops, self._max_ops))
            run = _Run(pending=batches, total=len(batches))
            workers = min(self._concurrency, len(run.pending))
            if workers == 1:
                await self._work(run)
            else:
                tasks = [asyncio.create_task(self._work(run)) for _ in range(workers)]
                try:
                    await asyncio.gather(*tasks)
                finally:  # cancelled: the transactions in flight are abandoned with us
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
        self._outcome(run)

    async def _work(self, run: _Run) -> None:
        while run.pending and run.stop is None:
            batch = run.pending.popleft()
            if run.streak >= self._give_up_after:  # etcd is away: try no more
                run.failed.append(batch)
                continue
            try:
                await self._commit(batch)
            except _Failed as exc:
                run.failed.append(batch)
                run.reasons.append(str(exc))
                run.streak += 1
            except Exception as exc:  # NotLeader, or a bug: start no new transaction
                if run.stop is None or not isinstance(exc, NotLeader):  # a bug wins
                    run.stop = exc
            else:
                run.streak = 0

    def _outcome(self, run: _Run) -> None:
        if run.stop is not None:
            # Raised with no reference left to it on the run or in a local: its traceback
            # holds these frames, which hold the run. That cycle kept the whole change
            # (every operation) alive until a full collection; the daemon freezes what it
            # holds (app.runtime), so until its hourly thaw.
            try:
                raise run.stop
            finally:
                run.stop = None
        if not run.failed:
            return
        unwritten = unwritten_changes(run.failed)
        self.unwritten += len(unwritten.puts) + len(unwritten.deletes)
        untried = len(run.failed) - len(run.reasons)
        raise WriteFailed(
            f"{len(run.failed)} of {run.total} etcd transactions not written "
            f"({len(unwritten.puts)} puts, {len(unwritten.deletes)} deletes"
            + (f"; {untried} not tried after {self._give_up_after} failures in a row"
               if untried else "")
            + f"): {run.reasons[0]}", unwritten=unwritten)

    async def _commit(self, batch: Sequence[Op]) -> None:
        attempt = 0
        while True:
            check_cancelled()
            compare = []
            if self._fence is not None:
                fence = self._fence()
                if fence is None:
                    raise NotLeader("not the leader: refusing to write")
                compare.append(fence)
            if self._throttler is not None:
                await self._throttler.acquire()
            token = None
            try:
                if self._epoch_key is not None:
                    token = await self._epoch()
                    compare.append(transactions.Value(self._epoch_key) == token)
                response = await call(self._client, self._txn, request(
                    compare=compare, batch=batch, read=self._epoch_key), timeout=self._timeout)
            except TRANSIENT as exc:
                self.errors += 1
                self.last_error = _describe(exc)
                if self._token == token:  # its outcome is unknown: fence it off
                    self._token = None
                if attempt >= self._retries:
                    raise _Failed(f"etcd write failed after {attempt + 1} attempts: "
                                  f"{_describe(exc)}") from None
                delay = self._backoff.delay(attempt)
                log.warning("etcd write failed (%s), retry in %.2fs", _describe(exc), delay)
                await asyncio.sleep(delay)
                attempt += 1
                continue
            except aetcd.ClientError as exc:  # refused for good (too large, no permission)
                self.errors += 1
                self.last_error = _describe(exc)
                raise _Failed(f"etcd refused the write: {_describe(exc)}") from None
            ok = response.succeeded
            if not ok and token is not None and _value(response) != token:
                # The epoch moved (a new token, or a late put of an older one): try again
                # under the current one.
                self.errors += 1
                if self._token in (token, _value(response)):
                    self._token = None
                if attempt >= self._retries:
                    raise _Failed("etcd write refused: the writer epoch kept moving")
                attempt += 1
                continue
            if not ok:
                self.errors += 1
                raise NotLeader("leadership lost: the fenced transaction was refused")
            self.transactions += 1
            self.writes += len(batch)
            self.last_error = None
            return


    async def _txn(self, txn: rpc.TxnRequest) -> rpc.TxnResponse:
        """One Txn call, its failures raised as aetcd's own (as `Client.transaction` does)."""
        return await ranges.txn(self._client, txn, timeout=self._timeout)

    async def _epoch(self) -> bytes:
        """The token in force, after writing a new one to epoch_key when there is none."""
        async with self._epoch_lock:
            if self._token is None:
                token = secrets.token_hex(8).encode()
                await call(self._client, self._client.put, self._epoch_key, token,
                           timeout=self._timeout)
                self._token = token
                self.epochs += 1
            return self._token


def request(*, compare: Iterable[transactions.BaseCompare], batch: Iterable[Op],
            read: bytes | None = None) -> rpc.TxnRequest:
    """The Txn request: if every compare holds, the batch's puts and deletes; else a read of
    key `read` (when given)."""
    txn = rpc.TxnRequest(compare=[c.build_message() for c in compare])
    add = txn.success.add
    for key, value in batch:
        if value is None:
            add().request_delete_range.key = key
        else:
            put = add().request_put
            put.key = key
            put.value = value
    if read is not None:
        txn.failure.add().request_range.key = read
    return txn


def _value(response: rpc.TxnResponse) -> bytes | None:
    """The epoch key's value read by a failed transaction's failure branch."""
    kvs = response.responses[0].response_range.kvs if response.responses else ()
    return kvs[0].value if kvs else None


def operations(changes: Changes) -> list[Op]:
    """The puts and deletes of `changes` as etcd operations, sorted by key."""
    both = set(changes.puts).intersection(changes.deletes)
    if both:
        raise ValueError(f"keys both put and deleted: {sorted(both)[:5]}")
    ops: list[Op] = [(key.encode(), value) for key, value in changes.puts.items()]
    ops += [(key.encode(), None) for key in set(changes.deletes)]
    ops.sort(key=_key)  # UTF-8 sorts as the text does
    return ops


def _key(op: Op) -> bytes:
    return op[0]


def unwritten_changes(batches: Iterable[Sequence[Op]]) -> Changes:
    """The puts and deletes of `batches` (etcd operations) as a Changes."""
    puts: dict[str, bytes] = {}
    deletes: list[str] = []
    for batch in batches:
        for key, value in batch:
            if value is not None:
                puts[key.decode(errors="surrogateescape")] = value
            else:
                deletes.append(key.decode(errors="surrogateescape"))
    return Changes(puts=puts, deletes=tuple(deletes))


def chunks(items: Sequence[object], size: int) -> Iterator[Sequence[object]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
