"""ClusterWatcher: list-watch one member's Services and EndpointSlices into a ClusterView.

Per kind, layered loops (as kopf's watching.py): an endless outer loop that reconnects with
capped exponential backoff and jitter; a list (paged) that replaces the kind's objects with
a correct diff; watches from the last resourceVersion with bookmarks, re-listing on 410 Gone
and treating a silent stream as dead after `inactivity_timeout`.

Events are applied on the event loop in the order the API server sent them. Only the
Services they touch are recomputed, and every change made in one loop iteration is published
as one new ClusterView: `on_change(view, changed)`, where `changed` is the frozenset of the
ServiceKeys whose ServiceView was added, modified or removed by that flush (empty when only
`synced` flipped). The view outlives a broken cluster: it keeps the last known Services.

`view.services` is a read-only *live* mapping (`types.MappingProxyType`) over the watcher's
own dict: it is never copied per flush, so it always shows the current Services, also through
an older view object. A consumer that needs a snapshot copies it (on the loop: it changes
between loop callbacks, so never iterate it in another thread or across an await); one that
follows changes reads only `view.services[key]` for the keys in `changed`. Per event the work is O(the
Services it touches); a (re-)list is O(that kind).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field

import kubernetes.client

from fed_dns.model import ClusterSpec, ClusterView, ServiceKey, ServiceView
from fed_dns.watch import backoff, stream
from fed_dns.watch.compact import resource_version
from fed_dns.watch.index import ClusterObjects
from fed_dns.watch.parse import Rejection, WatchOptions

log = logging.getLogger("fed_dns.watch")

WATCH_TIMEOUT = 300.0  # seconds a watch request asks the server for (timeoutSeconds, jittered)
QUICK_END = 1.0  # a watch the server ends this soon with nothing in it counts as broken
FLUSH_CHUNK = 500  # Services recomputed per loop callback; a list of thousands takes several


@dataclass(slots=True)
class WatchStats:
    """Plain counters; the app publishes them as metrics. Keys of the dicts: kind, reason."""

    events: dict[str, int] = field(default_factory=dict)
    bookmarks: dict[str, int] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    relists: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None


UNDECIDABLE = "undecidable"  # a Service whose objects made the decision raise: kept as it was


def _count(counter: dict[str, int], key: str, n: int = 1) -> None:
    counter[key] = counter.get(key, 0) + n


class ClusterWatcher:
    def __init__(self, *, spec: ClusterSpec, api_client: kubernetes.client.ApiClient,
                 options: WatchOptions, on_change: Callable[[ClusterView, frozenset[ServiceKey]], None],
                 on_error: Callable[[str, str], None] | None = None) -> None:
        self.spec = spec
        self.options = options
        self.stats = WatchStats()
        self._api = api_client
        self._on_change = on_change
        self._on_error = on_error
        self._objects = ClusterObjects()
        self._services: dict[ServiceKey, ServiceView] = {}
        self._rejected: dict[ServiceKey, Rejection] = {}
        self._listed: set[str] = set()
        self._dirty: set[ServiceKey] = set()
        self._flush_pending = False
        self._synced = False
        self._live = types.MappingProxyType(self._services)
        self._view = ClusterView(cluster=spec.name, services=self._live)

    @property
    def view(self) -> ClusterView:
        return self._view

    @property
    def rejections(self) -> tuple[Rejection, ...]:
        """The exported Services currently not published because of an invalid name."""
        return tuple(self._rejected[k] for k in sorted(self._rejected))

    async def run(self) -> None:
        """Watch both kinds until cancelled (never returns by itself)."""
        async with asyncio.TaskGroup() as group:
            for resource in stream.RESOURCES:
                group.create_task(self._run_kind(resource), name=f"watch {self.spec.name} {resource.name}")

    async def _run_kind(self, resource: stream.Resource) -> None:
        rv: str | None = None  # None: list (first time, or after 410 Gone)
        attempt = 0
        while True:
            try:
                if rv is None:
                    rv = await self._list(resource)
                    attempt = 0
                rv, progressed = await self._watch(resource, rv)
                if progressed:
                    attempt = 0
            except stream.Gone:
                log.info("cluster %s: %s: resourceVersion expired, listing again", self.spec.name, resource.name)
                _count(self.stats.relists, resource.name)
                rv = None
            except Exception as exc:  # noqa: BLE001 - every failure restarts the loop
                self._broken(resource, exc)
                await asyncio.sleep(backoff.delay(attempt=attempt, initial=self.options.backoff_initial,
                                                  maximum=self.options.backoff_max, jitter=random.random()))
                attempt += 1

    def _broken(self, resource: stream.Resource, exc: BaseException) -> None:
        message = f"{resource.name}: {stream.describe(exc)}"
        _count(self.stats.restarts, resource.name)
        self.stats.last_error = message
        log.warning("cluster %s: watch broken: %s", self.spec.name, message)
        if self._on_error is not None:
            try:
                self._on_error(self.spec.name, message)
            except Exception:  # noqa: BLE001 - a callback must not stop the watcher
                log.exception("cluster %s: on_error failed", self.spec.name)

    async def _list(self, resource: stream.Resource) -> str:
        items, rv = await stream.list_with_deadline(
            page_timeout=self.options.inactivity_timeout, api_client=self._api, resource=resource,
            read_timeout=self.options.inactivity_timeout,
            thread_name=f"fed-dns-list-{self.spec.name}-{resource.name}")
        self._mark(self._objects.replace(kind=resource.name, objects=items))
        if resource.name not in self._listed:
            self._listed.add(resource.name)
            self._synced = len(self._listed) == len(stream.RESOURCES)
            self._schedule_flush()
        return rv

    async def _watch(self, resource: stream.Resource, rv: str) -> tuple[str, bool]:
        """One watch request until the server ends it: (last resourceVersion, got anything)."""
        started = time.monotonic()
        queue, call = stream.start_watch(
            thread_name=f"fed-dns-watch-{self.spec.name}-{resource.name}", api_client=self._api,
            resource=resource, resource_version=rv,
            bookmarks=self.options.bookmarks, server_timeout=WATCH_TIMEOUT,
            read_timeout=self.options.inactivity_timeout + 5.0)
        progressed = False
        try:
            async for batch in stream.events(queue=queue, inactivity_timeout=self.options.inactivity_timeout):
                progressed = True
                rv = self._apply(resource, batch, rv)
        finally:
            call.close()
        if not progressed and time.monotonic() - started < QUICK_END:
            raise stream.StreamError("the server ended the watch at once")
        return rv, progressed

    def _apply(self, resource: stream.Resource, batch: list[stream.Event], rv: str) -> str:
        kind = resource.name
        changes = 0
        for type_, obj in batch:
            if type_ == "ERROR":
                if obj.get("code") == 410:
                    self._count_events(kind, changes)
                    raise stream.Gone(str(obj.get("message") or "410 Gone"))
                raise stream.StreamError(f"watch error {obj.get('code')}: {str(obj.get('message'))[:200]}")
            if type_ not in stream.OBJECT_EVENTS:  # the raw object
                rv = resource_version(obj) or rv
                if type_ == "BOOKMARK":
                    _count(self.stats.bookmarks, kind)
                continue
            rv = obj.resource_version or rv
            changes += 1
            self._mark(self._objects.apply(kind=kind, type=type_, obj=obj))
        self._count_events(kind, changes)
        return rv

    def _count_events(self, kind: str, n: int) -> None:
        if n:
            _count(self.stats.events, kind, n)

    def _mark(self, keys: set[ServiceKey]) -> None:
        if keys:
            self._dirty |= keys
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Recompute the dirty Services; publish a new view if anything changed.

        At most FLUSH_CHUNK per call (the rest in the next loop iteration); the view turns
        `synced` once every kind is listed and nothing of the first lists is left to
        recompute, and stays so (a later re-list keeps serving the last known Services)."""
        self._flush_pending = False
        if len(self._dirty) <= FLUSH_CHUNK:
            dirty, self._dirty = self._dirty, set()
        else:  # a (re-)list: recompute in slices, letting the loop run between them
            dirty = set(itertools.islice(self._dirty, FLUSH_CHUNK))
            self._dirty -= dirty
            self._schedule_flush()
        synced = self._view.synced or (self._synced and not self._dirty)  # never flips back
        changed = frozenset(key for key in dirty if self._recompute(key))
        if not changed and synced == self._view.synced:
            return
        self._view = ClusterView(cluster=self.spec.name, synced=synced, services=self._live)
        try:
            self._on_change(self._view, changed)
        except Exception:  # noqa: BLE001 - a callback must not stop the watcher
            log.exception("cluster %s: on_change failed", self.spec.name)

    def _recompute(self, key: ServiceKey) -> bool:
        """One Service's view from its objects; True when the published view changes. A
        decision that raises (objects no API server sends) keeps what was published for
        that Service, is counted (`undecidable`) and logged; the rest of the chunk goes on."""
        try:
            result = self._objects.view_of(key=key, options=self.options, cluster=self.spec.name)
        except Exception as exc:  # noqa: BLE001 - one bad Service must not drop its chunk
            _count(self.stats.rejected, UNDECIDABLE)
            log.warning("cluster %s: Service %s/%s kept as it was: its objects could not be "
                        "decided (%s)", self.spec.name, key.namespace, key.name,
                        type(exc).__name__)
            return False
        return self._store(key, result)

    def _store(self, key: ServiceKey, result: ServiceView | Rejection | None) -> bool:
        """Record one Service's new state; True when the published view changes."""
        if isinstance(result, Rejection):
            if self._rejected.get(key) != result:
                self._rejected[key] = result
                _count(self.stats.rejected, result.reason)
                log.warning("cluster %s: Service %s not published: %s (%s)", self.spec.name, result.name,
                            result.reason, result.detail)
        else:
            self._rejected.pop(key, None)
        new = result if isinstance(result, ServiceView) else None
        old = self._services.get(key)
        if new == old:
            return False
        if new is None:
            del self._services[key]
        else:
            self._services[key] = new
        return True
