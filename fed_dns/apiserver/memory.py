"""The memory store: objects of one process, one resourceVersion counter (like etcd's
revision), a bounded event history for watches, and the watchers to fan events out to.

`MemoryStore` is synchronous (the simulator changes its objects from Python directly);
`MemoryStorage` is its `storage.Storage` face for the HTTP handlers. Subclasses add the
behaviour of their kinds through the hooks `validate`, `fill`, `on_spec_change`,
`before_create` and `before_delete`.
"""

from __future__ import annotations

import bisect
from collections import deque

from fed_dns.apiserver.kinds import Kind
from fed_dns.apiserver.status import (already_exists, conflict, continue_expired, expired,
                                      not_found)
from fed_dns.apiserver.storage import (Key, Listing, Matcher, Stored, bookmark, bump_generation,
                                       generate_name, key_of, preconditions_fail, prepare, stale,
                                       with_status)
from fed_dns.apiserver.watchers import Event, Watcher, dumps, event_line


class MemoryStore:
    def __init__(self, kinds: tuple[Kind, ...], *, history_limit: int = 10_000,
                 max_watch_buffer: int = 64 << 20) -> None:
        self.kinds = kinds
        self.rv = 0
        self.compacted = 0  # a watch from a resourceVersion below this gets 410 Expired
        self.history_limit = history_limit
        self.max_watch_buffer = max_watch_buffer
        self._items: dict[str, dict[Key, Stored]] = {k.key: {} for k in kinds}
        self._history: deque[Event] = deque()
        self._watchers: dict[str, set[Watcher]] = {k.key: set() for k in kinds}

    # -- hooks ---------------------------------------------------------------------------

    def validate(self, kind: Kind, obj: dict) -> None:
        """Raise ApiError (422) for what the server refuses (strict writes only)."""

    def fill(self, kind: Kind, obj: dict, *, old: dict | None) -> None:
        """Server-side defaults, in place, on every write."""

    def on_spec_change(self, kind: Kind, obj: dict) -> None:
        """After a write changed the spec (generation bumped), in place."""

    def before_create(self, kind: Kind, key: Key) -> None:
        """Raise ApiError to refuse a create at `key` (strict creates only)."""

    def before_delete(self, kind: Kind, key: Key) -> None:
        """Called before the object at `key` goes (cascades go here)."""

    # -- reads ---------------------------------------------------------------------------

    def get(self, kind: Kind, *, namespace: str, name: str) -> Stored | None:
        return self._items[kind.key].get((namespace if kind.namespaced else "", name))

    def require(self, kind: Kind, *, namespace: str, name: str) -> Stored:
        found = self.get(kind, namespace=namespace, name=name)
        if found is None:
            raise not_found(resource=kind.plural, name=name, group=kind.group)
        return found

    def list(self, kind: Kind, *, namespace: str | None = None, matcher: Matcher | None = None,
             after: Key | None = None, limit: int = 0) -> tuple[list[Stored], Key | None]:
        """Objects in (namespace, name) order; with `limit`, also the key to continue after."""
        items = self._items[kind.key]
        keys = sorted(items)
        if after is not None:
            keys = keys[bisect.bisect_right(keys, after):]
        out: list[Stored] = []
        for key in keys:
            if namespace is not None and key[0] != namespace:
                continue
            stored = items[key]
            if matcher is not None and not matcher(stored.obj):
                continue
            if limit and len(out) == limit:
                return out, key_of(kind, out[-1].obj)
            out.append(stored)
        return out, None

    def count(self, kind: Kind) -> int:
        return len(self._items[kind.key])

    # -- writes --------------------------------------------------------------------------

    def create(self, kind: Kind, obj: dict, *, strict: bool = True) -> Stored:
        generate_name(obj)
        key = key_of(kind, obj)
        if strict:
            self.validate(kind, obj)
            self.before_create(kind, key)
        if key in self._items[kind.key]:
            raise already_exists(resource=kind.plural, name=key[1], group=kind.group)
        return self._write(kind, key, obj, old=None, keep_status=not strict)

    def update(self, kind: Kind, obj: dict, *, subresource: str | None = None,
               strict: bool = True) -> Stored:
        """PUT semantics: a resourceVersion in the body must be the current one (else 409)."""
        key = key_of(kind, obj)
        old = self._items[kind.key].get(key)
        if old is None:
            raise not_found(resource=kind.plural, name=key[1], group=kind.group)
        if stale((obj.get("metadata") or {}).get("resourceVersion"),
                 old.obj["metadata"]["resourceVersion"]):
            raise conflict(resource=kind.plural, name=key[1], group=kind.group)
        if strict:
            self.validate(kind, obj)
        if subresource == "status":
            return self._write(kind, key, with_status(old.obj, obj), old=old, keep_status=True)
        return self._write(kind, key, obj, old=old, keep_status=not strict)

    def put(self, kind: Kind, obj: dict) -> Stored:
        """Create or replace as given (the Python-side `apply`): no validation, status kept."""
        key = key_of(kind, obj)
        return self._write(kind, key, obj, old=self._items[kind.key].get(key), keep_status=True)

    def delete(self, kind: Kind, *, namespace: str, name: str,
               preconditions: dict | None = None) -> Stored:
        old = self.require(kind, namespace=namespace, name=name)
        meta = old.obj["metadata"]
        if preconditions_fail(meta, preconditions):
            raise conflict(resource=kind.plural, name=name, group=kind.group)
        key = (namespace if kind.namespaced else "", name)
        self.before_delete(kind, key)
        del self._items[kind.key][key]
        self.rv += 1
        obj = dict(old.obj, metadata=dict(meta, resourceVersion=str(self.rv)))
        stored = Stored(obj=obj, data=dumps(obj))
        self._publish(Event(rv=self.rv, resource=kind.key, type="DELETED", obj=obj,
                            data=stored.data))
        return stored

    def _write(self, kind: Kind, key: Key, obj: dict, *, old: Stored | None,
               keep_status: bool) -> Stored:
        obj = prepare(kind, key, obj, old=old.obj if old else None, keep_status=keep_status)
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.fill(kind, obj, old=old.obj if old else None)
        if bump_generation(obj, old=old.obj if old else None):
            self.on_spec_change(kind, obj)
        stored = Stored(obj=obj, data=dumps(obj))
        self._items[kind.key][key] = stored
        self._publish(Event(rv=self.rv, resource=kind.key,
                            type="ADDED" if old is None else "MODIFIED",
                            obj=obj, data=stored.data, old=old.obj if old else None))
        return stored

    # -- history and watches -------------------------------------------------------------

    def _publish(self, event: Event) -> None:
        self._history.append(event)
        while len(self._history) > self.history_limit:
            self.compacted = self._history.popleft().rv
        for watcher in self._watchers[event.resource]:
            watcher.offer(event)

    def compact(self) -> None:
        """Forget the history: a watch from any older resourceVersion gets 410 Expired."""
        self._history.clear()
        self.compacted = self.rv

    def watch(self, kind: Kind, *, namespace: str | None, matcher: Matcher | None,
              resource_version: int | None, send_initial: bool = False) -> Watcher:
        """Register a watcher, already holding what it must see first.

        `resource_version` None (or 0): a synthetic ADDED per current object, then live
        events. Otherwise every event after it (410 Expired when compacted away).
        """
        w = Watcher(resource=kind.key, namespace=namespace, matcher=matcher,
                    max_buffer=self.max_watch_buffer, rv=self.rv)
        if resource_version is None or send_initial:
            items, _ = self.list(kind, namespace=namespace, matcher=matcher)
            for stored in items:
                w.push(event_line("ADDED", stored.data))
            if send_initial:
                w.push(bookmark(kind, self.rv, initial_events_end=True))
        else:
            if resource_version < self.compacted:
                raise expired(rv=resource_version, oldest=self.compacted)
            w.rv = resource_version
            for event in self._history:
                if event.rv > resource_version and event.resource == kind.key:
                    w.offer(event)
        self._watchers[kind.key].add(w)
        return w

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers[watcher.resource].discard(watcher)
        watcher.close()

    def close_watchers(self) -> None:
        for watchers in self._watchers.values():
            for w in list(watchers):
                self.unwatch(w)

    def watcher_count(self) -> int:
        return sum(len(w) for w in self._watchers.values())


