"""The replica loop end to end: the federation API, simulated members, real health probes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import pytest

from fed_dns.federation.propagation import MANAGED_BY
from fed_dns.federation.workloads import PREFERENCES
from fed_dns.model import Health
from tests.e2e.replicas_harness import Federation, declared, eventually
from tests.support import until

DETECTION = 2.0  # generous bound on the probes' declaration (period 0.1 s, 2 failures)


def tomcat(*, kind: str = "Deployment", replicas: int = 4, rebalance: bool = True,
           clusters: dict | None = None) -> dict:
    prefs = {"rebalance": rebalance,
             "clusters": clusters or {"c1": {"weight": 1}, "c2": {"weight": 1}}}
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": "tomcat", "namespace": "default", "labels": {"app": "tomcat"},
                         "annotations": {PREFERENCES: json.dumps(prefs)}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "tomcat"}},
                     "template": {"metadata": {"labels": {"app": "tomcat"}},
                                  "spec": {"containers": [{"name": "fed-tomcat",
                                                           "image": "tomcat:9"}]}}}}


@pytest.fixture
async def fed(tmp_path):
    federation = Federation(tmp_path)
    yield federation
    await federation.close()


async def spread(fed: Federation, want: dict, *, kind: str = "Deployment", timeout: float = 10.0,
                 name: str = "tomcat") -> None:
    await until(lambda: fed.spec_replicas(kind, name) == want, timeout=timeout,
                what=f"{want} (have {fed.spec_replicas(kind, name)})")


async def test_failover_and_graceful_failback(fed):
    await fed.start()
    await fed.create(tomcat())
    await spread(fed, {"c1": 2, "c2": 2})
    obj = fed.member_object("c1", "Deployment", "tomcat")
    assert obj["metadata"]["labels"][MANAGED_BY] == fed.loop.owner
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "tomcat:9"
    status = await until(lambda: _status_ready(fed, 4), what="status 4 ready")
    assert [(p["cluster"], p["desired"]) for p in status["placement"]] == [("c1", 2), ("c2", 2)]

    killed = time.monotonic()
    fed.members["c2"].kill()
    await until(lambda: fed.spec_replicas("Deployment", "tomcat").get("c1") == 4,
                timeout=DETECTION + 2.0, what="c1 holds 4")
    moved = time.monotonic()
    at = declared(fed, "c2", Health.UNREACHABLE, after=killed)
    assert at is not None and moved - at < 2.0
    # its own object is left as it is while it cannot be reached
    assert fed.member_object("c2", "Deployment", "tomcat")["spec"]["replicas"] == 2
    await until(lambda: _reasons(fed).get("c2") == "ClusterUnreachable",
                what=f"c2 ClusterUnreachable ({_reasons(fed)})")

    # back: c2 scaled up first, c1 down only as c2's replicas are ready
    fed.members["c2"].ready_limit = 0  # its pods are not ready yet
    await fed.members["c2"].revive()
    await spread(fed, {"c1": 4, "c2": 2}, timeout=DETECTION + 3.0)
    await _hold(fed, {"c1": 4, "c2": 2}, seconds=0.5)
    fed.members["c2"].ready_limit = 1
    await spread(fed, {"c1": 3, "c2": 2})
    fed.members["c2"].ready_limit = None
    await spread(fed, {"c1": 2, "c2": 2})
    assert fed.loop.stats.reschedules >= 2


async def test_rebalance_false_scales_the_stale_copy_to_zero(fed):
    await fed.start()
    await fed.create(tomcat(rebalance=False))
    await spread(fed, {"c1": 2, "c2": 2})
    fed.members["c2"].kill()
    await spread(fed, {"c1": 4, "c2": 2}, timeout=DETECTION + 2.0)
    await fed.members["c2"].revive()
    await spread(fed, {"c1": 4, "c2": 0}, timeout=DETECTION + 3.0)
    await _hold(fed, {"c1": 4, "c2": 0}, seconds=0.5)


async def test_unlabelled_object_is_never_touched(fed):
    await fed.start()
    fed.members["c2"].apply(dict(tomcat(replicas=7), metadata={
        "name": "tomcat", "namespace": "default", "labels": {"app": "someone-else"}}))
    before = fed.member_object("c2", "Deployment", "tomcat")
    await fed.create(tomcat())
    await spread(fed, {"c1": 2, "c2": 7})
    status = await until(lambda: _conflict(fed), what="Conflict condition")
    assert "c2" in status["conditions"][0]["message"]
    assert [p["reason"] for p in status["placement"]] == ["Scheduled", "Conflict"]
    after = fed.member_object("c2", "Deployment", "tomcat")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    # Counted at the end of the run that wrote the status: when the first run's create met
    # the foreign object (its view did not hold it yet), the next run writes the Conflict
    # and the count follows once that run is over.
    await until(lambda: fed.loop.stats.conflicts == 1, what="the conflict counted")


async def test_a_non_leader_writes_nothing(fed):
    fed.leader = False
    await fed.start()
    await fed.create(tomcat())
    await until(lambda: fed.loop.placements(), what="a plan")
    await _hold(fed, {}, seconds=0.5)
    assert fed.loop.stats.writes == 0 and fed.loop.stats.status_writes == 0
    fed.leader = True
    fed.loop.on_leader(True)
    await spread(fed, {"c1": 2, "c2": 2})


async def test_writes_refused_for_a_moment_are_made_once_allowed(fed):
    """may_write() is asked right before each write; a leader that may not write for a moment
    (its lease not known to be alive just then: no on_leader call) loses no write: what it
    skipped is planned again once it may write, not at the next resync (30 s)."""
    fed.leader = False
    await fed.start()
    await fed.create(tomcat())
    await until(lambda: fed.loop.placements(), what="a plan")
    await _hold(fed, {}, seconds=0.5)
    fed.leader = True  # and no on_leader(True)
    await spread(fed, {"c1": 2, "c2": 2}, timeout=5.0)
    await until(lambda: _status_ready(fed, 4), what="status written")


async def test_a_member_changed_by_hand_is_put_back_at_once(fed):
    """Level-triggered on the members' watches: a managed object scaled or deleted in a member
    is put back within a moment, not at the next resync (30 s)."""
    await fed.start()
    await fed.create(tomcat())
    await spread(fed, {"c1": 2, "c2": 2})
    edited = fed.member_object("c1", "Deployment", "tomcat")
    fed.members["c1"].apply(dict(edited, spec=dict(edited["spec"], replicas=7)))
    fed.members["c2"].delete(kind="Deployment", namespace="default", name="tomcat")
    await spread(fed, {"c1": 2, "c2": 2}, timeout=3.0)


async def test_a_member_no_longer_placed_loses_its_copy(fed):
    await fed.start()
    await fed.create(tomcat())
    await spread(fed, {"c1": 2, "c2": 2})
    await fed.replace(tomcat(clusters={"c1": {"weight": 1}}))
    await spread(fed, {"c1": 4})


async def test_deleted_workload_removed_from_members(fed):
    await fed.start()
    await fed.create(tomcat())
    await spread(fed, {"c1": 2, "c2": 2})
    from fed_dns.apiserver import fedkinds
    await fed.api.storage.delete(fedkinds.DEPLOYMENT, namespace="default", name="tomcat")
    await spread(fed, {})


def _reasons(fed: Federation) -> dict[str, str]:
    """cluster -> the reason of its placement (the first workload's)."""
    placements = fed.loop.placements()
    return {p["cluster"]: p["reason"] for p in placements[0]["clusters"]} if placements else {}


def _status(fed: Federation, kind: str = "deployments", name: str = "tomcat") -> dict:
    stored = fed.api.objects.store.get(_kind(kind), namespace="default", name=name)
    return (stored.obj.get("status") or {}) if stored else {}


def _kind(name: str):
    from fed_dns.apiserver import fedkinds
    return fedkinds.REGISTRY.find(name)


def _status_ready(fed: Federation, n: int, kind: str = "deployments") -> dict | None:
    status = _status(fed, kind)
    return status if status.get("readyReplicas") == n and status.get("replicas") == n else None


def _conflict(fed: Federation) -> dict | None:
    status = _status(fed)
    return status if status.get("conditions") else None


async def _hold(fed: Federation, want: dict, *, seconds: float, kind: str = "Deployment") -> None:
    """The members keep `want` for `seconds` (nothing moves early)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert fed.spec_replicas(kind, "tomcat") == want
        await asyncio.sleep(0.02)


def _containers(fed: Federation, cluster: str, name: str) -> list[str]:
    obj = fed.member_object(cluster, "Deployment", name)
    return [c["image"] for c in obj["spec"]["template"]["spec"]["containers"]]


def _web_template(replicas: int) -> dict:
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web",
                                                           "image": "nginx:1"}]}}}}


async def test_kubefed_overrides_of_replicas_and_image(fed):
    await fed.start()
    await fed.create({
        "apiVersion": "types.kubefed.io/v1beta1", "kind": "FederatedDeployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"template": _web_template(3),
                 "placement": {"clusters": [{"name": "c1"}, {"name": "c2"}]},
                 "overrides": [{"clusterName": "c2", "clusterOverrides": [
                     {"path": "/spec/replicas", "value": 5},
                     {"path": "/spec/template/spec/containers/0/image", "value": "nginx:2"}]}]}})
    await until(lambda: fed.spec_replicas("Deployment", "web", "shop") == {"c1": 3, "c2": 5},
                what="3 + 5", timeout=10)
    # the namespace was created in the members
    assert fed.members["c1"].get(kind="Namespace", name="shop") is not None
    c1 = fed.member_object("c1", "Deployment", "web", "shop")
    c2 = fed.member_object("c2", "Deployment", "web", "shop")
    assert [c["image"] for c in c1["spec"]["template"]["spec"]["containers"]] == ["nginx:1"]
    assert [c["image"] for c in c2["spec"]["template"]["spec"]["containers"]] == ["nginx:2"]
    stored = fed.api.objects.store.get(_kind("FederatedDeployment"), namespace="shop", name="web")
    await until(lambda: (fed.api.objects.store.get(_kind("FederatedDeployment"), namespace="shop",
                                                   name="web").obj.get("status") or {})
                .get("readyReplicas") == 8, what="status 8 ready")
    assert stored is not None


async def test_kubefed_rsp_min_and_max(fed):
    await fed.start(clusters=("c1", "c2", "c3"))
    await fed.create({
        "apiVersion": "scheduling.kubefed.io/v1alpha1", "kind": "ReplicaSchedulingPreference",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"targetKind": "FederatedDeployment", "totalReplicas": 10, "rebalance": True,
                 "clusters": {"c1": {"weight": 1, "minReplicas": 4},
                              "c2": {"weight": 1, "maxReplicas": 2}, "*": {"weight": 1}}}})
    await fed.create({
        "apiVersion": "types.kubefed.io/v1beta1", "kind": "FederatedDeployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"template": _web_template(1),
                 "placement": {"clusters": [{"name": "c1"}, {"name": "c2"}, {"name": "c3"}]}}})
    await spread(fed, {"c1": 6, "c2": 2, "c3": 2}, name="web")
    fed.members["c3"].kill()
    await spread(fed, {"c1": 8, "c2": 2, "c3": 2}, name="web", timeout=DETECTION + 2.0)


async def test_karmada_static_weights_and_image_overrider(fed):
    await fed.start(clusters=("c1", "c2", "c3"))
    await fed.create({
        "apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": "web"}],
                 "placement": {
                     "clusterAffinity": {"clusterNames": ["c1", "c2"]},
                     "replicaScheduling": {
                         "replicaSchedulingType": "Divided",
                         "weightPreference": {"staticWeightList": [
                             {"targetCluster": {"clusterNames": ["c1"]}, "weight": 1},
                             {"targetCluster": {"clusterNames": ["c2"]}, "weight": 2}]}}}}})
    await fed.create({
        "apiVersion": "policy.karmada.io/v1alpha1", "kind": "OverridePolicy",
        "metadata": {"name": "web-image", "namespace": "default"},
        "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": "web"}],
                 "overrideRules": [{"targetCluster": {"clusterNames": ["c2"]},
                                    "overriders": {"imageOverrider": [
                                        {"component": "Tag", "operator": "replace",
                                         "value": "1.25"}]}}]}})
    await fed.create(dict(_web_template(6), apiVersion="apps/v1", kind="Deployment",
                          metadata={"name": "web", "namespace": "default",
                                    "labels": {"app": "web"}}))
    await spread(fed, {"c1": 2, "c2": 4}, name="web")
    assert _containers(fed, "c1", "web") == ["nginx:1"]
    assert _containers(fed, "c2", "web") == ["nginx:1.25"]


async def test_a_member_at_capacity_sheds_after_unschedulable_after(fed):
    await fed.start(unschedulable_after=0.5)
    fed.members["c1"].ready_limit = 1  # c1 can hold only one ready replica
    await fed.create(tomcat())
    await spread(fed, {"c1": 2, "c2": 2})
    t0 = time.monotonic()
    await spread(fed, {"c1": 1, "c2": 3}, timeout=5.0)
    assert time.monotonic() - t0 >= 0.3  # not before unschedulable_after
    await until(lambda: _reasons(fed).get("c1") == "AtCapacity",
                what=f"c1 AtCapacity ({_reasons(fed)})")
    await _hold(fed, {"c1": 1, "c2": 3}, seconds=1.0)  # the cap holds: no oscillation


async def test_kubectl_get_and_rollout_status_on_the_federation_api(fed):
    await fed.start()
    await fed.create(tomcat())
    rollout = await kubectl(fed, "rollout", "status", "deployment/tomcat", "--timeout=20s")
    assert rollout.returncode == 0, rollout.stderr
    assert "successfully rolled out" in rollout.stdout
    got = await kubectl(fed, "get", "deployment", "tomcat", "--no-headers")
    assert got.returncode == 0, got.stderr
    assert got.stdout.split()[1:4] == ["4/4", "4", "4"]


async def test_federation_api_on_real_etcd(fed, etcd_server):
    """The same loop over the etcd store: placement, failover, status written back."""
    await fed.start(etcd_url=etcd_server.url, owner="fed-dns/replicas-etcd.test.")
    await fed.create(tomcat())
    await spread(fed, {"c1": 2, "c2": 2})
    fed.members["c2"].kill()
    await spread(fed, {"c1": 4, "c2": 2}, timeout=DETECTION + 2.0)
    want = {"c1": "Scheduled", "c2": "ClusterUnreachable"}

    async def unreachable_recorded() -> dict | None:
        status = (await fed.get("deployments", "tomcat") or {}).get("status") or {}
        reasons = {p["cluster"]: p["reason"] for p in status.get("placement") or ()}
        return status if reasons == want else None

    # the status from before the kill already says 4 ready: wait for the reasons first
    status = await eventually(unreachable_recorded, what=f"placement {want} in etcd")
    assert status.get("observedGeneration") == 1
    assert (status.get("replicas"), status.get("readyReplicas")) == (4, 4)
    from fed_dns.apiserver import fedkinds
    await fed.api.storage.delete(fedkinds.DEPLOYMENT, namespace="default", name="tomcat")
    await until(lambda: "c1" not in fed.spec_replicas("Deployment", "tomcat"),
                what="removed from c1")


# -- the seed scenario: federation.md's ReplicaSet on members that run pods ----------------


def seed_replica_set(*, api_version: str = "apps/v1", rebalance: bool = True) -> dict:
    """federation.md's tomcat manifest (Federation v1, weights 1:1)."""
    prefs = {"rebalance": rebalance, "clusters": {"c1": {"weight": 1}, "c2": {"weight": 1}}}
    return {"apiVersion": api_version, "kind": "ReplicaSet",
            "metadata": {"name": "tomcat", "labels": {"app": "tomcat"},
                         "annotations": {PREFERENCES: json.dumps(prefs)}},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "tomcat"}},
                     "template": {"metadata": {"labels": {"app": "tomcat"}},
                                  "spec": {"containers": [{
                                      "name": "fed-tomcat", "image": "tomcat:9",
                                      "resources": {"requests": {"cpu": "200m",
                                                                 "memory": "500Mi"}},
                                      "ports": [{"containerPort": 80}]}]}}}}


