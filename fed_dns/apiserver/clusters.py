"""The read-only Cluster kind (federation/v1beta1): the members as the daemon sees them.

The daemon supplies a callable returning `ClusterState`s; `kubectl get clusters` prints
health, region, synced and age, and each Cluster's status.conditions has a Ready condition
as Federation v1's had.
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


Members = Callable[[], Sequence[ClusterState]]


def _cells(obj: dict) -> list:
    st = obj.get("status") or {}
    return [st.get("health", "unknown"), st.get("region", ""), str(st.get("synced", False))]


CLUSTER = Kind(kind="Cluster", plural="clusters", group="federation", version="v1beta1",
               namespaced=False, singular="cluster", read_only=True,
               columns=(("Health", "string"), ("Region", "string"), ("Synced", "string")),
               cells=_cells)


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
    """`storage.Storage` over the daemon's view of its members (reads only)."""

    def __init__(self, members: Members) -> None:
        self._members = members
        self._revision = 1
        self._last: tuple = ()

    def _objects(self) -> list[Stored]:
        states = tuple(sorted(self._members(), key=lambda s: s.name))
        if states != self._last:
            self._last = states
            self._revision += 1
        return [Stored(obj=o, data=dumps(o)) for o in
                (cluster_object(s, revision=self._revision) for s in states)]

    async def get(self, kind: Kind, *, namespace: str, name: str) -> Stored | None:
        return next((s for s in self._objects() if s.obj["metadata"]["name"] == name), None)

    async def list(self, kind: Kind, *, namespace: str | None, matcher: Matcher | None,
                   after: Key | None = None, limit: int = 0,
                   revision: int | None = None) -> Listing:
        items = [s for s in self._objects() if matcher is None or matcher(s.obj)]
        return Listing(items=items, after=None, revision=self._revision)

    async def create(self, kind: Kind, obj: dict) -> Stored:
        raise _read_only()

    async def update(self, kind: Kind, obj: dict, *, subresource: str | None = None) -> Stored:
        raise _read_only()

    async def delete(self, kind: Kind, *, namespace: str, name: str,
                     preconditions: dict | None = None) -> Stored:
        raise _read_only()

    async def watch(self, kind: Kind, *, namespace: str | None, matcher: Matcher | None,
                    resource_version: int | None, send_initial: bool = False) -> Watcher:
        w = Watcher(resource=kind.key, namespace=None, matcher=matcher, max_buffer=1 << 20,
                    rv=self._revision)
        if resource_version is None or send_initial:
            for s in (await self.list(kind, namespace=None, matcher=matcher)).items:
                w.push(event_line("ADDED", s.data))
        return w

    def unwatch(self, watcher: Watcher) -> None:
        watcher.close()

    def bookmark_revision(self, watcher: Watcher) -> int:
        return watcher.rv


def _read_only() -> ApiError:
    return ApiError(code=405, reason="MethodNotAllowed",
                    message="clusters are read only: members are declared in the config")
