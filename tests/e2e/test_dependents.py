"""Dependents follow their workload (issue 12): the ConfigMap, Secret and Service of a
federated workload exist in every member where it has replicas, before its pods; they move
with it when its cluster dies and are removed (ours only) where it has none; edits in the
federation API reach the members; a Secret's value is never logged."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from fed_dns.apiserver import fedkinds
from fed_dns.federation.propagation import MANAGED_BY
from fed_dns.federation.workloads import PREFERENCES
from tests.e2e.replicas_harness import Federation
from tests.support import until

SECRET_VALUE = "s3cr3t-never-logged-7f1c"
DETECTION = 2.0


@pytest.fixture
async def fed(tmp_path):
    federation = Federation(tmp_path)
    yield federation
    await federation.close()


class Added:
    """Every member's ADDED events in order: (cluster, kind, name)."""

    def __init__(self, fed: Federation) -> None:
        self.events: list[tuple[str, str, str]] = []
        for name, member in fed.members.items():
            member.store.listeners.append(
                lambda e, name=name: self.events.append(
                    (name, e.obj["kind"], e.obj["metadata"]["name"])) if e.type == "ADDED" else None)

    def index(self, cluster: str, kind: str, name: str | None = None) -> int:
        for i, (c, k, n) in enumerate(self.events):
            if c == cluster and k == kind and (name is None or n == name):
                return i
        raise AssertionError(f"no {kind} {name} added in {cluster}")

    async def before_pods(self, cluster: str) -> None:
        """Every dependent was added in `cluster` before web's Deployment, and that before
        its first Pod."""
        await until(lambda: any(e[:2] == (cluster, "Pod") for e in self.events),
                    what=f"pods in {cluster}")
        deployment_at = self.index(cluster, "Deployment", "web")
        for kind, name in DEPENDENTS:
            assert self.index(cluster, kind, name) < deployment_at < self.index(cluster, "Pod")


def web(*, replicas: int = 1, clusters=("c1", "c2")) -> dict:
    prefs = {"rebalance": True, "clusters": {c: {"weight": 1} for c in clusters}}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                         "annotations": {PREFERENCES: json.dumps(prefs)}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                         "containers": [{"name": "web", "image": "nginx:1",
                                         "env": [{"name": "TOKEN", "valueFrom": {
                                             "secretKeyRef": {"name": "web-token",
                                                              "key": "token"}}}],
                                         "volumeMounts": [{"name": "conf",
                                                           "mountPath": "/etc/web"}]}],
                         "volumes": [{"name": "conf", "configMap": {"name": "web-conf"}}]}}}}


def config_map(data: dict) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web-conf", "namespace": "default"}, "data": data}


SECRET = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
          "metadata": {"name": "web-token", "namespace": "default"},
          "data": {"token": base64.b64encode(SECRET_VALUE.encode()).decode()}}
SERVICE = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "web", "namespace": "default",
                        "annotations": {"fed-dns.io/export": "true"}},
           "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.9",
                    "ports": [{"name": "http", "port": 80, "targetPort": 80}]}}
DEPENDENTS = (("ConfigMap", "web-conf"), ("Secret", "web-token"), ("Service", "web"))


def held(fed: Federation, cluster: str) -> dict[str, dict | None]:
    return {kind: fed.member_object(cluster, kind, name) for kind, name in DEPENDENTS}


def placed(fed: Federation) -> set[str]:
    return {c for c, n in fed.spec_replicas("Deployment", "web").items() if n > 0}


async def test_dependents_follow_their_workload(fed, caplog):
    caplog.set_level(logging.DEBUG)
    await fed.start(clusters=("c1", "c2"), pods=True, ready_delay=0.05)
    added = Added(fed)
    for obj in (config_map({"index.html": "v1"}), SECRET, SERVICE):
        await fed.create(obj)
    await fed.create(web())
    await until(lambda: len(placed(fed)) == 1, what="web placed on one member")
    (first,) = placed(fed)
    other = "c2" if first == "c1" else "c1"
    await until(lambda: all(held(fed, first).values()), what=f"dependents in {first}")

    # before the workload and its pods, labelled ours, as the federation API has them
    await added.before_pods(first)
    objs = held(fed, first)
    owner = fed.loop.owner
    assert all(o["metadata"]["labels"][MANAGED_BY] == owner for o in objs.values())
    assert objs["ConfigMap"]["data"] == {"index.html": "v1"}
    assert objs["Secret"]["data"] == SECRET["data"]
    service = objs["Service"]
    assert service["metadata"]["annotations"]["fed-dns.io/export"] == "true"
    assert service["spec"]["clusterIP"] != "10.96.0.9"  # the member allocated its own
    assert held(fed, other) == dict.fromkeys(("ConfigMap", "Secret", "Service"))

    # the propagated Service is served like any other: an EndpointSlice of the pods
    def ready_endpoints() -> int:
        slices = fed.members[first].list(kind="EndpointSlice", namespace="default")
        return sum(1 for s in slices if s["metadata"]["labels"].get(
            "kubernetes.io/service-name") == "web" for e in s.get("endpoints") or ()
            if (e.get("conditions") or {}).get("ready"))

    await until(lambda: ready_endpoints() == 1, what="web's slice has its ready pod")

    # an edit in the federation API reaches the members
    await fed.replace(config_map({"index.html": "v2"}))
    await until(lambda: (fed.member_object(first, "ConfigMap", "web-conf") or {})
                .get("data") == {"index.html": "v2"}, what="v2 in the member")

    # its cluster dies: the workload moves, its dependents are there before it
    added.events.clear()
    fed.members[first].kill()
    await until(lambda: other in placed(fed), timeout=DETECTION + 3.0, what=f"web on {other}")
    await until(lambda: all(held(fed, other).values()), what=f"dependents in {other}")
    await added.before_pods(other)
    assert held(fed, other)["ConfigMap"]["data"] == {"index.html": "v2"}

    # back: the workload returns to its weighted place, and its dependents leave the
    # member where it has no replicas any more
    await fed.members[first].revive()
    await until(lambda: placed(fed) == {first}, timeout=DETECTION + 8.0,
                what=f"web back on {first} only ({fed.spec_replicas('Deployment', 'web')})")
    await until(lambda: held(fed, other) == dict.fromkeys(("ConfigMap", "Secret", "Service")),
                what=f"dependents gone from {other} ({held(fed, other)})")
    assert all(held(fed, first).values())

    assert SECRET_VALUE not in caplog.text
    assert SECRET["data"]["token"] not in caplog.text
    assert any("create ConfigMap default/web-conf" in r.getMessage() for r in caplog.records)


