"""Dependents of federated workloads (pure): references, selection, member copies, desired
placement and the plans that follow from them."""

from __future__ import annotations

import pytest

from fed_dns.federation import dependents as d
from fed_dns.federation import propagation as p
from fed_dns.federation.workloads import OWNER, owner_label

OWNER_ID = "fed-dns/dependents.test."
LABEL = owner_label(OWNER_ID)


def template(**spec) -> dict:
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec}}


REFERENCES = [
    pytest.param(template(), set(), id="none"),
    pytest.param(template(volumes=[{"name": "v", "configMap": {"name": "cfg"}}]),
                 {("ConfigMap", "cfg")}, id="configmap-volume"),
    pytest.param(template(volumes=[{"name": "v", "secret": {"secretName": "tls"}}]),
                 {("Secret", "tls")}, id="secret-volume"),
    pytest.param(template(volumes=[{"name": "v", "projected": {"sources": [
        {"configMap": {"name": "a"}}, {"secret": {"name": "b"}},
        {"serviceAccountToken": {"path": "t"}}]}}]),
        {("ConfigMap", "a"), ("Secret", "b")}, id="projected"),
    pytest.param(template(containers=[{"name": "c", "envFrom": [
        {"configMapRef": {"name": "env-cm"}}, {"secretRef": {"name": "env-s"}}]}]),
        {("ConfigMap", "env-cm"), ("Secret", "env-s")}, id="envFrom"),
    pytest.param(template(containers=[{"name": "c", "env": [
        {"name": "A", "value": "plain"},
        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "k-cm", "key": "b"}}},
        {"name": "C", "valueFrom": {"secretKeyRef": {"name": "k-s", "key": "c"}}},
        {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]),
        {("ConfigMap", "k-cm"), ("Secret", "k-s")}, id="env-valueFrom"),
    pytest.param(template(initContainers=[{"name": "i", "envFrom": [
        {"secretRef": {"name": "init-s"}}]}]), {("Secret", "init-s")}, id="initContainers"),
    pytest.param(template(imagePullSecrets=[{"name": "regcred"}]), {("Secret", "regcred")},
                 id="imagePullSecrets"),
    pytest.param(template(volumes=[{"name": "v", "emptyDir": {}}, "junk",
                                   {"name": "w", "configMap": {"name": ""}},
                                   {"name": "x", "secret": {"name": "wrong-field"}}],
                          imagePullSecrets="junk"),
                 set(), id="malformed-and-unnamed-ignored"),
    pytest.param({"spec": None}, set(), id="no-spec"),
]


@pytest.mark.parametrize(("tmpl", "want"), REFERENCES)
def test_references(tmpl, want):
    assert d.references(tmpl) == want


def service(selector=None, *, type_: str = "ClusterIP", name: str = "web") -> dict:
    spec: dict = {"type": type_, "ports": [{"port": 80, "nodePort": 30080}]}
    if selector is not None:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


SELECTS = [
    pytest.param(service({"app": "web"}), {"app": "web", "tier": "x"}, True, id="subset"),
    pytest.param(service({"app": "web", "tier": "y"}), {"app": "web", "tier": "x"}, False,
                 id="one-differs"),
    pytest.param(service({"app": "db"}), {"app": "web"}, False, id="other-app"),
    pytest.param(service(None), {"app": "web"}, False, id="no-selector"),
    pytest.param(service({}), {"app": "web"}, False, id="empty-selector"),
    pytest.param(service({"app": "web"}, type_="ExternalName"), {"app": "web"}, False,
                 id="external-name"),
]


@pytest.mark.parametrize(("svc", "labels", "want"), SELECTS)
def test_selects(svc, labels, want):
    assert d.selects(svc, labels) is want