def sigstop(member) -> None:
    """What SIGSTOP does to a member's API server: connections are still accepted (the
    kernel's backlog) but nothing is answered and open watches stall, so the member is
    declared unreachable by probe timeouts, not by refused connections. `revive()` is the
    SIGCONT (what was asked meanwhile is cut, as clients have given up on it by then)."""
    member.kill("hang")


def rs_spread(fed: Federation) -> dict[str, int]:
    return fed.spec_replicas("ReplicaSet", "tomcat")


def ready_pods(fed: Federation, cluster: str) -> list[str]:
    """The addresses of the member's ready tomcat pods."""
    return sorted(p["status"]["podIP"] for p in fed.members[cluster].list(kind="Pod",
                                                                          namespace="default")
                  if p["metadata"]["labels"].get("app") == "tomcat"
                  and any(c["type"] == "Ready" and c["status"] == "True"
                          for c in p["status"].get("conditions") or ()))


def member_ready(fed: Federation, cluster: str) -> int:
    obj = fed.member_object(cluster, "ReplicaSet", "tomcat")
    return ((obj or {}).get("status") or {}).get("readyReplicas", 0)


class Floor:
    """Checks on every change of either member that c1's spec.replicas stays at or above
    `total` - c2's ready replicas (c1 is scaled down only as c2's replicas become ready), and
    records the values c1's spec.replicas took."""

    def __init__(self, fed: Federation, *, total: int) -> None:
        self.fed, self.total = fed, total
        self.violations: list[tuple[int, int]] = []
        self.c1: list[int] = []
        for member in fed.members.values():
            member.store.listeners.append(self._check)

    def _check(self, _event) -> None:
        c1 = rs_spread(self.fed).get("c1", 0)
        if not self.c1 or self.c1[-1] != c1:
            self.c1.append(c1)
        c2_ready = member_ready(self.fed, "c2")
        if c1 < self.total - c2_ready:
            self.violations.append((c1, c2_ready))

    def close(self) -> None:
        for member in self.fed.members.values():
            member.store.listeners.remove(self._check)


