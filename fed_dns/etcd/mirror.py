"""ZoneMirror: the whole key prefix of a zone in memory, kept current by an etcd watch.

Layered loops, as the Kubernetes watchers do: an outer loop reconnects with capped
exponential backoff plus jitter; inside it a full range read (only at the start and after a
compaction, or when etcd went back in time), then a watch from the next revision. A broken
watch resumes from the last revision seen. While etcd is away the last snapshot stays
available (serve stale) and `stale_seconds` grows.

Each snapshot is a new dict (copy on write) behind a read-only view, so a consumer may keep
the one it was given: it never changes under it and always holds whole etcd revisions.
Events that arrive together (one etcd response, or a burst read before the loop turns) are
applied together and reported with one `on_change` call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import aetcd
import grpc
from aetcd import rpc, utils

from fed_dns.etcd.backoff import Backoff, check_cancelled
from fed_dns.etcd.client import EtcdError, EtcdSettings, connect, scrub

log = logging.getLogger(__name__)

_EMPTY: Mapping[str, bytes] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class MirrorStats:
    loads: int  # full range reads, the first one included
    reloads: int  # full range reads after the first (compaction, etcd restored)
    reconnects: int  # sessions started after a lost or failed one
    events: int  # watch events applied
    batches: int  # on_change calls caused by watch events
    revision: int
    connected: bool
    stale_seconds: float
    keys: int
    last_error: str | None


class ZoneMirror:
    def __init__(self, *, settings: EtcdSettings, prefix: str,
                 on_change: Callable[[Mapping[str, bytes]], None] | None = None,
                 backoff: Backoff = Backoff(), probe_interval: float = 1.0) -> None:
        if not prefix:
            raise ValueError("ZoneMirror needs a non-empty key prefix")
        self._settings = settings
        self._prefix = prefix
        self._prefix_bytes = prefix.encode()
        self._on_change = on_change
        self._backoff = backoff
        self._probe_interval = probe_interval
        self._data: dict[str, bytes] = {}
        self._view: Mapping[str, bytes] = _EMPTY
        self._pending: dict[str, bytes] | None = None
        self._flush_handle: asyncio.Handle | None = None
        self._revision = 0
        self._connected = False
        self._loaded = False
        self._good_at = time.monotonic()  # last moment the snapshot was known current
        self._ready = asyncio.Event()
        self.loads = 0
        self.reloads = 0
        self.reconnects = 0
        self.events = 0
        self.batches = 0
        self.last_error: str | None = None

    # -- what consumers read -------------------------------------------------------------

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def snapshot(self) -> Mapping[str, bytes]:
        """key -> value under the prefix, as of `revision`. Read-only; never mutated later."""
        return self._view

    @property
    def revision(self) -> int:
        """The etcd revision the snapshot is current to (0 before the first load)."""
        return self._revision

    @property
    def connected(self) -> bool:
        """True while the watch is established and the snapshot is current."""
        return self._connected

    @property
    def loaded(self) -> bool:
        """True once a first full load has been made (the snapshot may be stale since)."""
        return self._loaded

    @property
    def stale_seconds(self) -> float:
        """0 while connected; else seconds since the snapshot was last known current (or
        since the mirror was made, before the first load)."""
        if self._connected:
            return 0.0
        return time.monotonic() - self._good_at

    def stats(self) -> MirrorStats:
        return MirrorStats(loads=self.loads, reloads=self.reloads, reconnects=self.reconnects,
                           events=self.events, batches=self.batches, revision=self._revision,
                           connected=self._connected, stale_seconds=self.stale_seconds,
                           keys=len(self._data), last_error=self.last_error)

    async def wait_connected(self) -> None:
        """Until the mirror is loaded and watching (for readiness)."""
        while not self._connected:
            await self._ready.wait()

    # -- the loops -----------------------------------------------------------------------

    async def run(self) -> None:
        """Mirror the prefix until cancelled. May be called again after a cancel: it then
        resumes from the revision it had reached."""
        attempt = 0
        sessions = 0
        try:
            while True:
                check_cancelled()
                if sessions:
                    self.reconnects += 1
                sessions += 1
                try:
                    client = await connect(self._settings)
                except EtcdError as exc:
                    reason = str(exc)
                else:
                    try:
                        await self._session(client)
                        reason = "watch stream ended"
                    except (aetcd.ClientError, grpc.RpcError, OSError, TimeoutError) as exc:
                        reason = self._describe(exc)
                    finally:
                        await _close_quietly(client)
                attempt = 0 if self._connected else attempt + 1
                self._lost(reason)
                await asyncio.sleep(self._backoff.delay(attempt))
        finally:
            self._flush()
            self._set_connected(False)

    async def _session(self, client: aetcd.Client) -> None:
        if not self._loaded or not await _revision_readable(client, self._prefix_bytes,
                                                            revision=self._revision,
                                                            timeout=self._settings.timeout):
            # First start; or our revision was compacted away meanwhile, or etcd went back
            # in time (restored from a backup): read it all again.
            await self._load(client)
        while True:
            check_cancelled()
            try:
                watch = await client.watch_prefix(self._prefix_bytes,
                                                  start_revision=self._revision + 1)
            except aetcd.RevisionCompactedError as exc:
                await self._compacted(client, exc)
                continue
            self._set_connected(True)
            try:
                await self._follow(client, watch)
            except aetcd.RevisionCompactedError as exc:
                # etcd may report a compacted start revision after having created the watch,
                # or a watcher may fall behind a compaction.
                self._flush()
                await self._compacted(client, exc)
                continue
            finally:
                self._flush()
                try:
                    await asyncio.wait_for(watch.cancel(), timeout=1.0)
                except Exception:  # noqa: BLE001 - the stream is usually broken already
                    pass
            return

    async def _follow(self, client: aetcd.Client, watch: aetcd.Watch) -> None:
        """Apply the watch's events until it fails; meanwhile probe etcd every
        `probe_interval`, because a hung etcd (or a silent network) breaks no stream."""
        events = asyncio.create_task(self._consume(watch))
        probe = asyncio.create_task(self._probe(client))
        try:
            await asyncio.wait((events, probe), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (events, probe):
                task.cancel()
            await asyncio.gather(events, probe, return_exceptions=True)
        for task in (events, probe):
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()

    async def _consume(self, watch: aetcd.Watch) -> None:
        async for event in watch:
            self._apply(event)

    async def _probe(self, client: aetcd.Client) -> None:
        while True:
            await asyncio.sleep(self._probe_interval)
            try:
                await asyncio.wait_for(
                    _revision_readable(client, self._prefix_bytes, revision=0,
                                       timeout=self._settings.timeout),
                    timeout=self._settings.timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(f"etcd did not answer within {self._settings.timeout:g}s")

    async def _compacted(self, client: aetcd.Client, exc: aetcd.RevisionCompactedError) -> None:
        log.info("etcd compacted past revision %d (to %d): re-loading %s",
                 self._revision, exc.compacted_revision, self._prefix)
        await self._load(client)

    async def _load(self, client: aetcd.Client) -> None:
        result = await client.get_prefix(self._prefix_bytes)
        data = {kv.key.decode(errors="surrogateescape"): kv.value for kv in result.kvs}
        self._cancel_flush()
        self._pending = None
        self._revision = result.header.revision
        if self._loaded:
            self.reloads += 1
        self.loads += 1
        self._loaded = True
        self._publish(data)

    def _apply(self, event: aetcd.Event) -> None:
        kv = event.kv
        if self._pending is None:
            self._pending = dict(self._data)
        key = kv.key.decode(errors="surrogateescape")
        if event.kind == "PUT":
            self._pending[key] = kv.value
        else:
            self._pending.pop(key, None)
        if kv.mod_revision > self._revision:
            self._revision = kv.mod_revision
        self.events += 1
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._cancel_flush()
        if self._pending is None:
            return
        data, self._pending = self._pending, None
        self.batches += 1
        self._publish(data)

    def _cancel_flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    def _publish(self, data: dict[str, bytes]) -> None:
        self._data = data
        self._view = MappingProxyType(data)
        if self._on_change is None:
            return
        try:
            self._on_change(self._view)
        except Exception:  # noqa: BLE001 - a consumer's bug must not stop the mirror
            log.exception("on_change for %s failed", self._prefix)

    def _set_connected(self, connected: bool) -> None:
        if connected:
            self.last_error = None
            self._ready.set()
        elif self._connected:
            self._good_at = time.monotonic()
            self._ready.clear()
        self._connected = connected

    def _lost(self, reason: str) -> None:
        if self._connected or self.last_error != reason:
            log.warning("etcd mirror of %s: %s (serving the snapshot of revision %d)",
                        self._prefix, reason, self._revision)
        self._set_connected(False)
        self.last_error = reason

    def _describe(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        return scrub(f"{type(exc).__name__}: {text}", secrets=(self._settings.password,))


async def _revision_readable(client: aetcd.Client, prefix: bytes, *, revision: int,
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
        raise aetcd.ClientError(exc.details() or exc.code().name) from None
    return True


async def _close_quietly(client: aetcd.Client) -> None:
    try:
        await asyncio.wait_for(client.close(), timeout=2.0)
    except Exception:  # noqa: BLE001 - closing a broken channel may complain
        pass