def test_uses_joins_references_and_selecting_services():
    obj = {"spec": {"template": template(volumes=[{"name": "v", "configMap": {"name": "cfg"}}])}}
    services = [service({"app": "web"}, name="web"), service({"app": "db"}, name="db"),
                service(None, name="headless-manual")]
    assert d.uses(obj, services) == {("ConfigMap", "cfg"), ("Service", "web")}


def test_member_copy_of_a_service_drops_allocated_fields_and_keeps_annotations():
    svc = service({"app": "web"})
    svc["spec"].update(clusterIP="10.0.0.7", clusterIPs=["10.0.0.7"], healthCheckNodePort=3)
    svc["metadata"].update(
        resourceVersion="9", uid="u", labels={"app": "web"},
        annotations={"fed-dns.io/export": "true",
                     "kubectl.kubernetes.io/last-applied-configuration": "{}"})
    svc["status"] = {"loadBalancer": {}}
    copy = d.member_copy(svc, owner_id=OWNER_ID)
    assert copy["spec"] == {"type": "ClusterIP", "selector": {"app": "web"},
                            "ports": [{"port": 80}]}
    assert copy["metadata"]["labels"] == {"app": "web", p.MANAGED_BY: LABEL}
    annotations = copy["metadata"]["annotations"]
    assert annotations["fed-dns.io/export"] == "true"
    assert annotations[OWNER] == OWNER_ID
    assert "kubectl.kubernetes.io/last-applied-configuration" not in annotations
    assert p.SPEC_HASH in annotations
    assert set(copy["metadata"]) == {"name", "namespace", "labels", "annotations"}
    assert "status" not in copy
    assert svc["spec"]["clusterIP"] == "10.0.0.7"  # the source is left as it was


@pytest.mark.parametrize(("source", "fields"), [
    pytest.param({"kind": "ConfigMap", "data": {"a": "1"}, "binaryData": {"b": "AA=="},
                  "immutable": True}, {"data", "binaryData", "immutable"}, id="configmap"),
    pytest.param({"kind": "Secret", "type": "kubernetes.io/tls", "data": {"k": "dg=="}},
                 {"type", "data"}, id="secret"),
])
def test_member_copy_of_data(source, fields):
    obj = dict(source, apiVersion="v1", metadata={"name": "x", "namespace": "ns"})
    copy = d.member_copy(obj, owner_id=OWNER_ID)
    assert set(copy) - {"apiVersion", "kind", "metadata"} == fields
    assert all(copy[f] == source[f] for f in fields)


def test_member_copy_hash_follows_the_data_only():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"},
          "metadata": {"name": "x", "namespace": "ns", "resourceVersion": "1"}}
    same = dict(cm, metadata=dict(cm["metadata"], resourceVersion="2", uid="u"))
    edited = dict(cm, data={"a": "2"})

    def digest(obj):
        return d.member_copy(obj, owner_id=OWNER_ID)["metadata"]["annotations"][p.SPEC_HASH]

    assert digest(cm) == digest(same)
    assert digest(cm) != digest(edited)


CM = ("ConfigMap", "default", "cfg")
SOURCES = {CM: {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"},
                "metadata": {"name": "cfg", "namespace": "default"}}}
NS = {"w1": "default", "w2": "default", "w3": "other"}
REF = frozenset({("ConfigMap", "cfg")})

DESIRED = [
    pytest.param({"w1": {"c1": REF}}, SOURCES, {"c1"}, id="where-it-runs"),
    pytest.param({"w1": {"c1": REF}, "w2": {"c2": REF}}, SOURCES, {"c1", "c2"},
                 id="shared-union"),
    pytest.param({"w1": {}, "w2": {"c2": REF}}, SOURCES, {"c2"},
                 id="shared-stays-while-one-runs"),
    pytest.param({"w1": {}}, SOURCES, set(), id="no-replicas-nowhere"),
    pytest.param({"w1": {"c1": REF}}, {}, set(), id="missing-in-api-nowhere"),
    pytest.param({"w3": {"c1": REF}}, SOURCES, set(), id="other-namespace-is-another-object"),
]