async def kubectl(fed: Federation, *args: str, stdin: str | None = None):
    return await asyncio.to_thread(
        subprocess.run, ["kubectl", "--kubeconfig", str(fed.kubeconfig()), *args],
        input=stdin, capture_output=True, text=True, timeout=60)


async def kubectl_create(fed: Federation, manifest: dict) -> None:
    """`kubectl create -f` on the federation API (the namespace comes from the request)."""
    created = await kubectl(fed, "create", "-f", "-", stdin=json.dumps(manifest))
    assert created.returncode == 0, created.stderr


async def federated_rs_ready(fed: Federation, *, placed: dict[str, int]) -> dict:
    """Wait for the federated ReplicaSet's status: 4 ready and the placement `placed`."""
    def done() -> dict | None:
        status = _status(fed, "replicasets")
        desired = {p["cluster"]: p["desired"] for p in status.get("placement") or ()}
        return status if (status.get("replicas"), status.get("readyReplicas"), desired) == (
            4, 4, placed) else None
    return await until(done, timeout=10.0, what=f"federated status 4/4 placed {placed} "
                                               f"(have {_status(fed, 'replicasets')})")


async def assert_kubectl_get_rs_4_4_4(fed: Federation) -> None:
    got = await kubectl(fed, "get", "rs", "tomcat")
    assert got.returncode == 0, got.stderr
    header, row = got.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "DESIRED", "CURRENT", "READY"]
    assert row.split()[:4] == ["tomcat", "4", "4", "4"]


