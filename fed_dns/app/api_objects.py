"""The federated objects the replica loop reads: a list/watch cache over the federation API's
storage (etcd or memory) of the workload kinds and the policies that shape them.

Every change names the workloads it touches through `on_change(keys)`, O(what it touches):
a Deployment, ReplicaSet or FederatedDeployment itself; a ReplicaSchedulingPreference its
FederatedDeployment of the same name; a Karmada policy the Deployments of its namespace.
A write of status only (ours, or anyone's) touches nothing: the loop's own status writes
never wake it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable

from fed_dns.apiserver import fedkinds
from fed_dns.apiserver.kinds import Kind
from fed_dns.apiserver.status import ApiError
from fed_dns.apiserver.storage import content

log = logging.getLogger("fed_dns.replicas")

WORKLOAD_KINDS = (fedkinds.DEPLOYMENT, fedkinds.REPLICA_SET, fedkinds.FEDERATED_DEPLOYMENT)
POLICY_KINDS = (fedkinds.REPLICA_SCHEDULING_PREFERENCE, fedkinds.PROPAGATION_POLICY,
                fedkinds.OVERRIDE_POLICY)
KINDS = WORKLOAD_KINDS + POLICY_KINDS

WorkloadKey = tuple[str, str, str]  # (federated kind, namespace, name)
OnChange = Callable[[Iterable[WorkloadKey]], None]


def _fingerprint(obj: dict) -> tuple:
    """What a workload's plan depends on: everything but status and resourceVersion."""
    meta = obj.get("metadata") or {}
    return (json.dumps(content(obj), sort_keys=True), json.dumps(meta.get("labels"), sort_keys=True),
            json.dumps(meta.get("annotations"), sort_keys=True), meta.get("generation"))


def _rv(obj: dict) -> int:
    rv = str((obj.get("metadata") or {}).get("resourceVersion") or "0")
    return int(rv) if rv.isdigit() else 0


class ApiObjects:
    def __init__(self, *, storage, on_change: OnChange, retry_max: float = 2.0) -> None:
        self.storage = storage
        self._on_change = on_change
        self._retry_max = retry_max
        self.objects: dict[str, dict[tuple[str, str], dict]] = {k.kind: {} for k in KINDS}
        self._prints: dict[tuple[str, str, str], tuple] = {}
        self.synced: dict[str, bool] = {k.kind: False for k in KINDS}
        self.on_synced: Callable[[], None] | None = None

    @property
    def listed(self) -> bool:
        return all(self.synced.values())

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        return self.objects[kind].get((namespace, name))

    def in_namespace(self, kind: str, namespace: str) -> list[dict]:
        return [o for (ns, _), o in sorted(self.objects[kind].items()) if ns == namespace]

    def workload_keys(self) -> list[WorkloadKey]:
        return [(k.kind, ns, name) for k in WORKLOAD_KINDS for (ns, name) in self.objects[k.kind]]

    # -- what a change touches -------------------------------------------------------------

    def _touched(self, kind: str, namespace: str, name: str) -> list[WorkloadKey]:
        if kind in ("Deployment", "ReplicaSet", "FederatedDeployment"):
            return [(kind, namespace, name)]
        if kind == "ReplicaSchedulingPreference":
            return [("FederatedDeployment", namespace, name)]
        return [("Deployment", ns, n) for (ns, n) in self.objects["Deployment"] if ns == namespace]

    def _put(self, kind: str, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        have = self.objects[kind].get(key)
        if have is not None and _rv(have) > _rv(obj):  # our write's answer came first
            return
        self.objects[kind][key] = obj
        fp = _fingerprint(obj)
        if self._prints.get((kind, *key)) != fp:
            self._prints[(kind, *key)] = fp
            self._on_change(self._touched(kind, *key))

    def _remove(self, kind: str, namespace: str, name: str) -> None:
        touched = self._touched(kind, namespace, name)  # before: policies look at their peers
        if self.objects[kind].pop((namespace, name), None) is not None:
            self._prints.pop((kind, namespace, name), None)
            self._on_change(touched)

    def updated(self, kind: str, obj: dict) -> None:
        """Our own write's answer (a status write): kept, so the next write carries its rv."""
        self._put(kind, obj)

    # -- list and watch --------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for kind in KINDS:
                group.create_task(self._follow(kind), name=f"replicas-api-{kind.kind}")

    async def _follow(self, kind: Kind) -> None:
        delay = 0.05
        while True:
            try:
                revision = await self._list(kind)
                delay = 0.05
                await self._watch(kind, revision)
            except ApiError as exc:
                log.warning("federation API: %s: %s", kind.plural, exc)
            self.synced[kind.kind] = False
            await asyncio.sleep(delay)
            delay = min(self._retry_max, delay * 2)

    async def _list(self, kind: Kind) -> int:
        listing = await self.storage.list(kind, namespace=None, matcher=None)
        items = {}
        for stored in listing.items:
            meta = stored.obj.get("metadata") or {}
            items[(meta.get("namespace") or "", meta.get("name") or "")] = stored.obj
        for key in [k for k in self.objects[kind.kind] if k not in items]:
            self._remove(kind.kind, *key)
        for obj in items.values():
            self._put(kind.kind, obj)
        was = self.listed
        self.synced[kind.kind] = True
        if not was and self.listed and self.on_synced is not None:
            self.on_synced()
        return listing.revision

    async def _watch(self, kind: Kind, revision: int) -> None:
        watcher = await self.storage.watch(kind, namespace=None, matcher=None,
                                           resource_version=revision)
        try:
            while True:
                await watcher.wakeup.wait()
                data = watcher.take()
                for line in data.splitlines():
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    kind_of = event.get("type")
                    if kind_of in ("ADDED", "MODIFIED"):
                        self._put(kind.kind, obj)
                    elif kind_of == "DELETED":
                        meta = obj.get("metadata") or {}
                        self._remove(kind.kind, meta.get("namespace") or "", meta.get("name") or "")
                    elif kind_of == "ERROR":
                        return
                if watcher.closed and not watcher.buffer:
                    return
        finally:
            self.storage.unwatch(watcher)
