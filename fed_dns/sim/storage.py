"""The simulator's face for the HTTP handlers: the memory storage, except that a namespace
deleted over the API goes Terminating first and vanishes (with its contents) a little later,
so `kubectl delete -f` of a namespace and its objects finds them still there."""

from __future__ import annotations

import asyncio

from fed_dns.apiserver.memory import MemoryStorage
from fed_dns.apiserver.storage import Stored
from fed_dns.sim.kinds import NAMESPACE, Kind
from fed_dns.sim.store import Store


class SimStorage(MemoryStorage):
    store: Store

    def __init__(self, store: Store, *, namespace_grace: float = 0.5) -> None:
        super().__init__(store)
        self.namespace_grace = namespace_grace

    async def delete(self, kind: Kind, *, namespace: str, name: str,
                     preconditions: dict | None = None) -> Stored:
        if kind is not NAMESPACE:
            return await super().delete(kind, namespace=namespace, name=name,
                                        preconditions=preconditions)
        store = self.store
        stored = store.terminate_namespace(name)
        uid = stored.obj["metadata"]["uid"]

        def finish() -> None:
            current = store.get(NAMESPACE, namespace="", name=name)
            if current is not None and current.obj["metadata"]["uid"] == uid:
                store.delete(NAMESPACE, namespace="", name=name)

        asyncio.get_running_loop().call_later(self.namespace_grace, finish)
        return stored