@pytest.mark.parametrize("api_version", ["apps/v1", "extensions/v1beta1"])
async def test_seed_scenario_replica_set_fails_over_and_back(fed, api_version):
    await fed.start(pods=True)
    await kubectl_create(fed, seed_replica_set(api_version=api_version))
    await until(lambda: rs_spread(fed) == {"c1": 2, "c2": 2}, what="2 + 2")
    await until(lambda: len(ready_pods(fed, "c1")) == 2 and len(ready_pods(fed, "c2")) == 2,
                what="2 ready pods in each member")
    assert all(ip.startswith("10.2.") for ip in ready_pods(fed, "c2"))
    await federated_rs_ready(fed, placed={"c1": 2, "c2": 2})
    await assert_kubectl_get_rs_4_4_4(fed)

    killed = time.monotonic()
    sigstop(fed.members["c2"])
    await until(lambda: rs_spread(fed).get("c1") == 4, timeout=DETECTION + 2.0,
                what=f"c1 holds 4 (have {rs_spread(fed)})")
    moved = time.monotonic()
    at = declared(fed, "c2", Health.UNREACHABLE, after=killed)
    assert at is not None and moved - at < 2.0, (at, moved)
    assert rs_spread(fed)["c2"] == 2  # a control-plane partition: its copy left as it is
    await until(lambda: len(ready_pods(fed, "c1")) == 4, what="4 ready pods in c1")

    floor = Floor(fed, total=4)
    try:
        await fed.members["c2"].revive()
        await until(lambda: rs_spread(fed) == {"c1": 2, "c2": 2}, timeout=DETECTION + 3.0,
                    what=f"back to 2 + 2 (have {rs_spread(fed)})")
    finally:
        floor.close()
    assert floor.violations == []
    await until(lambda: len(ready_pods(fed, "c1")) == 2, what="c1 back to 2 pods")
    await federated_rs_ready(fed, placed={"c1": 2, "c2": 2})
    await assert_kubectl_get_rs_4_4_4(fed)


