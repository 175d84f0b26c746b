"""The Cluster kinds: Federation v1's `federation/v1beta1` Cluster, kubefed's KubeFedCluster
and Karmada's `cluster.karmada.io` Cluster.

Members declared in the config file show as federation/v1beta1 Clusters, read only: the
daemon supplies a callable returning `ClusterState`s; `kubectl get clusters` prints health,
region, synced and age, and each Cluster's status.conditions has a Ready condition as
Federation v1's had. Clusters created through the API (the three formats) are stored like any
object and join members at runtime (`app.joins`); `ClusterStorage` serves both for the
federation/v1beta1 kind and refuses any change to a config member.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fed_dns.apiserver.kinds import Kind
from fed_dns.apiserver.status import ApiError
from fed_dns.apiserver.storage import Key, Listing, Matcher, Stored
from fed_dns.apiserver.watchers import Watcher, dumps, event_line


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterState:
    """One member as the daemon sees it now."""

    name: str
    server: str = ""  # the member's API URL
    region: str = ""
    zone: str = ""
    health: str = "unknown"  # unknown | ready | unreachable
    synced: bool = False
    since: str = ""  # RFC 3339: when `health` last changed (lastTransitionTime)
    message: str = ""  # why it is not ready, when it is not
    created: str = ""  # RFC 3339: when the daemon started watching it
    joined: bool = False  # from a Cluster object of the API (else declared in the config)


Members = Callable[[], Sequence[ClusterState]]


def _cells(obj: dict) -> list:
    st = obj.get("status") or {}
    return [st.get("health", "unknown"), st.get("region", ""), str(st.get("synced", False))]


def _ready(obj: dict) -> str:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c.get("status", "") for c in conditions
                 if isinstance(c, dict) and c.get("type") == "Ready"), "")


def _kubefed_cells(obj: dict) -> list:
    return [_ready(obj)]


def _karmada_cells(obj: dict) -> list:
    return [(obj.get("status") or {}).get("kubernetesVersion", ""),
            (obj.get("spec") or {}).get("syncMode") or "Push", _ready(obj) or "Unknown"]


CLUSTER = Kind(kind="Cluster", plural="clusters", group="federation", version="v1beta1",
               namespaced=False, singular="cluster", subresources=("status",),
               columns=(("Health", "string"), ("Region", "string"), ("Synced", "string")),
               cells=_cells)
KUBEFED_CLUSTER = Kind(kind="KubeFedCluster", plural="kubefedclusters", group="core.kubefed.io",
                       version="v1beta1", namespaced=True, singular="kubefedcluster",
                       subresources=("status",), columns=(("Ready", "string"),),
                       cells=_kubefed_cells, age_at=0)  # the CRD's columns: age, ready
KARMADA_CLUSTER = Kind(kind="Cluster", plural="clusters", group="cluster.karmada.io",
                       version="v1alpha1", namespaced=False, singular="cluster",
                       subresources=("status",),
                       columns=(("Version", "string"), ("Mode", "string"), ("Ready", "string")),
                       cells=_karmada_cells)
CLUSTER_KINDS = (CLUSTER, KUBEFED_CLUSTER, KARMADA_CLUSTER)


def cluster_object(state: ClusterState, *, revision: int) -> dict:
    ready = state.health == "ready"
    reason = {"ready": "ClusterReady", "unreachable": "ClusterNotReachable"}.get(
        state.health, "ClusterStateUnknown")
    condition = {"type": "Ready", "status": "True" if ready else
                 ("False" if state.health == "unreachable" else "Unknown"),
                 "reason": reason,
                 "message": state.message or ("cluster is reachable" if ready else
                                              f"cluster is {state.health}")}
    if state.since:
        condition["lastTransitionTime"] = condition["lastProbeTime"] = state.since
    meta: dict = {"name": state.name, "resourceVersion": str(revision),
                  "uid": str(uuid.UUID(hashlib.md5(state.name.encode()).hexdigest()))}
    if state.created:
        meta["creationTimestamp"] = state.created
    return {"apiVersion": CLUSTER.api_version, "kind": CLUSTER.kind, "metadata": meta,
            "spec": {"serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                      "serverAddress": state.server}]},
            "status": {"conditions": [condition], "health": state.health,
                       "region": state.region, "zone": state.zone, "synced": state.synced}}


class ClusterStorage:
    """`storage.Storage` of the federation/v1beta1 Cluster kind: the config members (from the
    daemon's view, read only) and the Clusters created through the API (in `objects`)."""

    def __init__(self, members: Members, objects=None) -> None:
        self._members = members
        self._objects_store = objects
        self._revision = 1
        self._last: tuple = ()

    def _config(self) -> list[ClusterState]:
        return sorted((s for s in self._members() if not s.joined), key=lambda s: s.name)

    def _synthesized(self, revision: int | None = None) -> list[Stored]:
        states = tuple(self._config())
        if states != self._last:
            self._last = states
            self._revision += 1
        rv = revision if revision is not None else self._revision
        return [Stored(obj=o, data=dumps(o)) for o in
                (cluster_object(s, revision=rv) for s in states)]

    def _declared(self, name: str) -> bool:
        return any(s.name == name for s in self._config())

    async def get(self, kind: Kind, *, namespace: str, name: str) -> Stored | None:
        found = next((s for s in self._synthesized() if s.obj["metadata"]["name"] == name), None)
        if found is not None or self._objects_store is None:
            return found
        return await self._objects_store.get(kind, namespace=namespace, name=name)

    async def list(self, kind: Kind, *, namespace: str | None, matcher: Matcher | None,
                   after: Key | None = None, limit: int = 0,
                   revision: int | None = None) -> Listing:
        if self._objects_store is None:
            items = [s for s in self._synthesized() if matcher is None or matcher(s.obj)]
            return Listing(items=items, after=None, revision=self._revision)
        listing = await self._objects_store.list(kind, namespace=namespace, matcher=matcher,
                                                 after=after, limit=limit, revision=revision)
        if after is not None:  # the config members came with the first page
            return listing
        declared = [s for s in self._synthesized(listing.revision)
                    if matcher is None or matcher(s.obj)]
        names = {s.obj["metadata"]["name"] for s in declared}
        items = sorted(declared + [s for s in listing.items
                                   if s.obj["metadata"]["name"] not in names],
                       key=lambda s: s.obj["metadata"]["name"])
        return Listing(items=items, after=listing.after, revision=listing.revision)

    async def create(self, kind: Kind, obj: dict) -> Stored:
        name = (obj.get("metadata") or {}).get("name", "")
        if self._objects_store is None:
            raise _read_only()
        if self._declared(name):
            raise ApiError(code=409, reason="AlreadyExists",
                           message=f'clusters.{kind.group} "{name}" already exists: it is '
                           "declared in the fed-dns config file",
                           details={"name": name, "group": kind.group, "kind": kind.plural})
        return await self._objects_store.create(kind, obj)

    async def update(self, kind: Kind, obj: dict, *, subresource: str | None = None) -> Stored:
        name = (obj.get("metadata") or {}).get("name", "")
        if self._objects_store is None or self._declared(name):
            raise _declared(name, "changed")
        return await self._objects_store.update(kind, obj, subresource=subresource)

    async def delete(self, kind: Kind, *, namespace: str, name: str,
                     preconditions: dict | None = None) -> Stored:
        if self._objects_store is None or self._declared(name):
            raise _declared(name, "deleted")
        return await self._objects_store.delete(kind, namespace=namespace, name=name,
                                                preconditions=preconditions)

    async def watch(self, kind: Kind, *, namespace: str | None, matcher: Matcher | None,
                    resource_version: int | None, send_initial: bool = False) -> Watcher:
        if self._objects_store is None:
            w = Watcher(resource=kind.key, namespace=None, matcher=matcher, max_buffer=1 << 20,
                        rv=self._revision)
        else:
            w = await self._objects_store.watch(kind, namespace=namespace, matcher=matcher,
                                                resource_version=resource_version,
                                                send_initial=send_initial)
        if resource_version is None or send_initial:
            for s in self._synthesized(w.rv if self._objects_store is not None else None):
                if matcher is None or matcher(s.obj):
                    w.push(event_line("ADDED", s.data))
        return w

    def unwatch(self, watcher: Watcher) -> None:
        if self._objects_store is None:
            watcher.close()
        else:
            self._objects_store.unwatch(watcher)

    def bookmark_revision(self, watcher: Watcher) -> int:
        if self._objects_store is None:
            return watcher.rv
        return self._objects_store.bookmark_revision(watcher)


def _read_only() -> ApiError:
    return ApiError(code=405, reason="MethodNotAllowed",
                    message="clusters are read only: members are declared in the config")


def _declared(name: str, verb: str) -> ApiError:
    return ApiError(code=403, reason="Forbidden",
                    message=f'clusters.federation "{name}" is declared in the fed-dns config '
                    f"file: it cannot be {verb} through the API (edit the config and restart)",
                    details={"name": name, "group": "federation", "kind": "clusters"})
