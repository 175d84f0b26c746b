"""In-process federation for the replica loop's tests and bench/reschedule.py: simulated
members (SimCluster), the federation API (ApiServer, memory or real etcd), a real health
prober per member, and the ReplicaLoop, all on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

from fed_dns.apiserver import fedkinds
from fed_dns.apiserver.clusters import ClusterState
from fed_dns.apiserver.status import ApiError
from fed_dns.app import apicreds
from fed_dns.app.api import ApiServer
from fed_dns.app.replicas import ReplicaLoop, ReplicaMember
from fed_dns.config import parse
from fed_dns.federation.health import Thresholds
from fed_dns.federation.prober import ClusterProber
from fed_dns.model import ClusterSpec, Health
from fed_dns.sim.cluster import SimCluster
from fed_dns.watch import kubeconfig
from tests.support import free_port

OWNER = "fed-dns/replicas.test."
PROBE_PERIOD = 0.1
THRESHOLDS = Thresholds(failure=2, success=1)


class Federation:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.members: dict[str, SimCluster] = {}
        self.clients: dict = {}
        self.api: ApiServer | None = None
        self.loop: ReplicaLoop | None = None
        self.leader = True
        self.health_changes: list[tuple[float, str, Health]] = []
        self._tasks: list[asyncio.Task] = []
        self.config = None

    async def start(self, *, clusters=("c1", "c2"), etcd_url: str | None = None,
                    unschedulable_after: float = 60.0, labels: dict | None = None,
                    owner: str = OWNER, use_tls: bool = False, default_health: bool = False,
                    **sim) -> Federation:
        """`default_health`: probe with the config's default health settings (period 1 s, 3
        failures) instead of the fast ones (period 0.1 s, 2 failures)."""
        for name in clusters:
            member = SimCluster(name=name, use_tls=use_tls, **sim)
            await member.start()
            self.members[name] = member
            path = member.write_kubeconfig(self.tmp / f"{name}.kubeconfig")
            self.clients[name] = kubeconfig.load(ClusterSpec(name=name, kubeconfig=str(path)))
        data = {"owner_id": owner, "api": {"enabled": True, "listen": f"127.0.0.1:{free_port()}",
                                           "dir": str(self.tmp / "api")}}
        if etcd_url:
            data["etcd"] = {"endpoints": [etcd_url]}
        self.config = parse(data)
        self.api = ApiServer(config=self.config, bookmark_interval=0.3, members=self._states)
        await self.api.start()
        self.loop = ReplicaLoop(
            storage=self.api.storage, owner_id=owner, may_write=lambda: self.leader,
            unschedulable_after=unschedulable_after, settle_timeout=5.0,
            members=[ReplicaMember(name=n, api_client=self.clients[n],
                                   labels=(labels or {}).get(n, {})) for n in clusters])
        self._tasks.append(asyncio.create_task(self.loop.run(), name="replica-loop"))
        health = self.config.health
        period, timeout, thresholds = (
            (health.period, health.timeout,
             Thresholds(failure=health.failure_threshold, success=health.success_threshold))
            if default_health else (PROBE_PERIOD, 0.3, THRESHOLDS))
        for name in clusters:
            prober = ClusterProber(name=name, api_client=self.clients[name], period=period,
                                   timeout=timeout, thresholds=thresholds, on_change=self._health)
            self._tasks.append(asyncio.create_task(prober.run(), name=f"probe-{name}"))
        return self

    def _states(self) -> list[ClusterState]:
        """The members as the federation API's Cluster kind (and its admission) sees them."""
        health = {c: h for _, c, h in self.health_changes}
        return [ClusterState(name=name, server=member.url,
                             health=str(health.get(name, Health.UNKNOWN)))
                for name, member in self.members.items()]

    def _health(self, cluster: str, health: Health) -> None:
        self.health_changes.append((time.monotonic(), cluster, health))
        self.loop.on_health(cluster, health)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.api is not None:
            await self.api.close()
        for member in self.members.values():
            await member.close()
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                client.close()

    # -- the federation API --------------------------------------------------------------

    async def create(self, obj: dict) -> dict:
        kind = fedkinds.REGISTRY.for_object(obj)
        return (await self.api.storage.create(kind, obj)).obj

    async def replace(self, obj: dict) -> dict:
        kind = fedkinds.REGISTRY.for_object(obj)
        for _ in range(20):
            meta = obj["metadata"]
            current = await self.api.storage.get(kind, namespace=meta.get("namespace", ""),
                                                 name=meta["name"])
            body = dict(obj, metadata=dict(meta, resourceVersion=current.obj["metadata"][
                "resourceVersion"]), status=current.obj.get("status") or {})
            try:
                return (await self.api.storage.update(kind, body)).obj
            except ApiError as exc:
                if exc.code != 409:
                    raise
        raise AssertionError("replace kept conflicting")

    async def get(self, kind: str, name: str, namespace: str = "default") -> dict | None:
        stored = await self.api.storage.get(fedkinds.REGISTRY.find(kind), namespace=namespace,
                                            name=name)
        return stored.obj if stored else None

    def kubeconfig(self) -> Path:
        doc = apicreds.kubeconfig(server=self.api.url, creds=apicreds.ensure(self.config.api))
        path = self.tmp / "federation.kubeconfig"
        path.write_text(json.dumps(doc))
        return path

    # -- the members -----------------------------------------------------------------------

    def spec_replicas(self, kind: str, name: str, namespace: str = "default") -> dict[str, int]:
        """cluster -> spec.replicas of the member object (absent members left out)."""
        out = {}
        for cluster, member in self.members.items():
            obj = member.get(kind=kind, namespace=namespace, name=name)
            if obj is not None:
                out[cluster] = obj["spec"].get("replicas", 1)
        return out

    def member_object(self, cluster: str, kind: str, name: str, namespace: str = "default"):
        return self.members[cluster].get(kind=kind, namespace=namespace, name=name)


def declared(fed: Federation, cluster: str, health: Health, *, after: float) -> float | None:
    """When `cluster` was declared `health` after `after` (monotonic), else None."""
    return next((t for t, c, h in fed.health_changes if c == cluster and h is health and
                 t >= after), None)


async def eventually(fetch, *, timeout: float = 10.0, what: str = "condition"):
    """Await `fetch()` until it returns something truthy; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = await fetch()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
