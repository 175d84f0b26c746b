"""The federated objects the replica loop reads: a list/watch cache over the federation API's
storage (etcd or memory) of the workload kinds and the policies that shape them.

Every change names the workloads it touches through `on_change(keys)`, O(what it touches):
a Deployment, ReplicaSet or FederatedDeployment itself; a ReplicaSchedulingPreference its
FederatedDeployment of the same name; a Karmada policy the Deployments of its namespace;
a ConfigMap, Secret or Service (the dependents that follow workloads into members, when the
federation API serves the kind) the workloads `dependent_users` names: those that reference
or select it, which the replica loop indexes as it plans them.
A write of status only (ours, or anyone's) touches nothing: the loop's own status writes
never wake it.
"""

from __future__ import annotations

import asyncio
import hashlib
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
DEPENDENT_KINDS = ("ConfigMap", "Secret", "Service")  # followed when the federation API serves them

WorkloadKey = tuple[str, str, str]  # (federated kind, namespace, name)
OnChange = Callable[[Iterable[WorkloadKey]], None]
DependentUsers = Callable[[str, str, str], Iterable[WorkloadKey]]  # (kind, namespace, name)


def dependent_kinds() -> tuple[Kind, ...]:
    """The dependent kinds the federation API serves (looked up when a cache is made)."""
    return tuple(k for k in fedkinds.KINDS if k.kind in DEPENDENT_KINDS and k.group == "")


def _fingerprint(obj: dict) -> str:
    """What a workload's plan depends on: everything but status and resourceVersion (a
    digest: no second copy of a Secret's data is kept)."""
    meta = obj.get("metadata") or {}
    text = json.dumps([content(obj), meta.get("labels"), meta.get("annotations"),
                       meta.get("generation")], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _rv(obj: dict) -> int:
    rv = str((obj.get("metadata") or {}).get("resourceVersion") or "0")
    return int(rv) if rv.isdigit() else 0


class ApiObjects:
    def __init__(self, *, storage, on_change: OnChange, retry_max: float = 2.0,
                 dependent_users: DependentUsers | None = None) -> None:
        self.storage = storage
        self._on_change = on_change
        self._retry_max = retry_max
        self._dependent_users = dependent_users
        self.kinds = KINDS + (dependent_kinds() if dependent_users is not None else ())
        self.objects: dict[str, dict[tuple[str, str], dict]] = {k.kind: {} for k in self.kinds}
        self._names: dict[str, dict[str, set[str]]] = {k.kind: {} for k in self.kinds}
        self._prints: dict[tuple[str, str, str], str] = {}
        self.synced: dict[str, bool] = {k.kind: False for k in self.kinds}
        self.on_synced: Callable[[], None] | None = None

    @property
    def listed(self) -> bool:
        return all(self.synced.values())

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        """The object (None: none, or a kind the federation API does not serve)."""
        return self.objects.get(kind, {}).get((namespace, name))

    def in_namespace(self, kind: str, namespace: str) -> list[dict]:
        """The objects of a kind in a namespace, by name (O(those), not O(all of the kind))."""
        objects = self.objects.get(kind, {})
        return [objects[(namespace, n)]
                for n in sorted(self._names.get(kind, {}).get(namespace, ()))]

    def workload_keys(self) -> list[WorkloadKey]:
        return [(k.kind, ns, name) for k in WORKLOAD_KINDS for (ns, name) in self.objects[k.kind]]

    # -- what a change touches -------------------------------------------------------------

    def _touched(self, kind: str, namespace: str, name: str) -> list[WorkloadKey]:
        if kind in ("Deployment", "ReplicaSet", "FederatedDeployment"):
            return [(kind, namespace, name)]
        if kind == "ReplicaSchedulingPreference":
            return [("FederatedDeployment", namespace, name)]
        if kind in DEPENDENT_KINDS:
            return list(self._dependent_users(kind, namespace, name))
        return [("Deployment", ns, n) for (ns, n) in self.objects["Deployment"] if ns == namespace]

    def _put(self, kind: str, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        have = self.objects[kind].get(key)
        if have is not None and _rv(have) > _rv(obj):  # our write's answer came first
            return
        self.objects[kind][key] = obj
        self._names[kind].setdefault(key[0], set()).add(key[1])
        fp = _fingerprint(obj)
        if self._prints.get((kind, *key)) != fp:
            self._prints[(kind, *key)] = fp
            self._on_change(self._touched(kind, *key))

    def _remove(self, kind: str, namespace: str, name: str) -> None:
        touched = self._touched(kind, namespace, name)  # before: policies look at their peers
        if self.objects[kind].pop((namespace, name), None) is not None:
            names = self._names[kind].get(namespace, set())
            names.discard(name)
            if not names:
                self._names[kind].pop(namespace, None)
            self._prints.pop((kind, namespace, name), None)
            self._on_change(touched)

    def updated(self, kind: str, obj: dict) -> None:
        """Our own write's answer (a status write): kept, so the next write carries its rv."""
        self._put(kind, obj)

    # -- list and watch --------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for kind in self.kinds:
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
