"""One `storage.Storage` made of several: each kind to its own store, the rest to a default."""

from __future__ import annotations

from collections.abc import Mapping

from fed_dns.apiserver.kinds import Kind
from fed_dns.apiserver.storage import Key, Listing, Matcher, Storage, Stored
from fed_dns.apiserver.watchers import Watcher


class RoutedStorage:
    def __init__(self, default: Storage, *, by_kind: Mapping[str, Storage]) -> None:
        self.default = default
        self._by_kind = dict(by_kind)  # Kind.key -> store

    def _for(self, key: str) -> Storage:
        return self._by_kind.get(key, self.default)

    async def get(self, kind: Kind, *, namespace: str, name: str) -> Stored | None:
        return await self._for(kind.key).get(kind, namespace=namespace, name=name)

    async def list(self, kind: Kind, *, namespace: str | None, matcher: Matcher | None,
                   after: Key | None = None, limit: int = 0,
                   revision: int | None = None) -> Listing:
        return await self._for(kind.key).list(kind, namespace=namespace, matcher=matcher,
                                              after=after, limit=limit, revision=revision)

    async def create(self, kind: Kind, obj: dict) -> Stored:
        return await self._for(kind.key).create(kind, obj)

    async def update(self, kind: Kind, obj: dict, *, subresource: str | None = None) -> Stored:
        return await self._for(kind.key).update(kind, obj, subresource=subresource)

    async def delete(self, kind: Kind, *, namespace: str, name: str,
                     preconditions: dict | None = None) -> Stored:
        return await self._for(kind.key).delete(kind, namespace=namespace, name=name,
                                                preconditions=preconditions)

    async def watch(self, kind: Kind, *, namespace: str | None, matcher: Matcher | None,
                    resource_version: int | None, send_initial: bool = False) -> Watcher:
        return await self._for(kind.key).watch(kind, namespace=namespace, matcher=matcher,
                                               resource_version=resource_version,
                                               send_initial=send_initial)

    def unwatch(self, watcher: Watcher) -> None:
        self._for(watcher.resource).unwatch(watcher)

    def bookmark_revision(self, watcher: Watcher) -> int:
        return self._for(watcher.resource).bookmark_revision(watcher)
