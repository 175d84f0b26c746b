"""Reading a whole key prefix of any size, at one revision.

One range request for a large prefix breaks a gRPC receive limit (300,000 records are
~40 MB; gRPC's default limit is 4 MiB, fed-dns's channels take RECEIVE_LIMIT). So the prefix
is read in pages, each page continuing from the last key of the one before (+ b"\\x00"),
every page after the first pinned to the first page's revision: the result is one consistent
etcd revision whatever its size. When that revision is compacted in the middle of the read,
the read starts again at a newer one. A page that still exceeds the receive limit (very large
values, or a client with gRPC's default limit) is asked again with half the keys, and the
rest of the read aims at half the bytes.

Pages are few and large, because etcd (3.4) walks its index over the whole rest of the range
for every limited range request, whatever the limit: at 300,000 keys pages of 1,000 keys took
13 s, pages of ~2 MiB about 1 s, pages of ~8 MiB 0.7 s. By default the first page holds
FIRST_PAGE keys and each next one as many as make about PAGE_BYTES, judged from the page
before.

aetcd's `get_prefix` has neither `limit` nor `revision`, so the pages are asked with the KV
stub, as aetcd does itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aetcd
import grpc
from aetcd import rpc, utils

log = logging.getLogger(__name__)

FIRST_PAGE = 1000  # keys in the first range request (~130 KB of SkyDNS records)
RECEIVE_LIMIT = 16 * 1024 * 1024  # the largest message fed-dns's etcd channels take (gRPC: 4 MiB)
PAGE_BYTES = RECEIVE_LIMIT // 2  # what a page aims at
MAX_PAGE = 100_000  # keys in a page at most, however small they are
ATTEMPTS = 5  # whole reads started over after a compaction, before giving up


@dataclass(frozen=True, slots=True, kw_only=True)
class Loaded:
    """Every key under a prefix, as of `revision`."""

    data: dict[str, bytes]
    revision: int
    pages: int  # range requests that returned keys or ended the read
    restarts: int  # reads started again after a compaction of their revision


async def read_prefix(client: aetcd.Client, *, prefix: bytes, timeout: float,
                      page_size: int | None = None, attempts: int = ATTEMPTS) -> Loaded:
    """Every key under `prefix` at one revision (the newest when the read began), in pages:
    of `page_size` keys when given, else sized to about PAGE_BYTES each (halved for the rest
    of the read each time a page is refused as too large).

    Raises aetcd.RevisionCompactedError when compactions overtook `attempts` reads in a row,
    and aetcd.ClientError (or a subclass) for anything else etcd answered."""
    if page_size is not None and page_size < 1:
        raise ValueError("page_size must be at least 1")
    end = utils.prefix_range_end(prefix)
    target = PAGE_BYTES
    for restart in range(attempts):
        data: dict[str, bytes] = {}
        key, revision, pages, size = prefix, 0, 0, page_size or FIRST_PAGE
        while True:
            request = rpc.RangeRequest(key=key, range_end=end, limit=size, revision=revision)
            try:
                response = await client.kvstub.Range(request, timeout=timeout,
                                                     metadata=client.metadata)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.OUT_OF_RANGE and revision:
                    log.info("revision %d compacted while reading %r: reading again",
                             revision, prefix)
                    break
                if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and size > 1:
                    size = max(1, size // 2)  # a page of large values: fewer keys a page
                    target = max(1, target // 2)  # and the next pages smaller
                    continue
                raise client_error(exc) from None
            pages += 1
            if not revision:
                revision = response.header.revision
            for kv in response.kvs:
                data[kv.key.decode(errors="surrogateescape")] = kv.value
            if not response.more or not response.kvs:
                return Loaded(data=data, revision=revision, pages=pages, restarts=restart)
            key = next_key(response.kvs[-1].key)
            if page_size is None:
                size = next_page_size(keys=len(response.kvs), size=response.ByteSize(), target=target)
    raise aetcd.RevisionCompactedError(revision)


def next_page_size(*, keys: int, size: int, target: int = PAGE_BYTES,
                   maximum: int = MAX_PAGE) -> int:
    """Keys to ask for in the next page, so that it holds about `target` bytes, judged from
    the last page (`keys` keys in `size` bytes); between 1 and `maximum`."""
    if keys < 1 or size < 1:
        return maximum
    return max(1, min(maximum, target * keys // size))


def next_key(key: bytes) -> bytes:
    """The smallest key after `key`: where the next page begins."""
    return key + b"\x00"


async def revision_readable(client: aetcd.Client, prefix: bytes, *, revision: int,
                            timeout: float) -> bool:
    """Whether etcd still has `revision` (neither compacted nor in its future), asked with a
    count-only range on our own prefix (no permission beyond what the mirror needs)."""
    request = rpc.RangeRequest(key=prefix, range_end=utils.prefix_range_end(prefix),
                               count_only=True, revision=revision)
    try:
        await client.kvstub.Range(request, timeout=timeout, metadata=client.metadata)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.OUT_OF_RANGE:  # compacted, or a future revision
            return False
        raise client_error(exc) from None
    return True


async def txn(client: aetcd.Client, request: rpc.TxnRequest, *, timeout: float) -> rpc.TxnResponse:
    """One Txn call with the KV stub (its header's revision included, which aetcd's
    `transaction` drops), its failures raised as aetcd's own."""
    return await _kv_call(client, "Txn", request, timeout=timeout)


async def compact(client: aetcd.Client, revision: int, *, timeout: float) -> bool:
    """Compact etcd's history up to `revision`: True when done now, False when it was
    compacted that far already (etcd's own auto-compaction, or an operator, went further:
    etcd's ErrCompacted, OUT_OF_RANGE), which is no error. Other failures as aetcd's own."""
    done = await _kv_call(client, "Compact", rpc.CompactionRequest(revision=revision), timeout=timeout,
                          none_on=(grpc.StatusCode.OUT_OF_RANGE,))
    return done is not None


async def _kv_call(client: aetcd.Client, method: str, request, *, timeout: float, none_on: tuple = ()):
    """One call of the KV stub's `method`, connected first: its response; None for a failure
    whose status code is in `none_on`; other failures raised as aetcd would raise them."""
    await client.connect()
    try:
        return await getattr(client.kvstub, method)(request, timeout=timeout, metadata=client.metadata)
    except grpc.aio.AioRpcError as exc:
        if exc.code() in none_on:
            return None
        raise client_error(exc) from None


# As aetcd maps them (its exceptions._EXCEPTIONS_BY_CODE).
_ERRORS = {grpc.StatusCode.UNAVAILABLE: aetcd.ConnectionFailedError,
           grpc.StatusCode.DEADLINE_EXCEEDED: aetcd.ConnectionTimeoutError,
           grpc.StatusCode.INTERNAL: aetcd.InternalError,
           grpc.StatusCode.FAILED_PRECONDITION: aetcd.PreconditionFailedError,
           grpc.StatusCode.INVALID_ARGUMENT: aetcd.InvalidArgumentError,
           grpc.StatusCode.UNAUTHENTICATED: aetcd.exceptions.UnauthenticatedError}


def client_error(exc: grpc.aio.AioRpcError) -> aetcd.ClientError:
    """The aetcd error aetcd itself would raise for `exc` (a one-line message)."""
    return _ERRORS.get(exc.code(), aetcd.ClientError)(exc.details() or exc.code().name)
