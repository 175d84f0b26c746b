"""A simulated member that runs pods: Deployment -> ReplicaSet -> Pods, capacity, readiness,
statuses, EndpointSlices of selector Services; with the official client and kubectl."""

from __future__ import annotations

import asyncio
import ipaddress
import time

import pytest

from fed_dns.sim import objects
from fed_dns.sim.controllers import PodIps, default_pod_cidr
from tests.sim.conftest import serving
from tests.support import until as eventually
from tests.sim.test_kubectl import kubectl  # noqa: F401  (a fixture on this module's tls_sim)



@pytest.fixture
async def sim(tmp_path):
    """The conftest's `sim` (which the client fixtures use), running pods."""
    async with serving(tmp_path, name="c1", pods=True, ready_delay=0.3) as cluster:
        yield cluster


@pytest.fixture
async def tls_sim(tmp_path):
    async with serving(tmp_path, name="c7", use_tls=True, pods=True,
                       ready_delay=0.05) as cluster:
        yield cluster


def pods_of(cluster, namespace="ns", prefix=""):
    return [p for p in cluster.list(kind="Pod", namespace=namespace)
            if p["metadata"]["name"].startswith(prefix)]


def ready(pod) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod["status"].get("conditions", ()))


@pytest.mark.parametrize(
    ("name", "cidr"),
    [("c1", "10.1.0.0/16"), ("c12", "10.12.0.0/16"), ("member-300", "10.44.0.0/16")],
    ids=["c1", "c12", "number-mod-256"])
def test_default_pod_cidr(name, cidr):
    assert default_pod_cidr(name) == cidr


def test_pod_ips_skip_the_first_24_and_reuse_freed_ones_last():
    ips = PodIps("10.3.0.0/16")
    first = [ips.allocate() for _ in range(3)]
    assert first == ["10.3.1.1", "10.3.1.2", "10.3.1.3"]
    ips.release("10.3.1.2")
    assert ips.allocate() == "10.3.1.4"
    small = PodIps("10.9.0.0/30")
    assert [small.allocate(), small.allocate()] == ["10.9.0.1", "10.9.0.2"]
    with pytest.raises(RuntimeError, match="full"):
        small.allocate()


async def test_deployment_gets_a_replica_set_and_ready_pods(sim, apps, core):
    started = time.monotonic()
    await asyncio.to_thread(apps.create_namespaced_deployment, "default",
                            objects.deployment(name="web", namespace="default", replicas=3))

    def all_ready():
        d = sim.get(kind="Deployment", namespace="default", name="web")
        return d["status"].get("readyReplicas") == 3 and d

    d = await eventually(all_ready)
    assert time.monotonic() - started >= 0.3  # pods are Ready only after ready_delay
    assert {k: d["status"][k] for k in ("replicas", "readyReplicas", "availableReplicas",
                                        "updatedReplicas", "observedGeneration")} == {
        "replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "updatedReplicas": 3,
        "observedGeneration": 1}
    rs_list = await asyncio.to_thread(apps.list_namespaced_replica_set, "default")
    [rs] = rs_list.items
    assert rs.metadata.name.startswith("web-") and len(rs.metadata.name) == len("web-") + 10
    assert rs.metadata.owner_references[0].uid == d["metadata"]["uid"]
    assert (rs.spec.replicas, rs.status.ready_replicas) == (3, 3)
    pods = await asyncio.to_thread(core.list_namespaced_pod, "default", label_selector="app=web")
    assert len(pods.items) == 3
    for pod in pods.items:
        assert pod.metadata.owner_references[0].name == rs.metadata.name
        assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network("10.1.0.0/16")
        assert pod.status.phase == "Running" and pod.spec.node_name == "c1-node"
    assert len({p.status.pod_ip for p in pods.items}) == 3


async def test_scale_down_up_and_delete(sim, apps):
    sim.apply(objects.deployment(name="web", namespace="ns", replicas=4))
    await eventually(lambda: len([p for p in pods_of(sim) if ready(p)]) == 4)
    await asyncio.to_thread(apps.patch_namespaced_deployment_scale, "web", "ns",
                            {"spec": {"replicas": 1}})
    await eventually(lambda: len(pods_of(sim)) == 1)
    d = await eventually(lambda: (lambda d: d["status"].get("replicas") == 1 and d)(
        sim.get(kind="Deployment", namespace="ns", name="web")))
    assert (d["status"]["readyReplicas"], d["status"]["observedGeneration"]) == (1, 2)
    await asyncio.to_thread(apps.patch_namespaced_deployment_scale, "web", "ns",
                            {"spec": {"replicas": 2}})
    await eventually(lambda: len([p for p in pods_of(sim) if ready(p)]) == 2)
    await asyncio.to_thread(apps.delete_namespaced_deployment, "web", "ns")
    assert sim.list(kind="ReplicaSet", namespace="ns") == []
    assert pods_of(sim) == []  # the owner takes its ReplicaSet and Pods with it


