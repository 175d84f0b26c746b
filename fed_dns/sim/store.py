"""The objects of one simulated cluster: one resourceVersion counter (like etcd's revision),
a bounded event history for watches, and the watchers to fan events out to."""

from __future__ import annotations

import secrets
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fed_dns.sim import defaults
from fed_dns.sim.kinds import DEPLOYMENT, KINDS, NAMESPACE, Kind
from fed_dns.sim.status import ApiError, already_exists, conflict, expired, not_found
from fed_dns.sim.watchers import Event, Watcher, clone, dumps, event_line

Key = tuple[str, str]  # (namespace or "", name)
Matcher = Callable[[dict], bool]
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(slots=True, eq=False)
class Stored:
    """An object as stored: the dict (never mutated after storing) and its JSON bytes."""

    obj: dict
    data: bytes


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(kind: Kind, obj: dict) -> Key:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace", "") if kind.namespaced else "", meta.get("name", ""))


def _content(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class Store:
    def __init__(self, *, history_limit: int = 10_000, max_watch_buffer: int = 64 << 20,
                 ready_limit: int | None = None) -> None:
        self.rv = 0
        self.compacted = 0  # a watch from a resourceVersion below this gets 410 Expired
        self.history_limit = history_limit
        self.max_watch_buffer = max_watch_buffer
        self._ready_limit = ready_limit
        self._items: dict[str, dict[Key, Stored]] = {k.key: {} for k in KINDS}
        self._history: deque[Event] = deque()
        self._watchers: dict[str, set[Watcher]] = {k.key: set() for k in KINDS}
        self._ips = defaults.IpAllocator()
        for ns in DEFAULT_NAMESPACES:
            self.put(NAMESPACE, {"metadata": {"name": ns}})

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
            import bisect
            keys = keys[bisect.bisect_right(keys, after):]
        out: list[Stored] = []
        for key in keys:
            if namespace is not None and key[0] != namespace:
                continue
            stored = items[key]
            if matcher is not None and not matcher(stored.obj):
                continue
            if limit and len(out) == limit:
                return out, _key(kind, out[-1].obj)
            out.append(stored)
        return out, None

    def count(self, kind: Kind) -> int:
        return len(self._items[kind.key])

    # -- writes --------------------------------------------------------------------------

    def create(self, kind: Kind, obj: dict, *, strict: bool = True) -> Stored:
        key = _key(kind, obj)
        if not key[1] and (obj.get("metadata") or {}).get("generateName"):
            obj["metadata"]["name"] = obj["metadata"]["generateName"] + secrets.token_hex(3)[:5]
            key = _key(kind, obj)
        if strict:
            defaults.validate(kind, obj)
            self._require_namespace(kind, key[0])
        if key in self._items[kind.key]:
            raise already_exists(resource=kind.plural, name=key[1], group=kind.group)
        return self._write(kind, key, obj, old=None, keep_status=not strict)

    def update(self, kind: Kind, obj: dict, *, subresource: str | None = None,
               strict: bool = True) -> Stored:
        """PUT semantics: a resourceVersion in the body must be the current one (else 409)."""
        key = _key(kind, obj)
        old = self._items[kind.key].get(key)
        if old is None:
            raise not_found(resource=kind.plural, name=key[1], group=kind.group)
        sent_rv = (obj.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != old.obj["metadata"]["resourceVersion"]:
            raise conflict(resource=kind.plural, name=key[1], group=kind.group)
        if strict:
            defaults.validate(kind, obj)
        if subresource == "status":
            merged = dict(old.obj, status=clone(obj.get("status") or {}))
            return self._write(kind, key, merged, old=old, keep_status=True)
        return self._write(kind, key, obj, old=old, keep_status=not strict)

    def put(self, kind: Kind, obj: dict) -> Stored:
        """Create or replace as given (the Python-side `apply`): no validation, status kept."""
        key = _key(kind, obj)
        if kind.namespaced and key[0] and self.get(NAMESPACE, namespace="", name=key[0]) is None:
            self.put(NAMESPACE, {"metadata": {"name": key[0]}})
        return self._write(kind, key, obj, old=self._items[kind.key].get(key), keep_status=True)

    def delete(self, kind: Kind, *, namespace: str, name: str,
               preconditions: dict | None = None) -> Stored:
        old = self.require(kind, namespace=namespace, name=name)
        pre = preconditions or {}
        meta = old.obj["metadata"]
        if (pre.get("uid") and pre["uid"] != meta.get("uid")) or \
                (pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]):
            raise conflict(resource=kind.plural, name=name, group=kind.group)
        if kind is NAMESPACE:
            for other in KINDS:
                if other.namespaced:
                    for key in [k for k in self._items[other.key] if k[0] == name]:
                        self.delete(other, namespace=key[0], name=key[1])
        key = (namespace if kind.namespaced else "", name)
        del self._items[kind.key][key]
        self.rv += 1
        obj = dict(old.obj, metadata=dict(meta, resourceVersion=str(self.rv)))
        stored = Stored(obj=obj, data=dumps(obj))
        self._publish(Event(rv=self.rv, resource=kind.key, type="DELETED", obj=obj,
                            data=stored.data))
        return stored

    @property
    def ready_limit(self) -> int | None:
        return self._ready_limit

    def set_ready_limit(self, limit: int | None) -> None:
        """Cap every Deployment's ready replicas (None: all ready); statuses are recomputed."""
        self._ready_limit = limit
        for key, stored in list(self._items[DEPLOYMENT.key].items()):
            status = defaults.deployment_status(stored.obj, ready_limit=limit)
            if status != stored.obj.get("status"):
                self._write(DEPLOYMENT, key, dict(stored.obj, status=status), old=stored,
                            keep_status=True)

    def _require_namespace(self, kind: Kind, namespace: str) -> None:
        if not kind.namespaced:
            return
        ns = self.get(NAMESPACE, namespace="", name=namespace)
        if ns is None:
            raise not_found(resource="namespaces", name=namespace)
        if ns.obj["metadata"].get("deletionTimestamp"):
            raise ApiError(code=403, reason="Forbidden", message=(
                f"{kind.plural} is forbidden: unable to create new content in namespace "
                f"{namespace} because it is being terminated"))

    def terminate_namespace(self, name: str) -> Stored:
        """The first half of deleting a namespace over the API: it turns Terminating (and
        takes no new objects); `delete` finishes it later, as the namespace controller does."""
        ns = self.require(NAMESPACE, namespace="", name=name)
        if ns.obj["metadata"].get("deletionTimestamp"):
            return ns
        obj = dict(ns.obj, status={"phase": "Terminating"})
        obj["metadata"] = dict(obj["metadata"], deletionTimestamp=_now())
        return self._write(NAMESPACE, ("", name), obj, old=ns, keep_status=True)

    def _write(self, kind: Kind, key: Key, obj: dict, *, old: Stored | None,
               keep_status: bool) -> Stored:
        obj = clone(obj)
        obj["apiVersion"] = kind.api_version
        obj["kind"] = kind.kind
        meta = obj.setdefault("metadata", {})
        meta["name"] = key[1]
        if kind.namespaced:
            meta["namespace"] = key[0]
        else:
            meta.pop("namespace", None)
        self.rv += 1
        if old is None:
            meta["uid"] = meta.get("uid") or str(uuid.uuid4())
            meta["creationTimestamp"] = meta.get("creationTimestamp") or _now()
            meta["generation"] = 1
        else:
            old_meta = old.obj["metadata"]
            meta["uid"] = old_meta["uid"]
            meta["creationTimestamp"] = old_meta["creationTimestamp"]
            meta["generation"] = old_meta.get("generation", 1)
            if not keep_status:
                obj["status"] = clone(old.obj.get("status") or {})
        if old is None and not keep_status:
            obj.pop("status", None)
        meta["resourceVersion"] = str(self.rv)
        defaults.fill(kind, obj, ips=self._ips, old=old.obj if old else None,
                      ready_limit=self._ready_limit)
        if old is not None and _content(obj) != _content(old.obj):
            meta["generation"] += 1  # the spec changed (compared with defaults filled in)
            if kind is DEPLOYMENT:
                obj["status"] = defaults.deployment_status(obj, ready_limit=self._ready_limit)
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
                    max_buffer=self.max_watch_buffer)
        if resource_version is None or send_initial:
            items, _ = self.list(kind, namespace=namespace, matcher=matcher)
            for stored in items:
                w.push(event_line("ADDED", stored.data))
            if send_initial:
                w.push(bookmark(kind, self.rv, initial_events_end=True))
        else:
            if resource_version < self.compacted:
                raise expired(rv=resource_version, oldest=self.compacted)
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


def bookmark(kind: Kind, rv: int, *, initial_events_end: bool = False) -> bytes:
    meta: dict = {"resourceVersion": str(rv)}
    if initial_events_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return event_line("BOOKMARK", dumps({"kind": kind.kind, "apiVersion": kind.api_version,
                                         "metadata": meta}))
