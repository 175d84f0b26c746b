"""The federation API's admission as a pure function: each rejection names its field."""

from __future__ import annotations

import json

import pytest

from fed_dns.apiserver import fedkinds as k
from fed_dns.apiserver.admission import PREFERENCES, defaults, validate
from fed_dns.apiserver.status import ApiError

CLUSTERS = frozenset({"c1", "c2"})


def rs(*, replicas=1, prefs: object = None, name="web", labels=None) -> dict:
    meta: dict = {"name": name}
    if prefs is not None:
        meta["annotations"] = {PREFERENCES: prefs if isinstance(prefs, str) else json.dumps(prefs)}
    return {"metadata": meta, "spec": {
        "replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": labels or {"app": "web"}},
                     "spec": {"containers": [{"name": "c", "image": "i"}]}}}}


def causes(kind, obj) -> list[str]:
    try:
        validate(kind, obj, clusters=CLUSTERS, reserved=CLUSTERS)
    except ApiError as exc:
        assert exc.code == 422
        return [c["field"] for c in exc.status["details"]["causes"]]
    return []


CASES = [
    pytest.param(k.REPLICA_SET, rs(), [], id="valid-replicaset"),
    pytest.param(k.REPLICA_SET, rs(prefs={"clusters": {"c1": {"weight": 1}, "*": {}}}), [],
                 id="valid-preferences"),
    pytest.param(k.REPLICA_SET, rs(replicas=-1), ["spec.replicas"], id="negative-replicas"),
    pytest.param(k.DEPLOYMENT, rs(replicas="3"), ["spec.replicas"], id="string-replicas"),
    pytest.param(k.DEPLOYMENT, rs(labels={"app": "other"}), ["spec.template.metadata.labels"],
                 id="selector-mismatch"),
    pytest.param(k.REPLICA_SET, rs(prefs="[1"), [f"metadata.annotations[{PREFERENCES}]"],
                 id="preferences-not-json"),
    pytest.param(k.REPLICA_SET, rs(prefs={"clusters": {"c1": {"weight": -1, "minReplicas": 2,
                                                              "maxReplicas": 1},
                                                       "zz": {}}}),
                 [f"metadata.annotations[{PREFERENCES}].clusters[c1].weight",
                  f"metadata.annotations[{PREFERENCES}].clusters[c1].minReplicas",
                  f"metadata.annotations[{PREFERENCES}].clusters[zz]"],
                 id="every-bad-weight-named"),
    pytest.param(k.NAMESPACE, {"metadata": {"name": "a.b"}}, ["metadata.name"],
                 id="namespace-is-a-label"),
    pytest.param(k.CONFIG_MAP, {"metadata": {"name": "a.b"}}, [], id="subdomain-name"),
    pytest.param(k.REPLICA_SCHEDULING_PREFERENCE, {"metadata": {"name": "w"}, "spec": {}},
                 ["spec.totalReplicas"], id="rsp-needs-total"),
    pytest.param(k.PROPAGATION_POLICY, {"metadata": {"name": "p"}, "spec": {
        "resourceSelectors": [{"kind": "Deployment"}],
        "placement": {"replicaScheduling": {"replicaSchedulingType": "Spread"}}}},
        ["spec.resourceSelectors[0].apiVersion",
         "spec.placement.replicaScheduling.replicaSchedulingType"], id="karmada-fields"),
    pytest.param(k.OVERRIDE_POLICY, {"metadata": {"name": "o"}, "spec": {}},
                 ["spec.resourceSelectors"], id="override-policy-needs-selectors"),
    pytest.param(k.FEDERATED_DEPLOYMENT, {"metadata": {"name": "f"}, "spec": {
        "template": {"spec": {"replicas": 1}}, "placement": {"clusters": [{"name": "c3"}]},
        "overrides": [{"clusterName": "c1", "clusterOverrides": [{"path": "/x", "op": "merge"}]}]}},
        ["spec.placement.clusters[0].name", "spec.overrides[0].clusterOverrides[0].op"],
        id="kubefed-placement-and-op"),
]


V1_SPEC = {"serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                           "serverAddress": "https://10.0.0.4:6443"}],
           "secretRef": {"name": "c4"}}
KUBEFED_SPEC = {"apiEndpoint": "https://10.0.0.4:6443", "caBundle": "TFMwdA==",
                "secretRef": {"name": "c4-secret"}}
KARMADA_SPEC = {"apiEndpoint": "https://10.0.0.4:6443", "syncMode": "Push",
                "secretRef": {"namespace": "karmada-cluster", "name": "c4"}}
