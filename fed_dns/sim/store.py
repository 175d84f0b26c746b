"""The objects of one simulated cluster: the API machinery's memory store with the
behaviour of a member's kinds (validation, ClusterIPs, a controller-free Deployment and
ReplicaSet status unless the cluster runs pods, namespaces that must exist and that take their
contents with them, owned objects deleted with their owner, and `listeners` told of every
change — the controllers of `sim.controllers`)."""

from __future__ import annotations

from collections.abc import Callable

from fed_dns.apiserver.memory import MemoryStore
from fed_dns.apiserver.status import ApiError, not_found
from fed_dns.apiserver.storage import Key, Stored, key_of, now
from fed_dns.apiserver.watchers import Event
from fed_dns.sim import defaults
from fed_dns.sim.kinds import (DEPLOYMENT, ENDPOINT_SLICE, KINDS, NAMESPACE, POD, REPLICA_SET,
                               SERVICE, Kind)

# What an owner's deletion takes with it (the garbage collector, at once).
_DEPENDENTS = {DEPLOYMENT.key: (REPLICA_SET,), REPLICA_SET.key: (POD,),
               SERVICE.key: (ENDPOINT_SLICE,)}

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

__all__ = ["DEFAULT_NAMESPACES", "Store", "Stored"]


class Store(MemoryStore):
    def __init__(self, *, history_limit: int = 10_000, max_watch_buffer: int = 64 << 20,
                 ready_limit: int | None = None, pods: bool = False) -> None:
        super().__init__(KINDS, history_limit=history_limit, max_watch_buffer=max_watch_buffer)
        self._ready_limit = ready_limit
        self.pods = pods  # controllers run pods: no controller-free workload status
        self.listeners: list[Callable[[Event], None]] = []
        self._ips = defaults.IpAllocator()
        for ns in DEFAULT_NAMESPACES:
            self.put(NAMESPACE, {"metadata": {"name": ns}})

    # -- the hooks of MemoryStore --------------------------------------------------------

    def validate(self, kind: Kind, obj: dict) -> None:
        defaults.validate(kind, obj)

    def fill(self, kind: Kind, obj: dict, *, old: dict | None) -> None:
        defaults.fill(kind, obj, ips=self._ips, old=old, ready_limit=self._ready_limit,
                      pods=self.pods)

    def on_spec_change(self, kind: Kind, obj: dict) -> None:
        if kind in (DEPLOYMENT, REPLICA_SET) and not self.pods:
            obj["status"] = defaults.workload_status(kind, obj, ready_limit=self._ready_limit)

    def before_create(self, kind: Kind, key: Key) -> None:
        if not kind.namespaced:
            return
        ns = self.get(NAMESPACE, namespace="", name=key[0])
        if ns is None:
            raise not_found(resource="namespaces", name=key[0])
        if ns.obj["metadata"].get("deletionTimestamp"):
            raise ApiError(code=403, reason="Forbidden", message=(
                f"{kind.plural} is forbidden: unable to create new content in namespace "
                f"{key[0]} because it is being terminated"))

    def before_delete(self, kind: Kind, key: Key) -> None:
        if kind is NAMESPACE:
            for other in self.kinds:
                if other.namespaced:
                    for k in [k for k in self._items[other.key] if k[0] == key[1]]:
                        if k in self._items[other.key]:  # not gone with its owner already
                            self.delete(other, namespace=k[0], name=k[1])
            return
        dependents = _DEPENDENTS.get(kind.key, ())
        if not dependents:
            return
        uid = self._items[kind.key][key].obj["metadata"]["uid"]
        for other in dependents:
            for k, stored in list(self._items[other.key].items()):
                if k[0] == key[0] and any(ref.get("uid") == uid for ref in
                                          stored.obj["metadata"].get("ownerReferences") or ()):
                    self.delete(other, namespace=k[0], name=k[1])

    def _publish(self, event: Event) -> None:
        super()._publish(event)
        for listener in self.listeners:
            listener(event)

    def write_status(self, kind: Kind, stored: Stored, status: dict) -> Stored:
        """Replace an object's status (a controller's write); nothing when it is the same."""
        if status == stored.obj.get("status"):
            return stored
        return self._write(kind, key_of(kind, stored.obj), dict(stored.obj, status=status),
                           old=stored, keep_status=True)

    # -- simulator-only writes -----------------------------------------------------------

    def put(self, kind: Kind, obj: dict) -> Stored:
        """Create or replace as given (the Python-side `apply`): no validation, status kept;
        a missing namespace is created."""
        key = key_of(kind, obj)
        if kind.namespaced and key[0] and self.get(NAMESPACE, namespace="", name=key[0]) is None:
            self.put(NAMESPACE, {"metadata": {"name": key[0]}})
        return super().put(kind, obj)

    @property
    def ready_limit(self) -> int | None:
        return self._ready_limit

    def set_ready_limit(self, limit: int | None) -> None:
        """Cap every Deployment's and ReplicaSet's ready replicas (None: all ready); statuses
        are recomputed (controller-free clusters only: with pods, capacity caps them)."""
        self._ready_limit = limit
        if self.pods:
            return
        for kind in (DEPLOYMENT, REPLICA_SET):
            for stored in list(self._items[kind.key].values()):
                self.write_status(kind, stored, defaults.workload_status(
                    kind, stored.obj, ready_limit=limit))

    def terminate_namespace(self, name: str) -> Stored:
        """The first half of deleting a namespace over the API: it turns Terminating (and
        takes no new objects); `delete` finishes it later, as the namespace controller does."""
        ns = self.require(NAMESPACE, namespace="", name=name)
        if ns.obj["metadata"].get("deletionTimestamp"):
            return ns
        obj = dict(ns.obj, status={"phase": "Terminating"})
        obj["metadata"] = dict(obj["metadata"], deletionTimestamp=now())
        return self._write(NAMESPACE, ("", name), obj, old=ns, keep_status=True)