@pytest.mark.parametrize(("uses", "sources", "clusters"), DESIRED)
def test_desired(uses, sources, clusters):
    out = d.desired(uses=uses, namespaces=NS, sources=sources, owner_id=OWNER_ID, wanted=[CM])
    assert set(out[CM]) == clusters
    for body in out[CM].values():
        assert body["metadata"]["labels"][p.MANAGED_BY] == LABEL
        assert body["data"] == {"a": "1"}


def observed(obj: dict, *, rv: str = "5", managed: bool = True) -> p.Observed:
    meta = dict(obj["metadata"], resourceVersion=rv)
    if not managed:
        meta["labels"] = {}
    return p.Observed.of(dict(obj, metadata=meta))


def plan_for(clusters, seen, writable=("c1", "c2")):
    want = d.desired(uses={"w1": {c: REF for c in clusters}}, namespaces=NS, sources=SOURCES,
                     owner_id=OWNER_ID, wanted=[CM])[CM]
    return p.plan(desired=want, observed=seen, writable=writable, owner=LABEL,
                  kind="ConfigMap", namespace="default", name="cfg")


BODY = d.member_copy(SOURCES[CM], owner_id=OWNER_ID)
EDITED = d.member_copy(dict(SOURCES[CM], data={"a": "2"}), owner_id=OWNER_ID)

PLANS = [
    pytest.param(["c1"], {}, [("c1", "create")], (), id="created"),
    pytest.param(["c1"], {"c1": observed(BODY)}, [], (), id="in-sync-no-write"),
    pytest.param(["c1"], {"c1": observed(EDITED)}, [("c1", "update")], (), id="edited-updated"),
    pytest.param([], {"c1": observed(BODY)}, [("c1", "delete")], (), id="ours-removed"),
    pytest.param(["c1"], {"c1": observed(BODY, managed=False)}, [], ("c1",),
                 id="unlabelled-conflict"),
    pytest.param([], {"c1": observed(BODY, managed=False)}, [], ("c1",),
                 id="unlabelled-never-deleted"),
    pytest.param([], {"c3": observed(BODY)}, [], (), id="unreachable-left-alone"),
]


@pytest.mark.parametrize(("clusters", "seen", "verbs", "conflicts"), PLANS)
def test_plan_of_a_dependent(clusters, seen, verbs, conflicts):
    result = plan_for(clusters, seen)
    assert [(a.cluster, a.verb) for a in result.actions] == verbs
    assert result.conflicts == conflicts
    for action in result.actions:
        assert action.replicas == 0


def test_observed_of_a_configmap_has_no_replicas():
    assert observed(BODY).replicas == 0


CONFLICT = d.DependentConflict(cluster="c1", kind="ConfigMap", namespace="default", name="cfg")

WITH_CONFLICTS = [
    pytest.param({"replicas": 2}, [], {"replicas": 2}, id="none-unchanged"),
    pytest.param({"replicas": 2}, [CONFLICT, CONFLICT],
                 {"replicas": 2, "conditions": [{
                     "type": "Conflict", "status": "True", "reason": "DependentNotManaged",
                     "message": "dependents not managed by fed-dns (left alone): "
                                "ConfigMap default/cfg in c1"}]}, id="added-once"),
    pytest.param({"conditions": [{"type": "Conflict", "status": "True", "reason": "R",
                                  "message": "m"}]}, [CONFLICT],
                 {"conditions": [{"type": "Conflict", "status": "True", "reason": "R",
                                  "message": "m; dependents not managed by fed-dns (left "
                                             "alone): ConfigMap default/cfg in c1"}]},
                 id="merged-into-existing"),
]


@pytest.mark.parametrize(("status", "conflicts", "want"), WITH_CONFLICTS)
def test_with_conflicts(status, conflicts, want):
    assert d.with_conflicts(status, conflicts) == want