async def test_shared_dependent_stays_while_one_workload_runs(fed):
    await fed.start(clusters=("c1", "c2"), pods=True, ready_delay=0.05)
    await fed.create(config_map({"k": "v"}))
    await fed.create(SECRET)
    one = web(clusters=("c1",))
    two = web(clusters=("c1",))
    two["metadata"]["name"] = "web-two"
    await fed.create(one)
    await fed.create(two)
    await until(lambda: fed.member_object("c1", "ConfigMap", "web-conf") is not None,
                what="shared ConfigMap in c1")
    await until(lambda: fed.spec_replicas("Deployment", "web-two") == {"c1": 1},
                what="web-two on c1")
    # web moves to c2 only: web-two still runs in c1, so the ConfigMap stays there
    moved = web(clusters=("c2",))
    await fed.replace(moved)
    await until(lambda: fed.spec_replicas("Deployment", "web") == {"c2": 1}, what="web on c2")
    await until(lambda: fed.member_object("c2", "ConfigMap", "web-conf") is not None,
                what="shared ConfigMap in c2")
    assert fed.member_object("c1", "ConfigMap", "web-conf") is not None
    # web-two goes: nothing of ours in c1 uses it any more
    await fed.api.storage.delete(fedkinds.DEPLOYMENT, namespace="default", name="web-two")
    await until(lambda: fed.member_object("c1", "ConfigMap", "web-conf") is None,
                what="ConfigMap gone from c1")
    assert fed.member_object("c2", "ConfigMap", "web-conf") is not None


async def test_unlabelled_dependent_is_never_touched_and_shows_as_conflict(fed):
    await fed.start(clusters=("c1", "c2"), pods=True, ready_delay=0.05)
    mine = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web-conf", "namespace": "default", "labels": {"team": "x"}},
            "data": {"index.html": "theirs"}}
    fed.members["c2"].apply(mine)
    before = fed.member_object("c2", "ConfigMap", "web-conf")
    await fed.create(config_map({"index.html": "ours"}))
    await fed.create(SECRET)
    await fed.create(web(replicas=2))
    await until(lambda: fed.spec_replicas("Deployment", "web") == {"c1": 1, "c2": 1},
                what="web on both")

    def conflict() -> str:
        status = (fed.loop.api.get("Deployment", "default", "web") or {}).get("status") or {}
        return next((c["message"] for c in status.get("conditions") or ()
                     if c["type"] == "Conflict"), "")

    message = await until(conflict, what="Conflict condition")
    assert "ConfigMap default/web-conf in c2" in message
    assert fed.member_object("c1", "ConfigMap", "web-conf")["data"] == {"index.html": "ours"}
    assert fed.member_object("c2", "ConfigMap", "web-conf") == before
    assert fed.member_object("c2", "Secret", "web-token") is not None  # the rest is ours

    # web leaves c2: ours go, theirs stays as it was
    await fed.replace(web(replicas=1, clusters=("c1",)))
    await until(lambda: fed.member_object("c2", "Secret", "web-token") is None,
                what="our Secret gone from c2")
    assert fed.member_object("c2", "ConfigMap", "web-conf") == before
    await until(lambda: not conflict(), what="no Conflict once web left c2")


async def test_leftovers_of_ours_are_removed_and_deleted_sources_withdrawn(fed):
    await fed.start(clusters=("c1",), pods=True, ready_delay=0.05)
    await fed.create(config_map({"k": "v"}))
    await fed.create(SECRET)
    await fed.create(web(clusters=("c1",)))
    await until(lambda: fed.member_object("c1", "Secret", "web-token") is not None,
                what="Secret in c1")
    # a ConfigMap of ours that no workload uses (left by one deleted while we were away)
    fed.members["c1"].apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "left-over", "namespace": "default",
        "labels": {MANAGED_BY: fed.loop.owner}}, "data": {}})
    # and one of someone else's that no workload uses: never touched
    fed.members["c1"].apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "not-ours", "namespace": "default"}, "data": {}})
    await until(lambda: fed.member_object("c1", "ConfigMap", "left-over") is None,
                what="leftover removed")
    # the Secret deleted in the federation API: withdrawn from the members
    await fed.api.storage.delete(fedkinds.SECRET, namespace="default", name="web-token")
    await until(lambda: fed.member_object("c1", "Secret", "web-token") is None,
                what="deleted Secret withdrawn")
    assert fed.member_object("c1", "ConfigMap", "web-conf") is not None
    assert fed.member_object("c1", "ConfigMap", "not-ours") is not None
