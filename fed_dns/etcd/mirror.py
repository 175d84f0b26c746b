"""ZoneMirror: the whole key prefix of a zone in memory, kept current by an etcd watch.

Layered loops, as the Kubernetes watchers do: an outer loop reconnects with capped
exponential backoff plus jitter, through a `ClusterClient` that moves to the next etcd member
after each failed session (a dead, hung or cut-off member is left within seconds); inside it a full read (only at the start and after a
compaction, or when etcd went back in time), then a watch from the next revision. A broken
watch resumes from the last revision seen. While etcd is away the last contents stay
available (serve stale) and `stale_seconds` grows.

While watching, a probe reads etcd every `probe_interval`: a linearizable read (etcd's
default), which a member cut off from the raft majority cannot answer although it still
answers serializable reads and keeps the watch stream open; a hung member breaks no stream.

The full read is paginated at one revision (`ranges.read_prefix`), so a zone of any size
loads. Watch events are applied in place: the cost of a batch follows the batch, not the
zone. Events that arrive together (one etcd response, or a burst read before the loop turns)
are applied together and reported with one `on_change(MirrorChange)` call, never a part of
one etcd transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import aetcd

from fed_dns.etcd import ranges
from fed_dns.etcd.backoff import Backoff, check_cancelled
from fed_dns.etcd.client import EtcdError, EtcdSettings, scrub
from fed_dns.etcd.connection import ERRORS, ClusterClient

log = logging.getLogger(__name__)

_MISSING = object()


@dataclass(frozen=True, slots=True, kw_only=True)
class MirrorChange:
    """One on_change report: what a batch of etcd events (or a full read) changed.

    - `puts`: keys set by the batch, with their final values (a put of an unchanged value is
      reported too, as etcd reports it);
    - `deletes`: keys the batch removed from the mirror (disjoint from `puts`; a key put and
      then deleted within one batch is in neither when the mirror did not have it before);
      a mirror that keeps no contents (`keep=False`) reports every key deleted, held or not;
    - `reload`: True for a full read (the first load, and reloads after a compaction or an
      etcd restored from a backup): `puts` then holds the whole prefix, `deletes` is empty,
      and the consumer must forget every key not in `puts`;
    - `revision`: the etcd revision the mirror is current to after this change.

    A MirrorChange never changes after it is made; keeping one keeps its own mappings alive
    (after a reload, a second copy of the zone: do not hold it longer than needed).
    """

    puts: Mapping[str, bytes]
    deletes: frozenset[str]
    reload: bool
    revision: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MirrorStats:
    loads: int  # full (paginated) reads, the first one included
    reloads: int  # full range reads after the first (compaction, etcd restored)
    reconnects: int  # sessions started after a lost or failed one
    events: int  # watch events applied
    batches: int  # on_change calls caused by watch events (not by loads)
    revision: int
    connected: bool
    stale_seconds: float
    keys: int | None  # None: the mirror keeps no contents
    last_error: str | None
    endpoint: str  # the etcd endpoint in use (or tried next)


class ZoneMirror:
    def __init__(self, *, settings: EtcdSettings, prefix: str,
                 on_change: Callable[[MirrorChange], None] | None = None,
                 backoff: Backoff = Backoff(), probe_interval: float = 1.0,
                 page_size: int | None = None, client: ClusterClient | None = None,
                 keep: bool = True) -> None:
        """`keep=False`: a stream, not a copy. The mirror keeps no contents (no `snapshot`,
        no `get`): `on_change` gets the same changes, each delete reported as is (the
        mirror cannot tell whether the key was there), and the consumer that keeps what it
        needs is the zone's one copy in memory."""
        if not prefix:
            raise ValueError("ZoneMirror needs a non-empty key prefix")
        if page_size is not None and page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._settings = settings
        # Our own connection unless one is shared with us (then it is not ours to close).
        self._own_client = client is None
        self._client = client if client is not None else ClusterClient(settings=settings)
        self._page_size = page_size
        self._prefix = prefix
        self._prefix_bytes = prefix.encode()
        self._on_change = on_change
        self._backoff = backoff
        self._probe_interval = probe_interval
        self._keep = keep
        self._data: dict[str, bytes] = {}
        self._view: Mapping[str, bytes] = MappingProxyType(self._data)
        # Events applied since the last on_change: final values put, keys deleted.
        self._puts: dict[str, bytes] = {}
        self._deletes: set[str] = set()
        self._pending_revision = 0
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
        """key -> value under the prefix, as of `revision`: a read-only live view of the
        mirror's own dict. It changes in place (each batch of events, each reload), so it is
        consistent only between two awaits: iterate it without awaiting inside the loop, and
        copy what must outlive an await. The same view object for the mirror's lifetime."""
        self._kept()
        return self._view

    def get(self, key: str) -> bytes | None:
        """The value of `key` as of `revision`, or None."""
        self._kept()
        return self._data.get(key)

    def _kept(self) -> None:
        if not self._keep:
            raise RuntimeError(f"the mirror of {self._prefix} keeps no contents (keep=False)")

    @property
    def revision(self) -> int:
        """The etcd revision the snapshot is current to (0 before the first load)."""
        return self._revision

    @property
    def connected(self) -> bool:
        """True while the watch is established and the snapshot is current."""
        return self._connected

    @property
    def endpoint(self) -> str:
        """The etcd endpoint in use (while not connected: the one tried next)."""
        return self._client.endpoint

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
                           keys=len(self._data) if self._keep else None,
                           last_error=self.last_error,
                           endpoint=self.endpoint)

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
        client = self._client
        try:
            while True:
                check_cancelled()
                if sessions:
                    self.reconnects += 1
                sessions += 1
                try:
                    await client.connect()
                except EtcdError as exc:  # no member answered: the message names each
                    reason = str(exc)
                else:
                    generation = client.generation
                    endpoint = client.endpoint
                    try:
                        await self._session(client)
                        reason = "watch stream ended"
                    except ERRORS as exc:
                        reason = self._describe(exc)
                    reason = f"{endpoint}: {reason}"
                    client.failed(generation, reason)  # the next session uses another member
                attempt = 0 if self._connected else attempt + 1
                self._lost(reason)
                await asyncio.sleep(self._backoff.delay(attempt))
        finally:
            self._flush()
            self._set_connected(False)
            if self._own_client:
                await _close_quietly(client)

    async def _session(self, client: aetcd.Client) -> None:
        if not self._loaded or not await ranges.revision_readable(
                client, self._prefix_bytes, revision=self._revision,
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
                    async with asyncio.timeout(1.0):  # not wait_for (3.11)
                        await watch.cancel()
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
            check_cancelled()
            await asyncio.sleep(self._probe_interval)
            try:
                async with asyncio.timeout(self._settings.timeout):  # not wait_for (3.11)
                    await ranges.revision_readable(client, self._prefix_bytes, revision=0,
                                                   timeout=self._settings.timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(f"etcd did not answer within {self._settings.timeout:g}s")

    async def _compacted(self, client: aetcd.Client, exc: aetcd.RevisionCompactedError) -> None:
        log.info("etcd compacted past revision %d (to %d): re-loading %s",
                 self._revision, exc.compacted_revision, self._prefix)
        await self._load(client)

    async def _load(self, client: aetcd.Client) -> None:
        started = time.monotonic()
        loaded = await ranges.read_prefix(client, prefix=self._prefix_bytes,
                                          timeout=self._settings.timeout,
                                          page_size=self._page_size)
        log.info("etcd: loaded %d keys under %s at revision %d in %.2fs", len(loaded.data),
                 self._prefix, loaded.revision, time.monotonic() - started)
        # Events not yet reported are older than the read: it supersedes them.
        self._cancel_flush()
        self._clear_pending()
        self._data.clear()
        if self._keep:
            self._data.update(loaded.data)
        self._revision = loaded.revision
        if self._loaded:
            self.reloads += 1
        self.loads += 1
        self._loaded = True
        self._publish(MirrorChange(puts=MappingProxyType(loaded.data), deletes=frozenset(),
                                   reload=True, revision=loaded.revision))

    def _apply(self, event: aetcd.Event) -> None:
        kv = event.kv
        key = kv.key.decode(errors="surrogateescape")
        if event.kind == "PUT":
            self._puts[key] = kv.value
            self._deletes.discard(key)
        else:
            self._puts.pop(key, None)
            self._deletes.add(key)
        if kv.mod_revision > self._pending_revision:
            self._pending_revision = kv.mod_revision
        self.events += 1
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Apply the events gathered since the last call to the dict, in place, and report
        them in one MirrorChange."""
        self._cancel_flush()
        if not (self._puts or self._deletes):
            return
        puts, deletes = self._puts, self._deletes
        revision = max(self._revision, self._pending_revision)
        self._clear_pending()
        if self._keep:
            data = self._data
            data.update(puts)
            removed = frozenset(key for key in deletes if data.pop(key, _MISSING) is not _MISSING)
        else:
            removed = frozenset(deletes)
        self._revision = revision
        self.batches += 1
        self._publish(MirrorChange(puts=MappingProxyType(puts), deletes=removed, reload=False,
                                   revision=revision))

    def _clear_pending(self) -> None:
        self._puts = {}
        self._deletes = set()
        self._pending_revision = 0

    def _cancel_flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    def _publish(self, change: MirrorChange) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(change)
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


async def _close_quietly(client: aetcd.Client) -> None:
    try:
        async with asyncio.timeout(2.0):  # not wait_for (3.11)
            await client.close()
    except Exception:  # noqa: BLE001 - closing a broken channel may complain
        pass
