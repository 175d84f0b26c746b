"""The store: one resourceVersion counter, metadata, history, watchers (no HTTP)."""

from __future__ import annotations

import json

import pytest

from fed_dns.sim import objects
from fed_dns.sim.cluster import SimCluster
from fed_dns.sim.kinds import ENDPOINT_SLICE, SERVICE
from fed_dns.apiserver.status import ApiError


def lines(watcher) -> list[dict]:
    return [json.loads(line) for line in watcher.take().splitlines()]


def test_one_counter_for_every_kind_and_server_filled_metadata():
    c = SimCluster(name="c")
    start = c.resource_version
    svc = c.apply(objects.service(name="a", namespace="ns"))  # creates namespace ns too
    es = c.apply(objects.endpoint_slice(service="a", namespace="ns"))
    assert int(svc["metadata"]["resourceVersion"]) == start + 2
    assert int(es["metadata"]["resourceVersion"]) == start + 3 == c.resource_version
    meta = svc["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z") and meta["generation"] == 1
    assert svc["spec"]["clusterIP"].startswith("10.9")
    assert c.get(kind="ns", name="ns")["status"] == {"phase": "Active"}

    again = c.apply(objects.service(name="a", namespace="ns", annotations={"x": "y"}))
    assert again["metadata"]["uid"] == meta["uid"]
    assert again["metadata"]["generation"] == 1  # metadata only: generation unchanged
    assert again["spec"]["clusterIP"] == svc["spec"]["clusterIP"]  # kept, like the API server
    changed = c.apply(objects.service(name="a", namespace="ns", ports=[("x", 81)]))
    assert changed["metadata"]["generation"] == 2


def test_builders():
    headless = objects.service(name="h", namespace="ns", headless=True)
    assert headless["spec"]["clusterIP"] == "None"
    ext = objects.service(name="e", namespace="ns", external_name="db.example.com", ports=())
    assert ext["spec"] == {"type": "ExternalName", "externalName": "db.example.com"}
    lb = objects.service(name="l", namespace="ns", type="LoadBalancer", lb_ips=["192.0.2.1"],
                         ports=[("dns", 53, "UDP")])
    assert lb["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.1"}]
    assert lb["spec"]["ports"] == [{"port": 53, "protocol": "UDP", "name": "dns"}]
    es = objects.endpoint_slice(service="h", namespace="ns", name="h-1",
                                endpoints=[("fd00::1", True, "h-0")], address_type="IPv6")
    assert es["endpoints"][0] == {"addresses": ["fd00::1"], "hostname": "h-0",
                                  "conditions": {"ready": True, "serving": True,
                                                 "terminating": False}}
    c = SimCluster(name="c")
    stored = c.apply(lb)
    assert stored["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.1"}]


def test_delete_event_carries_a_new_version_and_namespace_delete_cascades():
    c = SimCluster(name="c")
    c.apply(objects.service(name="a", namespace="ns"))
    w = c.store.watch(SERVICE, namespace=None, matcher=None, resource_version=c.resource_version)
    gone = c.delete(kind="Service", namespace="ns", name="a")
    assert int(gone["metadata"]["resourceVersion"]) == c.resource_version
    (event,) = lines(w)
    assert event["type"] == "DELETED"
    assert event["object"]["metadata"]["resourceVersion"] == str(c.resource_version)
    assert c.delete(kind="Service", namespace="ns", name="a") is None

    c.apply(objects.service(name="b", namespace="ns"))
    c.apply(objects.endpoint_slice(service="b", namespace="ns"))
    c.delete(kind="Namespace", name="ns")
    assert c.list(kind="svc") == [] and c.list(kind="endpointslices") == []


def test_watch_history_compaction_and_initial_events():
    c = SimCluster(name="c", history_limit=100)
    c.apply(objects.service(name="a", namespace="ns"))
    rv = c.resource_version
    c.apply(objects.service(name="b", namespace="ns"))
    c.apply(objects.endpoint_slice(service="b", namespace="ns"))
    w = c.store.watch(SERVICE, namespace="ns", matcher=None, resource_version=rv)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in lines(w)] == [("ADDED", "b")]
    initial = c.store.watch(SERVICE, namespace=None, matcher=None, resource_version=None,
                            send_initial=True)
    events = lines(initial)
    assert [e["type"] for e in events] == ["ADDED", "ADDED", "BOOKMARK"]
    assert events[-1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    c.compact()
    with pytest.raises(ApiError) as exc:
        c.store.watch(SERVICE, namespace=None, matcher=None, resource_version=rv)
    assert exc.value.code == 410 and exc.value.status["reason"] == "Expired"
    c.store.watch(SERVICE, namespace=None, matcher=None, resource_version=c.resource_version)


def test_slow_watcher_is_ended_not_buffered_forever():
    c = SimCluster(name="c")
    c.store.max_watch_buffer = 10_000
    w = c.store.watch(ENDPOINT_SLICE, namespace=None, matcher=None,
                      resource_version=c.resource_version)
    for n in range(50):
        c.apply(objects.endpoint_slice(service=f"s{n}", namespace="ns"))
    assert w.closed and w.overflowed


def test_ready_limit_per_cluster_and_per_deployment():
    c = SimCluster(name="c", ready_limit=1)
    d = c.apply(objects.deployment(name="d", namespace="ns", replicas=3))
    assert d["status"]["readyReplicas"] == 1 and d["status"]["unavailableReplicas"] == 2
    e = c.apply(objects.deployment(name="e", namespace="ns", replicas=3,
                                   annotations={"sim.fed-dns.io/ready-limit": "0"}))
    assert "readyReplicas" not in e["status"]
    c.ready_limit = None
    assert c.get(kind="deploy", namespace="ns", name="d")["status"]["readyReplicas"] == 3
    assert "readyReplicas" not in c.get(kind="deploy", namespace="ns", name="e")["status"]