CASES += [
    pytest.param(k.CLUSTER, {"metadata": {"name": "c4"}, "spec": V1_SPEC}, [], id="v1-cluster"),
    pytest.param(k.CLUSTER, {"metadata": {"name": "c4"}, "spec": dict(
        V1_SPEC, serverAddressByClientCIDRs=[{"serverAddress": "10.0.0.4:6443"}])}, [],
        id="v1-host-port"),
    pytest.param(k.CLUSTER, {"metadata": {"name": "c4"}, "spec": {}},
                 ["spec.serverAddressByClientCIDRs", "spec.secretRef.name"], id="v1-empty"),
    pytest.param(k.KUBEFED_CLUSTER, {"metadata": {"name": "c4", "namespace": "kube-federation-system"},
                                     "spec": KUBEFED_SPEC}, [], id="kubefed-cluster"),
    pytest.param(k.KUBEFED_CLUSTER, {"metadata": {"name": "c4"}, "spec": dict(
        KUBEFED_SPEC, apiEndpoint="ftp://x", caBundle="not base64!")},
        ["spec.apiEndpoint", "spec.caBundle"], id="kubefed-bad-endpoint-and-ca"),
    pytest.param(k.KARMADA_CLUSTER, {"metadata": {"name": "c4"}, "spec": KARMADA_SPEC}, [],
                 id="karmada-cluster"),
    pytest.param(k.KARMADA_CLUSTER, {"metadata": {"name": "c4"}, "spec": dict(
        KARMADA_SPEC, syncMode="Pull", insecureSkipTLSVerification="yes", secretRef={"name": "s"})},
        ["spec.syncMode", "spec.insecureSkipTLSVerification", "spec.secretRef.namespace"],
        id="karmada-pull-and-bad-fields"),
    pytest.param(k.KARMADA_CLUSTER, {"metadata": {"name": "c4.eu"}, "spec": KARMADA_SPEC},
                 ["metadata.name"], id="member-name-is-a-label"),
    pytest.param(k.KUBEFED_CLUSTER, {"metadata": {"name": "c1"}, "spec": KUBEFED_SPEC},
                 ["metadata.name"], id="config-member-name-taken"),
]


@pytest.mark.parametrize(("kind", "obj", "fields"), CASES)
def test_admission(kind, obj, fields):
    assert causes(kind, obj) == fields


def test_message_is_kube_apiservers():
    with pytest.raises(ApiError) as exc:
        validate(k.DEPLOYMENT, rs(replicas=-1), clusters=CLUSTERS)
    assert exc.value.status["message"] == ('Deployment.apps "web" is invalid: spec.replicas: '
                                           "Invalid value: -1: must be greater than or equal to 0")


def service(spec: dict | None = None, *, name: str = "web") -> dict:
    obj = {"metadata": {"name": name}, "spec": {"selector": {"app": "web"},
                                               "ports": [{"name": "http", "port": 80}]}}
    if spec is not None:
        obj["spec"] = spec
    defaults(k.SERVICE, obj)  # as admit_for runs them: kube-apiserver defaults, then validates
    return obj


SERVICE_CASES = [
    pytest.param(service(), [], id="valid"),
    pytest.param(service({"clusterIP": "None", "selector": {"app": "web"}}), [],
                 id="headless-without-ports"),
    pytest.param(service({"type": "ExternalName", "externalName": "db.example.com"}), [],
                 id="external-name"),
    pytest.param(service({"selector": {"app": "web"}}), ["spec.ports"], id="ports-required"),
    pytest.param(service({"ports": [{"port": 0}, {"port": 65536, "name": "b"}]}),
                 ["spec.ports[0].name", "spec.ports[0].port", "spec.ports[0].targetPort",
                  "spec.ports[1].port", "spec.ports[1].targetPort"],  # defaulted from port
                 id="port-range-and-names-of-several"),
    pytest.param(service({"ports": [{"port": 53, "protocol": "ICMP"}]}),
                 ["spec.ports[0].protocol"], id="protocol"),
    pytest.param(service({"type": "Internal", "ports": [{"port": 80}]}), ["spec.type"],
                 id="type"),
    pytest.param(service({"type": "ExternalName"}), ["spec.externalName"],
                 id="external-name-required"),
    pytest.param(service({"selector": {"app": 1, "bad key!": "x"}, "ports": [{"port": 80}]}),
                 ["spec.selector", "spec.selector"], id="selector-strings"),
    pytest.param(service({"selector": ["app"], "ports": [{"port": 80}]}), ["spec.selector"],
                 id="selector-a-map"),
    pytest.param(service({"ports": [{"port": 80, "name": "a", "targetPort": "no--way"},
                                    {"port": 81, "name": "a", "nodePort": 30080}]}),
                 ["spec.ports[0].targetPort", "spec.ports[1].name",
                  "spec.ports[1].nodePort"], id="target-port-duplicate-name-node-port"),
    pytest.param(service(name="1web"), ["metadata.name"], id="name-is-a-dns-1035-label"),
]


@pytest.mark.parametrize(("obj", "fields"), SERVICE_CASES)
def test_service_admission(obj, fields):
    assert causes(k.SERVICE, obj) == fields


def test_service_defaults_and_messages_are_kube_apiservers():
    obj = service()
    assert obj["spec"]["type"] == "ClusterIP" and obj["spec"]["sessionAffinity"] == "None"
    assert obj["spec"]["ports"] == [{"name": "http", "port": 80, "protocol": "TCP",
                                     "targetPort": 80}]
    assert "clusterIP" not in obj["spec"]  # nothing allocated: each member allocates its own
    with pytest.raises(ApiError) as exc:
        validate(k.SERVICE, service({"type": "Foo", "ports": [{"port": 0, "protocol": "X"}]}),
                 clusters=CLUSTERS)
    assert exc.value.status["message"] == (
        'Service "web" is invalid: [spec.type: Unsupported value: "Foo": supported values: '
        '"ClusterIP", "ExternalName", "LoadBalancer", "NodePort", spec.ports[0].port: Invalid '
        'value: 0: must be between 1 and 65535, inclusive, spec.ports[0].protocol: Unsupported '
        'value: "X": supported values: "SCTP", "TCP", "UDP", spec.ports[0].targetPort: Invalid '
        'value: 0: must be between 1 and 65535, inclusive]')