async def test_template_change_rolls_to_a_new_replica_set(sim):
    sim.apply(objects.deployment(name="web", namespace="ns", replicas=2))
    await eventually(lambda: len([p for p in pods_of(sim) if ready(p)]) == 2)
    [old] = sim.list(kind="ReplicaSet", namespace="ns")
    sim.apply(objects.deployment(name="web", namespace="ns", replicas=2, image="nginx:2"))

    def rolled():
        sets = {rs["metadata"]["name"]: rs for rs in sim.list(kind="ReplicaSet",
                                                                  namespace="ns")}
        pods = pods_of(sim)
        return (len(sets) == 2 and sets[old["metadata"]["name"]]["spec"]["replicas"] == 0
                and len(pods) == 2 and all(ready(p) for p in pods)
                and all(p["spec"]["containers"][0]["image"] == "nginx:2" for p in pods))

    await eventually(rolled)
    d = sim.get(kind="Deployment", namespace="ns", name="web")
    await eventually(lambda: sim.get(kind="Deployment", namespace="ns",
                                        name="web")["status"].get("updatedReplicas") == 2)
    assert d["metadata"]["generation"] == 2


async def test_capacity_leaves_pods_pending_until_room(tmp_path):
    async with serving(tmp_path, name="c2", pods=True, capacity=2, ready_delay=0.01) as sim:
        rs = objects.deployment(name="tomcat", namespace="ns", replicas=3)
        rs["kind"] = "ReplicaSet"  # a member ReplicaSet (a Federation v1 workload) runs too
        sim.apply(rs)

        def two_ready():
            st = sim.get(kind="ReplicaSet", namespace="ns", name="tomcat")["status"]
            return st.get("readyReplicas") == 2 and st

        status = await eventually(two_ready)
        assert status["replicas"] == 3
        pods = pods_of(sim)
        pending = [p for p in pods if p["status"]["phase"] == "Pending"]
        assert len(pending) == 1 and "podIP" not in pending[0]["status"]
        assert all(p["status"]["podIP"].startswith("10.2.") for p in pods if p not in pending)
        sim.capacity = None
        await eventually(lambda: sim.get(kind="ReplicaSet", namespace="ns",
                                            name="tomcat")["status"].get("readyReplicas") == 3)
        sim.capacity = 1  # running pods stay; a deleted one is not replaced beyond it
        sim.apply(dict(rs, spec=dict(rs["spec"], replicas=0)))
        await eventually(lambda: pods_of(sim) == [])
        sim.apply(dict(rs, spec=dict(rs["spec"], replicas=2)))
        await eventually(lambda: len([p for p in pods_of(sim) if ready(p)]) == 1)
        assert len(pods_of(sim)) == 2


async def test_service_endpoint_slice_follows_ready_pods(sim, disco):
    sim.apply(objects.service(name="web", namespace="ns", selector={"app": "web"},
                                 ports=[{"name": "http", "port": 80, "targetPort": "http"}]))
    sim.apply(objects.service(name="other", namespace="ns", ports=[("http", 80)]))
    sim.apply(objects.deployment(name="web", namespace="ns", replicas=2, ports=[8080]))
    dep = sim.get(kind="Deployment", namespace="ns", name="web")
    dep["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"] = "http"
    sim.apply(dep)

    def endpoints():
        slices = sim.list(kind="EndpointSlice", namespace="ns")
        return {e["addresses"][0]: e["conditions"]["ready"] for s in slices
                for e in s["endpoints"]}

    def two_ready():
        eps = endpoints()
        return len(eps) == 2 and all(eps.values()) and eps

    eps = await eventually(two_ready)
    assert set(eps) == {p["status"]["podIP"] for p in pods_of(sim)}
    listed = await asyncio.to_thread(disco.list_namespaced_endpoint_slice, "ns",
                                     label_selector="kubernetes.io/service-name=web")
    [es] = listed.items
    assert es.metadata.labels["endpointslice.kubernetes.io/managed-by"] == \
        "endpointslice-controller.k8s.io"
    assert [(p.name, p.port) for p in es.ports] == [("http", 8080)]
    sim.apply(dict(dep, spec=dict(dep["spec"], replicas=1)))
    await eventually(lambda: len(endpoints()) == 1)
    sim.delete(kind="Service", namespace="ns", name="web")
    assert sim.list(kind="EndpointSlice", namespace="ns") == []


async def test_pods_stay_when_the_api_is_killed(sim):
    sim.apply(objects.deployment(name="web", namespace="ns", replicas=2))
    await eventually(lambda: len([p for p in pods_of(sim) if ready(p)]) == 2)
    sim.kill("stop")
    sim.apply(objects.deployment(name="web", namespace="ns", replicas=3))
    await eventually(lambda: len([p for p in pods_of(sim) if ready(p)]) == 3)
    await sim.revive()


async def test_kubectl_get_pods(tls_sim, kubectl):  # noqa: F811
    tls_sim.apply(objects.deployment(name="web", namespace="ns", replicas=2))
    await eventually(lambda: len([p for p in pods_of(tls_sim) if ready(p)]) == 2)
    out = await kubectl("get", "pods", "-n", "ns")
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert sorted(r.split()[1:4] for r in rows) == [["1/1", "Running", "0"]] * 2
    out = await kubectl("get", "rs", "-n", "ns")
    assert out.splitlines()[1].split()[1:4] == ["2", "2", "2"]
    out = await kubectl("get", "deploy", "web", "-n", "ns")
    assert out.splitlines()[1].split()[:2] == ["web", "2/2"]
    name = rows[0].split()[0]
    await kubectl("delete", "pod", name, "-n", "ns")
    await eventually(lambda: name not in {p["metadata"]["name"] for p in pods_of(tls_sim)}
                     and len([p for p in pods_of(tls_sim) if ready(p)]) == 2)