async def test_seed_scenario_c1_waits_for_the_returning_members_pods(fed):
    """c2 comes back with its pods gone (capacity 0 while it was away): c1 keeps 4 until c2's
    replacements are ready, then steps down one ready pod at a time."""
    await fed.start(pods=True)
    await kubectl_create(fed, seed_replica_set())
    await until(lambda: member_ready(fed, "c1") == 2 and member_ready(fed, "c2") == 2,
                what="2 + 2 ready")
    c2 = fed.members["c2"]
    sigstop(c2)
    await until(lambda: rs_spread(fed).get("c1") == 4, timeout=DETECTION + 2.0, what="c1 holds 4")
    await until(lambda: member_ready(fed, "c1") == 4, what="c1's 4 ready")
    c2.capacity = 0
    for pod in c2.list(kind="Pod", namespace="default"):
        c2.delete(kind="Pod", namespace="default", name=pod["metadata"]["name"])
    await until(lambda: member_ready(fed, "c2") == 0 and ready_pods(fed, "c2") == [],
                what="c2's pods gone")

    floor = Floor(fed, total=4)
    try:
        await c2.revive()
        await until(lambda: fed.loop.health["c2"] is Health.READY, timeout=DETECTION + 3.0,
                    what="c2 ready again")
        await until(lambda: _reasons(fed).get("c2") == "Scheduled", what="c2 placed again")
        await _hold(fed, {"c1": 4, "c2": 2}, seconds=0.5, kind="ReplicaSet")  # nothing ready in c2: c1 stays
        c2.capacity = 1
        await until(lambda: rs_spread(fed) == {"c1": 3, "c2": 2}, what="c1 down to 3")
        c2.capacity = None
        await until(lambda: rs_spread(fed) == {"c1": 2, "c2": 2}, what="c1 down to 2")
    finally:
        floor.close()
    assert floor.violations == []
    assert floor.c1 == [4, 3, 2]
    await federated_rs_ready(fed, placed={"c1": 2, "c2": 2})


