"""Compactor: etcd's history trimmed every `interval`, as kube-apiserver trims it.

Every write leaves a revision in etcd's history (a member's failover at 10 x 5,000 is 35,000
of them, churn one per change, every object of the federation API one per update), and etcd
keeps them all until something compacts: its database grows until it reaches its quota (2 GB
by default) and then refuses every write (alarm NOSPACE), the leader lease's included.
kube-apiserver compacts every 5 minutes (`--etcd-compaction-interval`); fed-dns does the same,
with the same protocol (apiserver/pkg/storage/etcd3/compact.go), on a key of its own (KEY),
shared by every fed-dns replica and zone of an etcd:

Each round, a transaction: if KEY's version is the one this replica saw at its last round,
put the revision it saw then into KEY (its version goes up by one), else read KEY. Won: no
other replica compacted since; compact to the revision of the last round, so at least one
interval of history is kept (a watch that fell behind by less resumes; the API's watches
and lists from an older resourceVersion get 410 Gone, as from kube-apiserver). Lost:
another replica compacted this round; take its version and try again next round. A
replica's first round never compacts (it has no revision from a round before). So with any
number of replicas, one compacts per interval, and another takes over within two intervals
when it stops.

Compaction is logical (etcd frees the space for reuse in the background); the database
file itself only shrinks on a defragmentation, which, as with kube-apiserver, is left to the
etcd operator. `etcd.compaction_interval: 0` turns it off (etcd's own
`--auto-compaction-retention` does the job then).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import aetcd
from aetcd import rpc, transactions

from fed_dns.etcd.connection import ERRORS, call
from fed_dns.etcd import ranges

log = logging.getLogger(__name__)

KEY = b"/fed-dns/compact_rev"  # as kube-apiserver's `compact_rev_key`, for fed-dns


@dataclass(frozen=True, slots=True)
class Known:
    """What a replica knows between rounds: KEY's version and etcd's revision at its last
    round (0 and 0 before the first)."""

    version: int = 0
    revision: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    known: Known  # for the next round
    compact_to: int  # the revision to compact to now; 0: none


def decide(*, known: Known, won: bool, seen_version: int, revision: int) -> Outcome:
    """A round's outcome (pure). `won`: the transaction's compare held; `seen_version`:
    KEY's version it read when it did not (0: no KEY); `revision`: etcd's revision when it
    ran."""
    if not won:
        return Outcome(known=Known(version=seen_version, revision=revision), compact_to=0)
    return Outcome(known=Known(version=known.version + 1, revision=revision), compact_to=known.revision)


def round_request(*, known: Known, key: bytes = KEY) -> rpc.TxnRequest:
    """The round's transaction: if KEY's version is `known.version`, put `known.revision`
    into it (as text, as kube-apiserver writes it); else read it."""
    txn = rpc.TxnRequest(compare=[(transactions.Version(key) == known.version).build_message()])
    put = txn.success.add().request_put
    put.key = key
    put.value = str(known.revision).encode()
    txn.failure.add().request_range.key = key
    return txn


def seen_version(response: rpc.TxnResponse) -> int:
    """KEY's version as a lost round read it (0: there is no KEY)."""
    if response.succeeded or not response.responses:
        return 0
    kvs = response.responses[0].response_range.kvs
    return kvs[0].version if kvs else 0


class Compactor:
    """Runs the rounds every `interval` seconds, until cancelled. Counters for /status and
    metrics: `rounds`, `compactions`, `errors`; `compacted`: the revision of its last
    compaction (0: none yet)."""

    def __init__(self, *, client: aetcd.Client, interval: float, timeout: float,
                 key: bytes = KEY) -> None:
        if interval <= 0:
            raise ValueError("compaction interval must be positive")
        self._client = client
        self._interval = interval
        self._timeout = timeout
        self._key = key
        self.known = Known()
        self.rounds = 0
        self.compactions = 0
        self.compacted = 0
        self.errors = 0
        self.last_error: str | None = None

    @property
    def interval(self) -> float:
        return self._interval

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.round()
            except ERRORS as exc:
                self.errors += 1
                self.last_error = str(exc) or type(exc).__name__
                log.warning("etcd compaction: %s (again in %gs)", self.last_error, self._interval)

    async def round(self) -> Outcome:
        """One round (see the module); returns its outcome. What the round learnt is kept
        before the compaction is tried, as kube-apiserver keeps it: a won round whose
        compaction fails still moved KEY's version, and the next round compares with that."""
        response = await call(self._client, self._txn, round_request(known=self.known, key=self._key),
                              timeout=self._timeout)
        outcome = decide(known=self.known, won=response.succeeded, seen_version=seen_version(response),
                         revision=response.header.revision)
        self.rounds += 1
        self.known = outcome.known
        if outcome.compact_to:
            if await call(self._client, self._compact, outcome.compact_to, timeout=self._timeout):
                self.compactions += 1
                self.compacted = outcome.compact_to
                log.info("etcd: history compacted up to revision %d", outcome.compact_to)
            else:
                log.debug("etcd: revision %d was compacted already", outcome.compact_to)
        self.last_error = None
        return outcome

    async def _txn(self, request: rpc.TxnRequest) -> rpc.TxnResponse:
        return await ranges.txn(self._client, request, timeout=self._timeout)

    async def _compact(self, revision: int) -> bool:
        return await ranges.compact(self._client, revision, timeout=self._timeout)
