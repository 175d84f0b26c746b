"""The etcd store, laid out as kube-apiserver's (k8s.io/apiserver/pkg/storage/etcd3).

Objects are JSON under `<prefix><group>/<resource>/<namespace>/<name>` (cluster-scoped kinds:
`<prefix><group>/<resource>/<name>`; the core group is `core`). The stored JSON has no
resourceVersion: it is the key's etcd mod revision, set on every read. Creates are a
transaction on `create_revision == 0`; updates and deletes compare-and-swap on the mod
revision read (a stale resourceVersion sent by the client: 409 Conflict; a concurrent write
without one: read again and retry). Lists read one revision, in pages (a continue token
pins it; compacted: 410). Watches are etcd watches from a revision (compacted: 410).

It speaks to aetcd itself with a client the caller connected (fed_dns.etcd.client in the
app), so that apiserver needs no other package of ours. Every replica of fed-dns may serve
from the same etcd: all the state is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import aetcd
import grpc
from aetcd import rpc, utils

from fed_dns.apiserver.kinds import Kind
from fed_dns.apiserver.status import (ApiError, already_exists, conflict, continue_expired,
                                      expired, not_found)
from fed_dns.apiserver.storage import (Key, Listing, Matcher, Stored, bookmark, bump_generation,
                                       generate_name, key_of, preconditions_fail, prepare, stale,
                                       with_status)
from fed_dns.apiserver.watchers import Event, Watcher, dumps, event_line

log = logging.getLogger(__name__)

PAGE = 500  # keys a range request asks for while filling a list
ATTEMPTS = 16  # compare-and-swap rounds lost to concurrent writers before giving up (409)


def _unavailable(exc: grpc.aio.AioRpcError) -> ApiError:
    return ApiError(code=503, reason="ServiceUnavailable",
                    message=f"etcd: {exc.details() or exc.code().name}")


class EtcdStorage:
    def __init__(self, *, client: aetcd.Client, prefix: str, timeout: float = 5.0,
                 max_watch_buffer: int = 64 << 20) -> None:
        if not prefix.endswith("/"):
            prefix += "/"
        self.client = client
        self.prefix = prefix
        self.timeout = timeout
        self.max_watch_buffer = max_watch_buffer
        self._watchers: set[Watcher] = set()

    # -- keys ----------------------------------------------------------------------------

    def _resource_prefix(self, kind: Kind, namespace: str | None) -> bytes:
        base = f"{self.prefix}{kind.group or 'core'}/{kind.plural}/"
        if kind.namespaced and namespace is not None:
            base += f"{namespace}/"
        return base.encode()

    def _key(self, kind: Kind, key: Key) -> bytes:
        namespace, name = key
        return self._resource_prefix(kind, namespace if kind.namespaced else None) + \
            name.encode()

    # -- etcd calls ----------------------------------------------------------------------

    async def _range(self, request: rpc.RangeRequest) -> rpc.RangeResponse:
        try:
            return await self.client.kvstub.Range(request, timeout=self.timeout,
                                                  metadata=self.client.metadata)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.OUT_OF_RANGE:
                raise continue_expired() from None
            raise _unavailable(exc) from None

    async def _txn(self, compare: rpc.Compare, op: rpc.RequestOp) -> rpc.TxnResponse:
        request = rpc.TxnRequest(compare=[compare], success=[op], failure=[])
        try:
            return await self.client.kvstub.Txn(request, timeout=self.timeout,
                                                metadata=self.client.metadata)
        except grpc.aio.AioRpcError as exc:
            raise _unavailable(exc) from None

    async def _read(self, kind: Kind, key: Key) -> rpc.KeyValue | None:
        response = await self._range(rpc.RangeRequest(key=self._key(kind, key)))
        return response.kvs[0] if response.kvs else None

    @staticmethod
    def _stored(value: bytes, revision: int) -> Stored:
        obj = json.loads(value)
        obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
        return Stored(obj=obj, data=dumps(obj))

    @staticmethod
    def _value(obj: dict) -> bytes:
        meta = dict(obj["metadata"])
        meta.pop("resourceVersion", None)
        return dumps(dict(obj, metadata=meta))

    # -- reads ---------------------------------------------------------------------------

    async def get(self, kind: Kind, *, namespace: str, name: str) -> Stored | None:
        kv = await self._read(kind, (namespace if kind.namespaced else "", name))
        return None if kv is None else self._stored(kv.value, kv.mod_revision)

    async def list(self, kind: Kind, *, namespace: str | None, matcher: Matcher | None,
                   after: Key | None = None, limit: int = 0,
                   revision: int | None = None) -> Listing:
        prefix = self._resource_prefix(kind, namespace)
        end = utils.prefix_range_end(prefix)
        start = self._key(kind, after) + b"\x00" if after is not None else prefix
        revision = revision or 0
        items: list[Stored] = []
        while True:
            page = max(PAGE, limit) if limit else 0
            response = await self._range(rpc.RangeRequest(key=start, range_end=end, limit=page,
                                                          revision=revision))
            if not revision:
                revision = response.header.revision
            for kv in response.kvs:
                stored = self._stored(kv.value, kv.mod_revision)
                if matcher is not None and not matcher(stored.obj):
                    continue
                if limit and len(items) == limit:
                    return Listing(items=items, after=key_of(kind, items[-1].obj),
                                   revision=revision)
                items.append(stored)
            if not response.more or not response.kvs:
                return Listing(items=items, after=None, revision=revision)
            start = response.kvs[-1].key + b"\x00"

    # -- writes --------------------------------------------------------------------------

    async def create(self, kind: Kind, obj: dict) -> Stored:
        generate_name(obj)
        key = key_of(kind, obj)
        if not key[1]:
            raise ApiError(code=422, reason="Invalid",
                           message=f'{kind.kind} "" is invalid: metadata.name: Required value')
        new = prepare(kind, key, obj, old=None, keep_status=False)
        new["metadata"].pop("resourceVersion", None)
        etcd_key = self._key(kind, key)
        response = await self._txn(
            rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE, key=etcd_key,
                        create_revision=0),
            rpc.RequestOp(request_put=rpc.PutRequest(key=etcd_key, value=self._value(new))))
        if not response.succeeded:
            raise already_exists(resource=kind.plural, name=key[1], group=kind.group)
        new["metadata"]["resourceVersion"] = str(response.header.revision)
        return Stored(obj=new, data=dumps(new))

    async def update(self, kind: Kind, obj: dict, *, subresource: str | None = None) -> Stored:
        key = key_of(kind, obj)
        sent_rv = (obj.get("metadata") or {}).get("resourceVersion")
        etcd_key = self._key(kind, key)
        for _ in range(ATTEMPTS):
            kv = await self._read(kind, key)
            if kv is None:
                raise not_found(resource=kind.plural, name=key[1], group=kind.group)
            old = self._stored(kv.value, kv.mod_revision).obj
            if stale(sent_rv, old["metadata"]["resourceVersion"]):
                raise conflict(resource=kind.plural, name=key[1], group=kind.group)
            if subresource == "status":
                new = prepare(kind, key, with_status(old, obj), old=old, keep_status=True)
            else:
                new = prepare(kind, key, obj, old=old, keep_status=False)
            bump_generation(new, old=old)
            response = await self._txn(
                rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.MOD, key=etcd_key,
                            mod_revision=kv.mod_revision),
                rpc.RequestOp(request_put=rpc.PutRequest(key=etcd_key, value=self._value(new))))
            if response.succeeded:
                new["metadata"]["resourceVersion"] = str(response.header.revision)
                return Stored(obj=new, data=dumps(new))
            if sent_rv:
                raise conflict(resource=kind.plural, name=key[1], group=kind.group)
        raise conflict(resource=kind.plural, name=key[1], group=kind.group)

    async def delete(self, kind: Kind, *, namespace: str, name: str,
                     preconditions: dict | None = None) -> Stored:
        key = (namespace if kind.namespaced else "", name)
        etcd_key = self._key(kind, key)
        for _ in range(ATTEMPTS):
            kv = await self._read(kind, key)
            if kv is None:
                raise not_found(resource=kind.plural, name=name, group=kind.group)
            old = self._stored(kv.value, kv.mod_revision).obj
            if preconditions_fail(old["metadata"], preconditions):
                raise conflict(resource=kind.plural, name=name, group=kind.group)
            response = await self._txn(
                rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.MOD, key=etcd_key,
                            mod_revision=kv.mod_revision),
                rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=etcd_key)))
            if response.succeeded:
                old["metadata"]["resourceVersion"] = str(response.header.revision)
                return Stored(obj=old, data=dumps(old))
        raise conflict(resource=kind.plural, name=name, group=kind.group)

    # -- watches -------------------------------------------------------------------------

    async def watch(self, kind: Kind, *, namespace: str | None, matcher: Matcher | None,
                    resource_version: int | None, send_initial: bool = False) -> Watcher:
        w = Watcher(resource=kind.key, namespace=namespace, matcher=matcher,
                    max_buffer=self.max_watch_buffer)
        if resource_version is None or send_initial:
            listing = await self.list(kind, namespace=namespace, matcher=matcher)
            for stored in listing.items:
                w.push(event_line("ADDED", stored.data))
            start = listing.revision
            if send_initial:
                w.push(bookmark(kind, start, initial_events_end=True))
        else:
            start = resource_version
            await self._readable(kind, start)
        w.rv = start
        prefix = self._resource_prefix(kind, namespace)
        try:
            stream = await self.client.watch(prefix, range_end=utils.prefix_range_end(prefix),
                                             start_revision=start + 1, prev_kv=True)
        except aetcd.RevisionCompactedError as exc:
            raise expired(rv=start, oldest=exc.compacted_revision) from None
        except aetcd.ClientError as exc:
            raise ApiError(code=503, reason="ServiceUnavailable", message=f"etcd: {exc}") \
                from None
        w.feed = asyncio.get_running_loop().create_task(self._feed(kind, w, stream))
        self._watchers.add(w)
        return w

    async def _readable(self, kind: Kind, revision: int) -> None:
        """410 Expired when etcd compacted `revision` away (an etcd watch would only say so
        once created)."""
        prefix = self._resource_prefix(kind, None)
        try:
            await self._range(rpc.RangeRequest(key=prefix, range_end=utils.prefix_range_end(prefix),
                                               count_only=True, revision=revision))
        except ApiError as exc:
            if exc.code == 410:
                raise expired(rv=revision, oldest=0) from None
            raise

    async def _feed(self, kind: Kind, w: Watcher, stream: aetcd.Watch) -> None:
        try:
            async for event in stream:
                w.offer(self._event(kind, event))
        except asyncio.CancelledError:
            raise
        except aetcd.RevisionCompactedError as exc:
            # Fell behind a compaction: one ERROR event (410), as kube-apiserver sends.
            w.push(event_line("ERROR", dumps(expired(rv=w.rv, oldest=exc.compacted_revision)
                                             .status)))
        except Exception as exc:  # noqa: BLE001 - etcd went away: the client re-watches
            log.info("etcd watch of %s ended: %s", kind.key, exc)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(stream.cancel())
            w.closed = True
            w.wakeup.set()

    def _event(self, kind: Kind, event: aetcd.Event) -> Event:
        kv, prev = event.kv, event.prev_kv
        # etcd sends an empty previous key-value for a created key
        old = self._stored(prev.value, prev.mod_revision).obj \
            if prev is not None and prev.value else None
        if event.kind == "DELETE":
            obj = dict(old or {"metadata": {}})
            obj["metadata"] = dict(obj.get("metadata") or {},
                                   resourceVersion=str(kv.mod_revision))
            return Event(rv=kv.mod_revision, resource=kind.key, type="DELETED", obj=obj,
                         data=dumps(obj))
        stored = self._stored(kv.value, kv.mod_revision)
        kind_of = "ADDED" if kv.create_revision == kv.mod_revision else "MODIFIED"
        return Event(rv=kv.mod_revision, resource=kind.key, type=kind_of, obj=stored.obj,
                     data=stored.data, old=old)

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)
        watcher.close()

    def close_watchers(self) -> None:
        for w in list(self._watchers):
            self.unwatch(w)

    def bookmark_revision(self, watcher: Watcher) -> int:
        return watcher.rv