async def test_seed_scenario_rebalance_false(fed):
    await fed.start(pods=True)
    await kubectl_create(fed, seed_replica_set(rebalance=False))
    await until(lambda: member_ready(fed, "c1") == 2 and member_ready(fed, "c2") == 2,
                what="2 + 2 ready")
    sigstop(fed.members["c2"])
    await until(lambda: rs_spread(fed) == {"c1": 4, "c2": 2}, timeout=DETECTION + 2.0,
                what="c1 holds 4")
    await fed.members["c2"].revive()
    await until(lambda: rs_spread(fed) == {"c1": 4, "c2": 0}, timeout=DETECTION + 3.0,
                what=f"c2's stale copy at 0 (have {rs_spread(fed)})")
    await until(lambda: ready_pods(fed, "c2") == [], what="c2's pods gone")
    await _hold(fed, {"c1": 4, "c2": 0}, seconds=0.5, kind="ReplicaSet")
    await federated_rs_ready(fed, placed={"c1": 4, "c2": 0})
    await assert_kubectl_get_rs_4_4_4(fed)


async def test_c1_keeps_its_starting_replicas_until_c2s_are_ready(fed):
    """c2 returns while c1's 2 extra replicas are still starting (Pending: c1 has room for 2
    pods) and c2's own pods are gone: c1 must stay at 4 until c2 has ready replicas."""
    await fed.start(pods=True)
    await kubectl_create(fed, seed_replica_set())
    await until(lambda: member_ready(fed, "c1") == 2 and member_ready(fed, "c2") == 2,
                what="2 + 2 ready")
    c1, c2 = fed.members["c1"], fed.members["c2"]
    c1.capacity = 2
    sigstop(c2)
    await until(lambda: rs_spread(fed).get("c1") == 4, timeout=DETECTION + 2.0, what="c1 holds 4")
    c2.capacity = 0
    for pod in c2.list(kind="Pod", namespace="default"):
        c2.delete(kind="Pod", namespace="default", name=pod["metadata"]["name"])
    await until(lambda: member_ready(fed, "c2") == 0, what="c2's pods gone")
    floor = Floor(fed, total=4)
    try:
        await c2.revive()
        await until(lambda: _reasons(fed).get("c2") == "Scheduled" and
                    fed.loop.health["c2"] is Health.READY, timeout=DETECTION + 3.0,
                    what="c2 placed again")
        await _hold(fed, {"c1": 4, "c2": 2}, seconds=1.0, kind="ReplicaSet")
    finally:
        floor.close()
    assert floor.violations == []
