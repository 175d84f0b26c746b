"""The controllers of a simulated member that runs pods (SimCluster(pods=True)).

Level-triggered, on the store's changes, within one event loop:

- Deployment -> one ReplicaSet `<deployment>-<hash of the pod template>` (owned) with the
  Deployment's replicas; ReplicaSets of an older template go to 0 (a Recreate rollout).
- ReplicaSet -> Pods `<replicaset>-<5 characters>` (owned), as many as its replicas (extra
  ones go Pending first, then unready, then newest).
- Pods are scheduled while the cluster has room (`capacity` scheduled pods; None: no limit):
  a scheduled pod gets a node and an address from `pod_cidr` (Running), and turns Ready after
  `ready_delay` seconds; the others stay Pending, without an address, until room frees up.
- Statuses follow: ReplicaSet (replicas, fullyLabeledReplicas, readyReplicas,
  availableReplicas, observedGeneration), Deployment (the same summed over its ReplicaSets,
  updatedReplicas of the current one, unavailableReplicas, conditions).
- A Service with a selector -> one EndpointSlice `<service>-<hash>` (owned, labelled as the
  endpointslice controller does) with its matching pods that have an address (ready or not).

Deleting an owner deletes what it owns (the store's `before_delete`).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import secrets

from fed_dns.apiserver.storage import Stored, now
from fed_dns.apiserver.watchers import Event
from fed_dns.sim.kinds import DEPLOYMENT, ENDPOINT_SLICE, POD, REPLICA_SET, SERVICE, Kind
from fed_dns.sim.store import Store

TEMPLATE_HASH = "pod-template-hash"
SLICE_MANAGER = "endpointslice-controller.k8s.io"
_WATCHED = {DEPLOYMENT.key, REPLICA_SET.key, POD.key, SERVICE.key, ENDPOINT_SLICE.key}
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes' names use


def short_hash(text: str, *, length: int = 10) -> str:
    digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    out = []
    for _ in range(length):
        digest, r = divmod(digest, len(_ALPHABET))
        out.append(_ALPHABET[r])
    return "".join(out)


def default_pod_cidr(name: str) -> str:
    """10.<n>.0.0/16 where n is the cluster name's trailing number ("c2" -> 10.2.0.0/16),
    else a number from its hash (64-191)."""
    digits = name[len(name.rstrip("0123456789")):]
    n = int(digits) % 256 if digits else 64 + int(short_hash(name, length=4), 36) % 128
    return f"10.{n}.0.0/16"


class PodIps:
    """Pod addresses from a range, from its second /24 on (10.<n>.0.x is left to hand-made
    slices such as scenario.seed_mysql's); freed addresses are reused last."""

    def __init__(self, cidr: str) -> None:
        self._net = ipaddress.ip_network(cidr)
        self._next = 256 if self._net.num_addresses > 512 else 1
        self._used: set[str] = set()

    def allocate(self) -> str:
        for _ in range(self._net.num_addresses):
            offset = self._next
            self._next = self._next + 1 if self._next + 2 < self._net.num_addresses else 1
            address = str(self._net.network_address + offset)
            if offset % 256 in (0, 255) or address in self._used:
                continue
            self._used.add(address)
            return address
        raise RuntimeError(f"pod range {self._net} is full")

    def release(self, address: str) -> None:
        self._used.discard(address)


def _owned_by(stored: Stored, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in
               stored.obj["metadata"].get("ownerReferences") or ())


def _owner_ref(kind: Kind, obj: dict) -> dict:
    return {"apiVersion": kind.api_version, "kind": kind.kind, "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _pod_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def _replicas(obj: dict) -> int:
    value = (obj.get("spec") or {}).get("replicas", 1)
    return value if isinstance(value, int) else 1


class Controllers:
    """Deployment, ReplicaSet, scheduler/kubelet and EndpointSlice controllers of one store."""

    def __init__(self, *, store: Store, cluster: str, pod_cidr: str,
                 capacity: int | None = None, ready_delay: float = 0.2) -> None:
        self.store = store
        self.node = f"{cluster}-node"
        self.capacity = capacity
        self.ready_delay = ready_delay
        self.ips = PodIps(pod_cidr)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirty: set[str] = set()  # namespaces
        self._scheduled = False
        self._timers: set[asyncio.TimerHandle] = set()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.store.listeners.append(self._on_event)
        for kind in (DEPLOYMENT, REPLICA_SET, POD, SERVICE):
            for stored in self.store.list(kind)[0]:
                self._mark(stored.obj["metadata"]["namespace"])

    def stop(self) -> None:
        if self._on_event in self.store.listeners:
            self.store.listeners.remove(self._on_event)
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._loop = None

    def set_capacity(self, capacity: int | None) -> None:
        self.capacity = capacity
        self._mark("")

    # -- the loop ------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if event.resource in _WATCHED:
            if event.resource == ENDPOINT_SLICE.key and not (event.type == "DELETED" and (
                    (event.obj["metadata"].get("labels") or {}).get(
                        "endpointslice.kubernetes.io/managed-by") == SLICE_MANAGER)):
                return  # only a managed slice's deletion concerns us (it comes back)
            if event.resource == POD.key and event.type == "DELETED":
                ip = (event.obj.get("status") or {}).get("podIP")
                if ip:
                    self.ips.release(ip)
            self._mark(event.obj["metadata"].get("namespace", ""))

    def _mark(self, namespace: str) -> None:
        self._dirty.add(namespace)
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        if self._loop is None:
            return
        dirty, self._dirty = self._dirty, set()
        for namespace in sorted(n for n in dirty if n):
            self.reconcile(namespace)
        self._schedule_pods()  # its writes mark their namespaces for the next run

    def reconcile(self, namespace: str) -> None:
        """One level-triggered pass over a namespace."""
        for d in self.store.list(DEPLOYMENT, namespace=namespace)[0]:
            self._deployment(d)
        for rs in self.store.list(REPLICA_SET, namespace=namespace)[0]:
            self._replica_set(rs)
        self._statuses(namespace)

    def _statuses(self, namespace: str) -> None:
        for rs in self.store.list(REPLICA_SET, namespace=namespace)[0]:
            self._replica_set_status(rs)
        for d in self.store.list(DEPLOYMENT, namespace=namespace)[0]:
            self._deployment_status(d)
        for svc in self.store.list(SERVICE, namespace=namespace)[0]:
            self._endpoints(svc)

    # -- Deployment -> ReplicaSet --------------------------------------------------------

    def _owned(self, kind: Kind, owner: Stored) -> list[Stored]:
        meta = owner.obj["metadata"]
        return [s for s in self.store.list(kind, namespace=meta["namespace"])[0]
                if _owned_by(s, meta["uid"])]

    def _deployment(self, d: Stored) -> None:
        obj = d.obj
        meta, spec = obj["metadata"], obj.get("spec") or {}
        template = spec.get("template") or {}
        pod_hash = short_hash(json.dumps(template, sort_keys=True))
        name = f"{meta['name']}-{pod_hash}"
        owned = self._owned(REPLICA_SET, d)
        for rs in owned:
            if rs.obj["metadata"]["name"] != name and _replicas(rs.obj):
                self.store.put(REPLICA_SET, dict(rs.obj, spec=dict(rs.obj["spec"], replicas=0)))
        current = next((rs for rs in owned if rs.obj["metadata"]["name"] == name), None)
        replicas = _replicas(obj)
        if current is None:
            tmpl = json.loads(json.dumps(template))
            tmpl.setdefault("metadata", {}).setdefault("labels", {})[TEMPLATE_HASH] = pod_hash
            selector = json.loads(json.dumps(spec.get("selector") or {}))
            selector.setdefault("matchLabels", {})[TEMPLATE_HASH] = pod_hash
            labels = dict((template.get("metadata") or {}).get("labels") or {},
                          **{TEMPLATE_HASH: pod_hash})
            self.store.create(REPLICA_SET, {
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": name, "namespace": meta["namespace"], "labels": labels,
                             "ownerReferences": [_owner_ref(DEPLOYMENT, obj)]},
                "spec": {"replicas": replicas, "selector": selector, "template": tmpl},
            }, strict=False)
        elif _replicas(current.obj) != replicas:
            self.store.put(REPLICA_SET, dict(current.obj, spec=dict(current.obj["spec"],
                                                                    replicas=replicas)))

    def _deployment_status(self, d: Stored) -> None:
        obj = d.obj
        pod_hash = short_hash(json.dumps((obj.get("spec") or {}).get("template") or {},
                                         sort_keys=True))
        current = f"{obj['metadata']['name']}-{pod_hash}"
        total = ready = updated = 0
        for rs in self._owned(REPLICA_SET, d):
            st = rs.obj.get("status") or {}
            total += st.get("replicas", 0)
            ready += st.get("readyReplicas", 0)
            if rs.obj["metadata"]["name"] == current:
                updated = st.get("replicas", 0)
        want = _replicas(obj)
        available = ready >= want
        status: dict = {
            "observedGeneration": obj["metadata"].get("generation", 1),
            "replicas": total, "updatedReplicas": updated,
            "conditions": [
                {"type": "Available", "status": "True" if available else "False",
                 "reason": "MinimumReplicasAvailable" if available
                 else "MinimumReplicasUnavailable"},
                {"type": "Progressing", "status": "True",
                 "reason": "NewReplicaSetAvailable" if available and updated == want
                 else "ReplicaSetUpdated"},
            ],
        }
        if ready:
            status["readyReplicas"] = status["availableReplicas"] = ready
        if want - ready > 0:
            status["unavailableReplicas"] = want - ready
        self.store.write_status(DEPLOYMENT, d, status)

    # -- ReplicaSet -> Pods --------------------------------------------------------------

    def _replica_set(self, rs: Stored) -> None:
        obj = rs.obj
        pods = self._owned(POD, rs)
        want = _replicas(obj)
        if len(pods) < want:
            template = (obj.get("spec") or {}).get("template") or {}
            for _ in range(want - len(pods)):
                self._create_pod(rs, template)
        elif len(pods) > want:
            def rank(p: Stored) -> tuple:
                st = p.obj.get("status") or {}
                return (st.get("phase") != "Pending", _pod_ready(p.obj),
                        p.obj["metadata"].get("creationTimestamp", ""),
                        -int(p.obj["metadata"]["resourceVersion"]))
            for pod in sorted(pods, key=rank)[:len(pods) - want]:
                meta = pod.obj["metadata"]
                self.store.delete(POD, namespace=meta["namespace"], name=meta["name"])

    def _create_pod(self, rs: Stored, template: dict) -> None:
        meta = rs.obj["metadata"]
        tmeta = template.get("metadata") or {}
        spec = json.loads(json.dumps(template.get("spec") or {}))
        while True:
            name = f"{meta['name']}-{''.join(secrets.choice(_ALPHABET) for _ in range(5))}"
            if self.store.get(POD, namespace=meta["namespace"], name=name) is None:
                break
        self.store.create(POD, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": meta["namespace"],
                         "labels": dict(tmeta.get("labels") or {}),
                         "annotations": dict(tmeta.get("annotations") or {}),
                         "ownerReferences": [_owner_ref(REPLICA_SET, rs.obj)]},
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": "BestEffort",
                       "conditions": [{"type": "PodScheduled", "status": "False",
                                       "reason": "Unschedulable"}]},
        }, strict=False)

    def _replica_set_status(self, rs: Stored) -> None:
        pods = self._owned(POD, rs)
        ready = sum(1 for p in pods if _pod_ready(p.obj))
        status = {"replicas": len(pods), "fullyLabeledReplicas": len(pods),
                  "observedGeneration": rs.obj["metadata"].get("generation", 1)}
        if ready:
            status["readyReplicas"] = status["availableReplicas"] = ready
        self.store.write_status(REPLICA_SET, rs, status)

    # -- scheduler and kubelet -----------------------------------------------------------

    def _schedule_pods(self) -> None:
        pods = self.store.list(POD)[0]
        running = sum(1 for p in pods if (p.obj.get("spec") or {}).get("nodeName"))
        pending = sorted((p for p in pods if not (p.obj.get("spec") or {}).get("nodeName")),
                         key=lambda p: int(p.obj["metadata"]["resourceVersion"]))
        for pod in pending:
            if self.capacity is not None and running >= self.capacity:
                break
            running += 1
            ip = self.ips.allocate()
            obj = json.loads(json.dumps(pod.obj))
            obj["spec"]["nodeName"] = self.node
            containers = obj["spec"].get("containers") or []
            obj["status"] = {
                "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "hostIP": "127.0.0.1", "startTime": now(), "qosClass": "BestEffort",
                "conditions": [{"type": "PodScheduled", "status": "True"},
                               {"type": "Ready", "status": "False",
                                "reason": "ContainersNotReady"}],
                "containerStatuses": [{"name": c.get("name", ""), "image": c.get("image", ""),
                                       "imageID": f"sim://{c.get('image', '')}",
                                       "containerID": f"sim://{ip}/{c.get('name', '')}",
                                       "ready": False, "restartCount": 0, "started": True,
                                       "state": {"running": {"startedAt": now()}}}
                                      for c in containers],
            }
            stored = self.store.put(POD, obj)
            self._later(stored.obj["metadata"]["namespace"], stored.obj["metadata"]["name"],
                        stored.obj["metadata"]["uid"])

    def _later(self, namespace: str, name: str, uid: str) -> None:
        timer: asyncio.TimerHandle | None = None

        def ready() -> None:
            self._timers.discard(timer)
            self._make_ready(namespace, name, uid)

        if self._loop is not None:
            timer = self._loop.call_later(self.ready_delay, ready)
            self._timers.add(timer)

    def _make_ready(self, namespace: str, name: str, uid: str) -> None:
        pod = self.store.get(POD, namespace=namespace, name=name)
        if pod is None or pod.obj["metadata"]["uid"] != uid or _pod_ready(pod.obj):
            return
        status = json.loads(json.dumps(pod.obj.get("status") or {}))
        status["conditions"] = [c for c in status.get("conditions") or ()
                                if c.get("type") != "Ready"] + [{"type": "Ready",
                                                                "status": "True"}]
        for c in status.get("containerStatuses") or ():
            c["ready"] = True
        self.store.write_status(POD, pod, status)

    # -- Service -> EndpointSlice --------------------------------------------------------

    def _endpoints(self, svc: Stored) -> None:
        meta, spec = svc.obj["metadata"], svc.obj.get("spec") or {}
        name = f"{meta['name']}-{short_hash(meta['name'], length=5)}"
        existing = self.store.get(ENDPOINT_SLICE, namespace=meta["namespace"], name=name)
        selector = spec.get("selector")
        if not selector or spec.get("type") == "ExternalName":
            if existing is not None and _owned_by(existing, meta["uid"]):
                self.store.delete(ENDPOINT_SLICE, namespace=meta["namespace"], name=name)
            return
        pods = [p.obj for p in self.store.list(POD, namespace=meta["namespace"])[0]
                if _matches(selector, p.obj["metadata"].get("labels") or {})
                and (p.obj.get("status") or {}).get("podIP")]
        endpoints = []
        for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
            ready = _pod_ready(pod)
            endpoints.append({
                "addresses": [pod["status"]["podIP"]],
                "conditions": {"ready": ready, "serving": ready, "terminating": False},
                "nodeName": pod["spec"].get("nodeName", ""),
                "targetRef": {"kind": "Pod", "namespace": meta["namespace"],
                              "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]},
            })
        ports = []
        for port in spec.get("ports") or ():
            target = port.get("targetPort", port.get("port"))
            if isinstance(target, str):  # a named container port
                target = next((cp.get("containerPort") for p in pods
                               for c in p["spec"].get("containers") or ()
                               for cp in c.get("ports") or () if cp.get("name") == target),
                              None)
                if target is None:
                    continue
            entry = {"port": target, "protocol": port.get("protocol", "TCP")}
            if port.get("name"):
                entry["name"] = port["name"]
            ports.append(entry)
        body = {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": meta["namespace"],
                         "labels": {"kubernetes.io/service-name": meta["name"],
                                    "endpointslice.kubernetes.io/managed-by": SLICE_MANAGER},
                         "ownerReferences": [_owner_ref(SERVICE, svc.obj)]},
            "addressType": "IPv6" if ":" in spec.get("clusterIP", "") else "IPv4",
            "endpoints": endpoints, "ports": ports,
        }
        if existing is not None and all(existing.obj.get(k) == body[k] for k in
                                        ("endpoints", "ports", "addressType")) and \
                existing.obj["metadata"].get("labels") == body["metadata"]["labels"]:
            return
        self.store.put(ENDPOINT_SLICE, body)
