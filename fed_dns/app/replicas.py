"""The replica loop: federated workloads -> member Deployments/ReplicaSets, status back.

Level-triggered and incremental, like the DNS reconcile: events only mark workloads dirty
(a federated object or policy changed: `api_objects`; a member's object of ours changed:
`member_objects`; a member's health changed: the workloads placed on it); a run recomputes
each dirty workload from the current inputs and writes the difference. Per workload:

1. its `Workload` from its format (Federation v1 / plain, kubefed + RSP, Karmada policies);
2. `scheduling.schedule` over the members (healthy = declared ready and our cache of its
   objects listed since; capacity = ready replicas of a member short of them for
   `unschedulable_after`), from the last plan (rebalance false keeps it);
3. `scheduling.graceful` from the members' specs and ready replicas: a returning member is
   scaled up first, the others down only as its replicas become ready;
4. `propagation.plan` -> creates/updates (with the observed resourceVersion)/deletes on
   writable members only; `may_write()` is asked again right before each write (leader only);
5. the federated object's status: the members' sums, observedGeneration, placement.

Dependents (issue 12, `federation.dependents`): the ConfigMaps and Secrets a workload's pod
template names and the Services that select its pods follow it. Per workload the loop keeps
what it uses in each member where it has replicas (`_uses`) and who uses what (`_users`, so a
changed ConfigMap/Secret/Service in the federation API or a member marks only its users).
A sync writes the dependents of the members it is about to create or scale up *before* the
workload's own object (they exist before its pods), and once its writes are done, removes
them (ours only, `propagation.plan`) from members where no workload using them runs any
more. An object of the same name not labelled ours is never touched: a Conflict condition in
the status of the workloads using it.

`placements()` is plain data for `fed-dns status`; `stats` and `cluster_replicas()` are the
counters the daemon publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fed_dns.apiserver import fedkinds
from fed_dns.apiserver.status import ApiError
from fed_dns.app.api_objects import ApiObjects, WorkloadKey
from fed_dns.app.member_objects import MemberObjects, WriteError
from fed_dns.federation import dependents, propagation, scheduling, workloads
from fed_dns.federation.dependents import DependentKey
from fed_dns.federation.propagation import Observed
from fed_dns.model import Health

log = logging.getLogger("fed_dns.replicas")

FED_KINDS = {"Deployment": fedkinds.DEPLOYMENT, "ReplicaSet": fedkinds.REPLICA_SET,
             "FederatedDeployment": fedkinds.FEDERATED_DEPLOYMENT}
CONCURRENCY = 16  # workloads synced at once (each writes its members concurrently)
RELEASE_PERIOD = 0.2  # seconds between asking may_write() again while writes are held back


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaMember:
    """A member as the replica loop needs it: its client and its Cluster labels."""

    name: str
    api_client: Any
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass
class ReplicaStats:
    runs: int = 0
    synced: int = 0  # workload syncs
    writes: int = 0
    write_errors: int = 0
    status_writes: int = 0
    reschedules: int = 0  # plans that moved replicas between members
    conflicts: int = 0  # (workload, member) pairs now in conflict
    invalid: int = 0  # workloads that cannot be read
    last_run_seconds: float = 0.0
    longest_run_seconds: float = 0.0
    last_error: str = ""


def member_kind(key: WorkloadKey) -> str:
    return "Deployment" if key[0] == "FederatedDeployment" else key[0]


class ReplicaLoop:
    def __init__(self, *, storage, members: Sequence[ReplicaMember], owner_id: str,
                 may_write: Callable[[], bool], unschedulable_after: float = 60.0,
                 request_timeout: float = 5.0, settle_timeout: float = 10.0,
                 resync_period: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.owner_id = owner_id
        self.owner = workloads.owner_label(owner_id)
        self._may_write = may_write
        self._after = unschedulable_after
        self._settle_timeout = settle_timeout
        self._resync_period = resync_period
        self._clock = clock
        self._request_timeout = request_timeout
        self._group: asyncio.TaskGroup | None = None
        self._member_tasks: dict[str, asyncio.Task] = {}
        self.api = ApiObjects(storage=storage, on_change=self.mark,
                              dependent_users=self._dependent_users)
        self.api.on_synced = self.mark_all
        self.labels = {m.name: dict(m.labels) for m in members}
        self.members: dict[str, MemberObjects] = {}
        for m in members:
            objects = MemberObjects(cluster=m.name, api_client=m.api_client, owner=self.owner,
                                    on_change=self._on_member_change,
                                    request_timeout=request_timeout)
            objects.on_synced = self._on_member_synced
            self.members[m.name] = objects
        self.health: dict[str, Health] = dict.fromkeys(self.members, Health.UNKNOWN)
        self._fresh: dict[str, bool] = dict.fromkeys(self.members, False)
        self.stats = ReplicaStats()
        self._dirty: set[WorkloadKey] = set()
        self._wake = asyncio.Event()
        self._started = clock()
        self._plans: dict[WorkloadKey, dict[str, int]] = {}
        self._by_cluster: dict[str, set[WorkloadKey]] = {c: set() for c in self.members}
        self._foreign: dict[tuple[WorkloadKey, str], Observed] = {}
        self._short: dict[tuple[WorkloadKey, str], float] = {}
        self._caps: dict[tuple[WorkloadKey, str], int] = {}
        self._placements: dict[WorkloadKey, dict] = {}
        self._timers: dict[WorkloadKey, asyncio.TimerHandle] = {}
        # writes may_write() refused, by workload or dependent: how to plan each again
        self._held: dict[tuple[str, str, str], Callable[[], None]] = {}
        # dependents: workload -> cluster -> what it uses there (clusters with replicas only)
        self._uses: dict[WorkloadKey, dict[str, frozenset[dependents.Ref]]] = {}
        self._refs: dict[WorkloadKey, frozenset[DependentKey]] = {}  # wherever it runs
        self._users: dict[DependentKey, set[WorkloadKey]] = {}
        self._pod_labels: dict[WorkloadKey, Mapping[str, str]] = {}
        self._dep_conflicts: dict[DependentKey, tuple[str, ...]] = {}
        self._dirty_deps: set[DependentKey] = set()

    # -- events ------------------------------------------------------------------------------

    def mark(self, keys: Iterable[WorkloadKey]) -> None:
        self._dirty.update(keys)
        if self._dirty:
            self._wake.set()

    def mark_all(self) -> None:
        self.mark(self.api.workload_keys())
        self.mark(k for keys in self._by_cluster.values() for k in keys)

    def on_leader(self, leader: bool) -> None:
        """A new leader writes what followers only planned: every workload once."""
        if leader:
            self.mark_all()

    def on_health(self, cluster: str, health: Health) -> None:
        if cluster not in self.health or self.health[cluster] == health:
            return
        self.health[cluster] = health
        self._fresh[cluster] = False  # read its objects again before writing there
        if health is Health.READY:
            self.members[cluster].poke()
        for key in [k for k in self._caps if k[1] == cluster]:
            del self._caps[key]
        self.mark(self._by_cluster[cluster])

    def _on_member_synced(self, cluster: str) -> None:
        """The member's objects were listed: once it is ready, it may be written again."""
        if cluster not in self.members:
            return
        if not self._fresh[cluster] and self.health[cluster] is Health.READY:
            self._fresh[cluster] = True
            self.mark(self._by_cluster[cluster])
        self._wake.set()

    def _on_member_change(self, cluster: str, kind: str, namespace: str, name: str) -> None:
        if cluster not in self.members:
            return
        if kind in dependents.KINDS:
            users = self._users.get((kind, namespace, name))
            if users:
                self.mark(users)
            else:  # ours, used by no workload (left over): looked at after the workloads
                self._dirty_deps.add((kind, namespace, name))
                self._wake.set()
            return
        keys = [(kind, namespace, name)]
        if kind == "Deployment":
            keys.append(("FederatedDeployment", namespace, name))
        owned = [k for k in keys if self.api.get(*k) is not None]
        self.mark(owned or keys[:1])

    # -- members joining and leaving at runtime ---------------------------------------------

    def add_member(self, member: ReplicaMember) -> None:
        """A member joined: its objects are listed and watched; once it is ready every
        workload is planned again (it may be placed there)."""
        if member.name in self.members:
            self.remove_member(member.name)
        objects = MemberObjects(cluster=member.name, api_client=member.api_client,
                                owner=self.owner, on_change=self._on_member_change,
                                request_timeout=self._request_timeout)
        objects.on_synced = self._on_member_synced
        self.members[member.name] = objects
        self.labels[member.name] = dict(member.labels)
        self.health[member.name] = Health.UNKNOWN
        self._fresh[member.name] = False
        self._by_cluster[member.name] = set()
        if self._group is not None:
            self._member_tasks[member.name] = self._group.create_task(
                objects.run(), name=f"replicas-{member.name}")
        self.mark_all()

    def remove_member(self, name: str) -> None:
        """A member left: its objects are no longer read nor written (they stay as they are
        in it) and the workloads placed there are planned again without it."""
        if self.members.pop(name, None) is None:
            return
        task = self._member_tasks.pop(name, None)
        if task is not None:
            task.cancel()
        for table in (self.labels, self.health, self._fresh):
            table.pop(name, None)
        touched = self._by_cluster.pop(name, set())
        for pairs in (self._caps, self._short, self._foreign):
            for pair in [p for p in pairs if p[1] == name]:
                del pairs[pair]
        for plan in self._plans.values():
            plan.pop(name, None)
        self.mark(touched)

    # -- dependents (ConfigMaps, Secrets, Services that follow their workloads) ----------------

    def _dependent_users(self, kind: str, namespace: str, name: str) -> set[WorkloadKey]:
        """The workloads a changed dependent touches: those that referenced or selected it
        when planned, and for a Service those of its namespace it selects now."""
        users = set(self._users.get((kind, namespace, name), ()))
        if kind == dependents.SERVICE:
            service = self.api.get(kind, namespace, name)
            if service is not None:
                users.update(w for w, labels in self._pod_labels.items()
                             if w[1] == namespace and dependents.selects(service, labels))
        return users

    def _index_uses(self, key: WorkloadKey, refs: Iterable[DependentKey]) -> set[DependentKey]:
        """Record what `key` uses; the dependents it used or uses now (to plan them)."""
        refs = frozenset(refs)
        old = self._refs.get(key, frozenset())
        for dep in old - refs:
            users = self._users.get(dep)
            if users is not None:
                users.discard(key)
                if not users:
                    del self._users[dep]
        for dep in refs - old:
            self._users.setdefault(dep, set()).add(key)
        if refs:
            self._refs[key] = refs
        else:
            self._refs.pop(key, None)
        return set(old | refs)

    def _set_uses(self, key: WorkloadKey, namespace: str, uses: dict[str, frozenset],
                  base: frozenset) -> set[DependentKey]:
        if uses:
            self._uses[key] = uses
        else:
            self._uses.pop(key, None)
        refs = set(base).union(*uses.values())
        return self._index_uses(key, {(kind, namespace, name) for kind, name in refs})

    async def _lead(self, key: WorkloadKey, *, namespace: str,
                    running: Mapping[str, frozenset], base: frozenset) -> None:
        """Before the workload's writes: its dependents where it will run (and still runs)."""
        before = self._uses.get(key, {})
        both = {c: before.get(c, frozenset()) | running.get(c, frozenset())
                for c in set(before) | set(running)}
        await self._sync_dependents(self._set_uses(key, namespace, both, base), key=key)

    async def _follow(self, key: WorkloadKey, *, namespace: str,
                      running: Mapping[str, frozenset], base: frozenset) -> None:
        """After the workload's writes: its dependents stay only where it has replicas (an
        unreachable member's copy of ours counts: it is left as it is)."""
        before = self._uses.get(key, {})
        after = dict(running)
        for cluster, o in self._observed(key).items():
            if o.managed_by == self.owner and o.replicas > 0 and cluster not in after:
                after[cluster] = before.get(cluster, base)
        if after == before:
            return
        await self._sync_dependents(self._set_uses(key, namespace, after, base), key=key)

    def _observed_dependent(self, dep: DependentKey) -> dict[str, Observed]:
        out = {}
        for cluster, objects in self.members.items():
            o = objects.get(*dep) or self._foreign.get((dep, cluster))
            if o is not None:
                out[cluster] = o
        return out

    async def _sync_dependents(self, deps: Iterable[DependentKey], *,
                               key: WorkloadKey | None) -> None:
        """Make the writable members hold each dependent where a workload using it runs
        (and nowhere else, ours only). `key`: the workload planned again on a conflict."""
        deps = sorted(set(deps))
        if not deps:
            return
        users = {w for dep in deps for w in self._users.get(dep, ())}
        sources = {dep: o for dep in deps if (o := self.api.get(*dep)) is not None}
        wanted = dependents.desired(uses={w: self._uses.get(w, {}) for w in users},
                                    namespaces={w: w[1] for w in users}, sources=sources,
                                    owner_id=self.owner_id, wanted=deps)
        writable = [c for c in self.members if self._writable(c)]
        writes = []
        for dep in deps:
            result = propagation.plan(desired=wanted[dep], observed=self._observed_dependent(dep),
                                      writable=writable, owner=self.owner, kind=dep[0],
                                      namespace=dep[1], name=dep[2])
            if result.conflicts:
                self._dep_conflicts[dep] = result.conflicts
            else:
                self._dep_conflicts.pop(dep, None)
            if result.actions:
                if key is None:
                    def again(delay: float, dep: DependentKey = dep) -> None:
                        self._retry_dependent(dep, delay)
                    writes.append(self._apply(dep, result, dependent=dep, again=again))
                else:
                    writes.append(self._apply(key, result, dependent=dep))
        done = await asyncio.gather(*writes, return_exceptions=True)
        errors = [d for d in done if isinstance(d, BaseException)]
        if errors:
            raise errors[0]

    def _dependent_conflicts(self, key: WorkloadKey) -> list[dependents.DependentConflict]:
        """The dependents of `key` held unmanaged in a member where it runs."""
        uses = self._uses.get(key, {})
        return sorted(
            dependents.DependentConflict(cluster=c, kind=dep[0], namespace=dep[1], name=dep[2])
            for dep in self._refs.get(key, ()) for c in self._dep_conflicts.get(dep, ())
            if (dep[0], dep[2]) in uses.get(c, ()))

    def _retry_dependent(self, dep: DependentKey, delay: float) -> None:
        def fire() -> None:
            self._dirty_deps.add(dep)
            self._wake.set()

        asyncio.get_running_loop().call_later(delay, fire)

    def _mark_leftover_dependents(self) -> None:
        """Dependents of ours in members that no workload uses (left by a workload deleted
        while this process was away) are planned again: removed."""
        for objects in self.members.values():
            for kind, namespace, name in list(objects.objects):
                if kind in dependents.KINDS and (kind, namespace, name) not in self._users:
                    self._dirty_deps.add((kind, namespace, name))
        if self._dirty_deps:
            self._wake.set()

    async def _sync_leftovers(self, deps: Sequence[DependentKey]) -> None:
        try:
            await self._sync_dependents(deps, key=None)
        except (WriteError, ApiError) as exc:
            self.stats.last_error = str(exc)
            log.warning("replicas: dependents: %s", exc)
            for dep in deps:
                self._retry_dependent(dep, 1.0)

    # -- placements and counters -----------------------------------------------------------

    def placements(self) -> list[dict]:
        """Every workload's placement, plain data (for `fed-dns status`)."""
        return [dict(v) for _, v in sorted(self._placements.items())]

    def cluster_replicas(self) -> dict[str, dict[str, int]]:
        """cluster -> {"desired": n, "ready": n} summed over the workloads."""
        out = {c: {"desired": 0, "ready": 0} for c in self.members}
        for p in self._placements.values():
            for row in p.get("clusters", ()):
                if row["cluster"] in out:
                    out[row["cluster"]]["desired"] += row["desired"]
                    out[row["cluster"]]["ready"] += row["ready"]
        return out

    # -- the loop ----------------------------------------------------------------------------

    def _settled(self) -> bool:
        """Plan only once the inputs are in: the federated objects listed, and every member
        declared unreachable or ready with its objects listed (or `settle_timeout` passed)."""
        if not self.api.listed:
            return False
        if self._clock() - self._started >= self._settle_timeout:
            return True
        return all(self.health[c] is Health.UNREACHABLE or
                   (self.health[c] is Health.READY and self._fresh[c]) for c in self.members)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            group.create_task(self.api.run(), name="replicas-api")
            for name, objects in self.members.items():
                self._member_tasks[name] = group.create_task(objects.run(),
                                                             name=f"replicas-{name}")
            group.create_task(self._resync(), name="replicas-resync")
            group.create_task(self._release(), name="replicas-release")
            try:
                await self._loop()
            finally:
                for timer in self._timers.values():
                    timer.cancel()

    async def _resync(self) -> None:
        """Now and then every workload again (a conflicting object removed by hand is seen)."""
        while True:
            await asyncio.sleep(self._resync_period)
            self._foreign.clear()
            self.mark_all()
            self._mark_leftover_dependents()

    async def _release(self) -> None:
        """What was held back because may_write() said no is planned again once it says yes.
        `on_leader(True)` does that for a new leader; this also covers a leader that could
        not write for a moment without losing its leadership (its lease not known to be alive
        just then): nothing it skipped waits for the next resync."""
        while True:
            await asyncio.sleep(RELEASE_PERIOD)
            if self._held and self._may_write():
                held, self._held = self._held, {}
                for again in held.values():
                    again()

    async def _loop(self) -> None:
        limit = asyncio.Semaphore(CONCURRENCY)
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._settled():
                if self.api.listed:  # wait for the settle timeout at most
                    left = self._settle_timeout - (self._clock() - self._started)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(max(0.01, left)):  # not wait_for (3.11)
                            await self._wake.wait()
                    self._wake.set()
                continue
            keys, self._dirty = sorted(self._dirty), set()
            started = time.perf_counter()

            async def one(key: WorkloadKey) -> None:
                async with limit:
                    await self._sync_safely(key)

            async with asyncio.TaskGroup() as group:
                for key in keys:
                    group.create_task(one(key))
            if self._dirty_deps:  # after the workloads: their uses are known
                deps, self._dirty_deps = sorted(self._dirty_deps), set()
                await self._sync_leftovers(deps)
            took = time.perf_counter() - started
            self.stats.runs += 1
            self.stats.last_run_seconds = took
            self.stats.longest_run_seconds = max(self.stats.longest_run_seconds, took)
            self.stats.conflicts = sum(len(p.get("conflicts", ())) for p in self._placements.values())
            self.stats.invalid = sum(1 for p in self._placements.values() if p.get("error"))

    async def _sync_safely(self, key: WorkloadKey) -> None:
        try:
            await self.sync(key)
        except (WriteError, ApiError) as exc:
            self.stats.last_error = str(exc)
            log.warning("replicas %s %s/%s: %s", *key, exc)
            self._retry(key, 1.0)

    def _retry(self, key: WorkloadKey, delay: float) -> None:
        if key in self._timers:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.pop(key, None)
            self.mark([key])

        self._timers[key] = loop.call_later(delay, fire)

    # -- one workload ------------------------------------------------------------------------

    def _workload(self, key: WorkloadKey, obj: dict) -> workloads.Workload:
        kind, namespace, name = key
        if kind == "FederatedDeployment":
            return workloads.from_kubefed(
                obj, self.api.get("ReplicaSchedulingPreference", namespace, name))
        if kind == "Deployment":
            policies = [p for p in self.api.in_namespace("PropagationPolicy", namespace)
                        if workloads.karmada_selects(p, obj)]
            if policies:
                policy = max(policies, key=lambda p: (
                    (p.get("spec") or {}).get("priority") or 0,
                    [-ord(ch) for ch in p["metadata"]["name"]]))
                overrides = [o for o in self.api.in_namespace("OverridePolicy", namespace)
                             if workloads.karmada_selects(o, obj)]
                return workloads.from_karmada(obj, policy, overrides)
        return workloads.from_federation_v1(obj)

    def _writable(self, cluster: str) -> bool:
        return self.health[cluster] is Health.READY and self._fresh[cluster]

    def _observed(self, key: WorkloadKey) -> dict[str, Observed]:
        _, namespace, name = key
        mk = member_kind(key)
        out = {}
        for cluster, objects in self.members.items():
            o = objects.get(mk, namespace, name)
            if o is None:
                o = self._foreign.get((key, cluster))
            if o is not None:
                out[cluster] = o
        return out

    def _owned_elsewhere(self, key: WorkloadKey) -> bool:
        if member_kind(key) != "Deployment":
            return False
        other = ("FederatedDeployment" if key[0] == "Deployment" else "Deployment", *key[1:])
        return self.api.get(*other) is not None

    def _capacity(self, key: WorkloadKey, observed: Mapping[str, Observed]) -> None:
        """Members short of ready replicas for `unschedulable_after` get a cap at their ready
        count (kept until their health changes or the workload's spec does)."""
        now = self._clock()
        for cluster in self.members:
            o = observed.get(cluster)
            pair = (key, cluster)
            if o is None or o.managed_by != self.owner or not self._writable(cluster) \
                    or o.ready >= o.replicas:
                self._short.pop(pair, None)
                if o is not None and pair in self._caps and o.ready > self._caps[pair]:
                    self._caps[pair] = o.ready
                continue
            since = self._short.setdefault(pair, now)
            if now - since >= self._after:
                if self._caps.get(pair) != o.ready:
                    log.info("replicas %s %s/%s: %s holds %d of %d ready for %.0fs: capped",
                             *key, cluster, o.ready, o.replicas, now - since)
                self._caps[pair] = o.ready
            else:
                self._retry(key, since + self._after - now + 0.01)

    async def sync(self, key: WorkloadKey) -> None:
        self.stats.synced += 1
        kind, namespace, name = key
        obj = self.api.get(*key)
        observed = self._observed(key)
        ours = {c: o for c, o in observed.items() if o.managed_by == self.owner}
        writable = [c for c in self.members if self._writable(c)]
        if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
            self._placements.pop(key, None)
            self._plans.pop(key, None)
            if self._owned_elsewhere(key):
                return
            result = propagation.plan(desired={}, observed=ours, writable=writable,
                                      owner=self.owner, kind=member_kind(key),
                                      namespace=namespace, name=name)
            await self._apply(key, result)
            self._index(key, placed=(), observed=ours)
            self._pod_labels.pop(key, None)
            await self._follow(key, namespace=namespace, running={}, base=frozenset())
            return
        try:
            workload = self._workload(key, obj)
        except workloads.WorkloadError as exc:
            self._placements[key] = {"kind": kind, "namespace": namespace, "name": name,
                                     "error": str(exc), "clusters": [], "conflicts": []}
            return
        if self._plans.get(key, {}).get("__generation__") != workload.generation:
            for pair in [p for p in self._caps if p[0] == key]:
                del self._caps[pair]
        self._capacity(key, observed)
        candidates = [scheduling.Candidate(
            name=c, healthy=self._writable(c), labels=self.labels.get(c, {}),
            capacity=self._caps.get((key, c)),
            available=ours[c].available if c in ours else 0) for c in self.members]
        placed = scheduling.placed(workload, candidates)
        previous = self._plans.get(key)
        current = {c: n for c, n in (previous or self._last_plan(obj, ours)).items()
                   if not c.startswith("__")}
        target = scheduling.schedule(workload=workload, candidates=candidates, current=current)
        if previous is not None and _moved(previous, target):
            self.stats.reschedules += 1
        self._plans[key] = dict(target, __generation__=workload.generation)
        specs = {c: o.replicas for c, o in ours.items()}
        ready = {c: o.ready for c, o in ours.items()}
        step = scheduling.graceful(target=target, current=specs, ready=ready, healthy=writable)
        desired = {}
        for c in placed:
            n = step.get(c, 0)
            if self._writable(c) and (n > 0 or c in ours):
                desired[c] = propagation.stamp(workloads.member_object(
                    workload, cluster=c, replicas=n, owner=self.owner_id))
        result = propagation.plan(desired=desired, observed=observed, writable=writable,
                                  owner=self.owner, kind=workload.kind, namespace=namespace,
                                  name=name)
        services = self.api.in_namespace(dependents.SERVICE, namespace)
        running = {c: dependents.uses(o, services) for c, o in desired.items()
                   if c not in result.conflicts and _spec_replicas(o) > 0}
        base = dependents.uses(workload.template, services)
        self._pod_labels[key] = dependents.pod_labels(workload.template)
        # dependents first where it will run: they exist before its pods
        await self._lead(key, namespace=namespace, running=running, base=base)
        wrote = await self._apply(key, result)
        await self._follow(key, namespace=namespace, running=running, base=base)
        observed = self._observed(key)
        reasons = {c: propagation.AT_CAPACITY for c in self.members if (key, c) in self._caps}
        summary = propagation.summarize(
            generation=workload.generation,
            previous_generation=int((obj.get("status") or {}).get("observedGeneration") or 0),
            in_sync=result.in_sync, observed=observed, reachable=writable, owner=self.owner,
            targets={c: target.get(c, 0) for c in placed}, reasons=reasons,
            conflicts=result.conflicts)
        self._placements[key] = {
            "kind": kind, "namespace": namespace, "name": name, "source": workload.source,
            "replicas": workload.replicas, "rebalance": workload.rebalance,
            "ready": summary.ready, "clusters": [p.as_dict() for p in summary.placement],
            "conflicts": list(summary.conflicts), "error": ""}
        dep_conflicts = self._dependent_conflicts(key)
        self._placements[key]["dependent_conflicts"] = [str(c) for c in dep_conflicts]
        self._index(key, placed=placed, observed=observed)
        await self._write_status(key, obj, dependents.with_conflicts(propagation.status_of(
            kind="Deployment" if kind == "FederatedDeployment" else kind, summary=summary),
            dep_conflicts))
        if wrote:
            self.mark([key])  # once more: status and observedGeneration follow the writes

    def _last_plan(self, obj: dict, ours: Mapping[str, Observed]) -> dict[str, int]:
        """The plan in effect when this process has made none yet: the one in the object's
        status.placement (another leader's), else the reachable members' specs."""
        rows = (obj.get("status") or {}).get("placement")
        if isinstance(rows, list) and rows:
            return {r["cluster"]: int(r.get("desired") or 0) for r in rows
                    if isinstance(r, dict) and isinstance(r.get("cluster"), str)}
        return {c: o.replicas for c, o in ours.items() if self._writable(c)}

    def _index(self, key: WorkloadKey, *, placed: Iterable[str],
               observed: Mapping[str, Observed]) -> None:
        on = set(placed) | set(observed)
        for cluster, keys in self._by_cluster.items():
            if cluster in on:
                keys.add(key)
            else:
                keys.discard(key)

    async def _apply(self, key: WorkloadKey, result: propagation.Plan, *,
                     dependent: DependentKey | None = None,
                     again: Callable[[float], None] | None = None) -> bool:
        """The plan's writes, concurrently across members; whether any was made. For a
        dependent's plan, `dependent` names it (its foreign objects are kept under it) and
        `again(delay)` plans it again (default: the workload `key` again)."""
        if not result.actions:
            return False
        foreign_key = dependent or key
        if again is None:
            def again(delay: float) -> None:
                if delay:
                    self._retry(key, delay)
                else:
                    self.mark([key])

        async def write(action: propagation.Action) -> bool:
            objects = self.members.get(action.cluster)
            if objects is None:  # it left meanwhile
                return False
            if not self._may_write():  # not now: once allowed, planned again
                self._held[foreign_key] = lambda: again(0)
                return False
            try:
                await objects.apply(action)
            except WriteError as exc:
                self.stats.write_errors += 1
                if exc.code == 409 and exc.reason == "AlreadyExists":
                    found = await objects.read(
                        kind=action.kind, namespace=action.namespace, name=action.name)
                    if found is not None and found.managed_by != self.owner:
                        self._foreign[(foreign_key, action.cluster)] = found
                        log.warning("replicas %s %s/%s: %s holds a %s %s of that name not "
                                    "managed by fed-dns: left alone (Conflict)", *key,
                                    action.cluster, action.kind, action.name)
                    again(0)
                    return False
                if exc.code == 409:  # our view was behind: the watch brings the new one
                    again(0.05)
                    return False
                raise
            self.stats.writes += 1
            if dependent is None:
                log.info("replicas %s %s/%s: %s %s on %s (replicas %d)", *key, action.verb,
                         action.kind, action.cluster, action.replicas)
            else:
                log.info("replicas %s %s/%s: %s %s %s/%s on %s", *key, action.verb, action.kind,
                         action.namespace, action.name, action.cluster)
            return True

        done = await asyncio.gather(*(write(a) for a in result.actions), return_exceptions=True)
        errors = [d for d in done if isinstance(d, BaseException)]
        if errors:
            raise errors[0]
        return any(done)

    async def _write_status(self, key: WorkloadKey, obj: dict, status: dict) -> None:
        old = obj.get("status") or {}
        if old == status:
            return
        if not self._may_write():
            self._held[key] = lambda: self.mark([key])
            return
        kind = FED_KINDS[key[0]]
        try:
            stored = await self.api.storage.update(kind, dict(obj, status=status),
                                                   subresource="status")
        except ApiError as exc:
            if exc.code in (404, 409):  # gone, or changed meanwhile: the watch marks it again
                self._retry(key, 0.05)
                return
            raise
        self.stats.status_writes += 1
        self.api.updated(key[0], stored.obj)


def _spec_replicas(obj: Mapping) -> int:
    replicas = (obj.get("spec") or {}).get("replicas")
    return replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else 0


def _moved(previous: Mapping[str, int], target: Mapping[str, int]) -> bool:
    return any(previous.get(c, 0) != n for c, n in target.items() if not c.startswith("__")) or \
        any(n and c not in target for c, n in previous.items() if not c.startswith("__"))