class MemoryStorage:
    """The `storage.Storage` face of a MemoryStore (every call completes at once)."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    async def get(self, kind: Kind, *, namespace: str, name: str) -> Stored | None:
        return self.store.get(kind, namespace=namespace, name=name)

    async def list(self, kind: Kind, *, namespace: str | None, matcher: Matcher | None,
                   after: Key | None = None, limit: int = 0,
                   revision: int | None = None) -> Listing:
        if revision is not None and revision < self.store.compacted:
            raise continue_expired()  # a later page of a list whose revision is gone
        items, last = self.store.list(kind, namespace=namespace, matcher=matcher, after=after,
                                      limit=limit)
        return Listing(items=items, after=last, revision=revision or self.store.rv)

    async def create(self, kind: Kind, obj: dict) -> Stored:
        return self.store.create(kind, obj)

    async def update(self, kind: Kind, obj: dict, *, subresource: str | None = None) -> Stored:
        return self.store.update(kind, obj, subresource=subresource)

    async def delete(self, kind: Kind, *, namespace: str, name: str,
                     preconditions: dict | None = None) -> Stored:
        return self.store.delete(kind, namespace=namespace, name=name,
                                 preconditions=preconditions)

    async def watch(self, kind: Kind, *, namespace: str | None, matcher: Matcher | None,
                    resource_version: int | None, send_initial: bool = False) -> Watcher:
        return self.store.watch(kind, namespace=namespace, matcher=matcher,
                                resource_version=resource_version, send_initial=send_initial)

    def unwatch(self, watcher: Watcher) -> None:
        self.store.unwatch(watcher)

    def bookmark_revision(self, watcher: Watcher) -> int:
        return self.store.rv
