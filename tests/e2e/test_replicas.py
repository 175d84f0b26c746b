"""The replica loop end to end: the federation API, simulated members, real health probes."""

from __future__ import annotations

import json
import time

import pytest

from fed_dns.federation.propagation import MANAGED_BY
from fed_dns.federation.workloads import PREFERENCES
from fed_dns.model import Health
from tests.e2e.replicas_harness import Federation, declared
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
    placement = {p["cluster"]: p for p in fed.loop.placements()[0]["clusters"]}
    assert placement["c2"]["reason"] == "ClusterUnreachable"

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
    foreign = tomcat(replicas=7)
    foreign.pop("apiVersion")
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
    assert fed.loop.stats.conflicts == 1


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


async def test_deleted_workload_removed_from_members(fed):
    await fed.start()
    await fed.create(tomcat())
    await spread(fed, {"c1": 2, "c2": 2})
    from fed_dns.apiserver import fedkinds
    await fed.api.storage.delete(fedkinds.DEPLOYMENT, namespace="default", name="tomcat")
    await spread(fed, {})


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
        await until(lambda: True)
        await __import__("asyncio").sleep(0.02)
