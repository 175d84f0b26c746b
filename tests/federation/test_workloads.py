"""Every federated workload format read into one model (federation.md "Federated replicas")."""

from __future__ import annotations

import re

import pytest
import yaml

from fed_dns.federation import workloads as w
from fed_dns.federation.workloads import ClusterPreference as P
from fed_dns.federation.workloads import WorkloadError

TOMCAT = """
apiVersion: {api}
kind: ReplicaSet
metadata:
  name: tomcat
  labels: {{app: tomcat}}
  generation: 3
  annotations:
    federation.kubernetes.io/replica-set-preferences: '{{"rebalance": true, "clusters": {{"c1": {{"weight": 1}}, "c2": {{"weight": 1}}}}}}'
    kubectl.kubernetes.io/last-applied-configuration: '{{}}'
    team: web
spec:
  replicas: 4
  selector: {{matchLabels: {{app: tomcat}}}}
  template:
    metadata: {{labels: {{app: tomcat}}}}
    spec:
      containers:
      - name: fed-tomcat
        image: tomcat:9
        resources: {{requests: {{cpu: 200m, memory: 500Mi}}}}
        ports: [{{containerPort: 80}}]
"""

FEDERATED = yaml.safe_load("""
apiVersion: types.kubefed.io/v1beta1
kind: FederatedDeployment
metadata: {name: web, namespace: shop, generation: 2}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      replicas: 3
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec: {containers: [{name: web, image: nginx:1.25}]}
  placement: {clusters: [{name: c1}, {name: c2}]}
  overrides:
  - clusterName: c2
    clusterOverrides:
    - {path: "/spec/replicas", value: 1}
    - {path: "/spec/template/spec/containers/0/image", value: "nginx:1.26"}
    - {op: add, path: "/metadata/labels/zone", value: eu}
""")

RSP = yaml.safe_load("""
apiVersion: scheduling.kubefed.io/v1alpha1
kind: ReplicaSchedulingPreference
metadata: {name: web, namespace: shop}
spec:
  targetKind: FederatedDeployment
  totalReplicas: 6
  rebalance: true
  clusters: {c1: {weight: 2}, "*": {weight: 1, minReplicas: 1, maxReplicas: 4}}
""")

KARMADA_DEPLOY = yaml.safe_load("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: nginx, namespace: default, labels: {app: nginx}}
spec:
  replicas: 6
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      initContainers: [{name: init, image: docker.io/library/busybox:1.36}]
      containers: [{name: nginx, image: nginx:1.25}]
""")

KARMADA_POLICY = yaml.safe_load("""
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: nginx, namespace: default}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: nginx}]
  placement:
    clusterAffinity: {clusterNames: [c1, c2]}
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Weighted
      weightPreference:
        staticWeightList:
        - {targetCluster: {clusterNames: [c1]}, weight: 1}
        - {targetCluster: {clusterNames: [c2]}, weight: 2}
""")

KARMADA_OVERRIDE = yaml.safe_load("""
apiVersion: policy.karmada.io/v1alpha1
kind: OverridePolicy
metadata: {name: nginx, namespace: default}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: nginx}]
  overrideRules:
  - targetCluster: {clusterNames: [c2]}
    overriders:
      plaintext: [{path: /metadata/annotations, operator: add, value: {region: eu}}]
      imageOverrider:
      - {predicate: {path: /spec/template/spec/containers/0/image}, component: Registry, operator: replace, value: registry.eu}
""")

CONTAINERS = [{"name": "fed-tomcat", "image": "tomcat:9",
               "resources": {"requests": {"cpu": "200m", "memory": "500Mi"}},
               "ports": [{"containerPort": 80}]}]


@pytest.mark.parametrize("api", ["apps/v1", "extensions/v1beta1"], ids=["apps-v1", "extensions"])
def test_federation_v1_tomcat(api):
    wl = w.from_federation_v1(yaml.safe_load(TOMCAT.format(api=api)))
    assert (wl.kind, wl.namespace, wl.name, wl.source) == ("ReplicaSet", "default", "tomcat",
                                                           "federation-v1")
    assert (wl.replicas, wl.rebalance, wl.generation, wl.duplicated) == (4, True, 3, False)
    assert wl.preferences == {"c1": P(weight=1), "c2": P(weight=1)}
    assert wl.clusters is None and wl.selector is None and wl.overrides == {}
    assert wl.template == {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "tomcat", "namespace": "default", "labels": {"app": "tomcat"},
                     "annotations": {"team": "web"}},
        "spec": {"selector": {"matchLabels": {"app": "tomcat"}},
                 "template": {"metadata": {"labels": {"app": "tomcat"}},
                              "spec": {"containers": CONTAINERS}}}}


@pytest.mark.parametrize(
    ("annotation", "expected", "rebalance"),
    [
        pytest.param('{"clusters": {"c1": {"weight": 2, "minReplicas": 1, "maxReplicas": 3}, '
                     '"*": {"weight": 1}}}',
                     {"c1": P(weight=2, min_replicas=1, max_replicas=3), "*": P()}, False,
                     id="min-max-star-rebalance-defaults-false"),
        pytest.param('{"rebalance": false, "clusters": {"c2": {}}}', {"c2": P()}, False,
                     id="empty-preference-is-weight-1"),
        pytest.param('{"rebalance": true}', {"*": P()}, True, id="no-clusters-is-everyone"),
    ],
)
def test_federation_v1_preferences(annotation, expected, rebalance):
    obj = yaml.safe_load(TOMCAT.format(api="apps/v1"))
    obj["metadata"]["annotations"][w.PREFERENCES] = annotation
    wl = w.from_federation_v1(obj)
    assert (wl.preferences, wl.rebalance) == (expected, rebalance)


def test_plain_deployment_is_everyone_equal_rebalancing():
    obj = dict(KARMADA_DEPLOY, metadata={"name": "nginx", "namespace": "ns"})
    wl = w.from_federation_v1(obj)
    assert (wl.source, wl.kind, wl.replicas, wl.rebalance) == ("plain", "Deployment", 6, True)
    assert (wl.preferences, wl.clusters, wl.selector) == ({}, None, None)
    assert "replicas" not in wl.template["spec"]


def test_kubefed_without_rsp_duplicates_with_pinned_override():
    wl = w.from_kubefed(FEDERATED, None)
    assert (wl.source, wl.kind, wl.namespace, wl.generation) == ("kubefed", "Deployment",
                                                                 "shop", 2)
    assert (wl.replicas, wl.duplicated, wl.rebalance, wl.clusters) == (3, True, False,
                                                                       ("c1", "c2"))
    # The /spec/replicas override pins c2; the others run the template's replicas ("*").
    assert wl.preferences == {"c2": P(min_replicas=1, max_replicas=1), "*": P()}
    assert wl.overrides == {"c2": (
        {"op": "replace", "path": "/spec/template/spec/containers/0/image",
         "value": "nginx:1.26"},
        {"op": "add", "path": "/metadata/labels/zone", "value": "eu"})}
    assert wl.template["metadata"] == {"name": "web", "namespace": "shop",
                                       "labels": {"app": "web"}}


def test_kubefed_with_rsp_divides():
    wl = w.from_kubefed(FEDERATED, RSP)
    assert (wl.replicas, wl.duplicated, wl.rebalance) == (6, False, True)
    assert wl.preferences == {"c1": P(weight=2), "*": P(weight=1, min_replicas=1, max_replicas=4),
                              "c2": P(weight=1, min_replicas=1, max_replicas=1)}


@pytest.mark.parametrize(
    ("placement", "clusters", "selector"),
    [
        pytest.param({"clusters": [{"name": "c3"}], "clusterSelector": {"matchLabels": {"a": "b"}}},
                     ("c3",), None, id="names-win-over-selector"),
        pytest.param({"clusterSelector": {"matchLabels": {"region": "eu"}}}, None,
                     {"matchLabels": {"region": "eu"}}, id="selector"),
        pytest.param({"clusterSelector": {}}, None, {}, id="empty-selector-everyone"),
        pytest.param({}, (), None, id="no-placement-no-cluster"),
    ],
)
def test_kubefed_placement(placement, clusters, selector):
    fd = dict(FEDERATED, spec=dict(FEDERATED["spec"], placement=placement, overrides=[]))
    wl = w.from_kubefed(fd, None)
    assert (wl.clusters, wl.selector) == (clusters, selector)


def test_karmada_static_weights_and_image_overrider():
    wl = w.from_karmada(KARMADA_DEPLOY, KARMADA_POLICY, [KARMADA_OVERRIDE])
    assert (wl.source, wl.replicas, wl.rebalance, wl.duplicated) == ("karmada", 6, True, False)
    assert wl.clusters == ("c1", "c2") and wl.selector is None
    assert wl.preferences == {"c1": P(weight=1), "c2": P(weight=2), "*": P(weight=0)}
    assert wl.overrides == {"c2": (
        {"op": "add", "path": "/metadata/annotations", "value": {"region": "eu"}},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image",
         "value": "registry.eu/nginx:1.25"})}


@pytest.mark.parametrize(
    ("image", "component", "operator", "value", "expected"),
    [
        pytest.param("nginx:1.25", "Registry", "replace", "registry.eu", "registry.eu/nginx:1.25",
                     id="registry-replace-none"),
        pytest.param("docker.io/library/busybox:1.36", "Registry", "add", "-mirror",
                     "docker.io-mirror/library/busybox:1.36", id="registry-add"),
        pytest.param("docker.io/library/busybox:1.36", "Registry", "remove", "",
                     "library/busybox:1.36", id="registry-remove"),
        pytest.param("localhost:5000/app:v1", "Repository", "replace", "other",
                     "localhost:5000/other:v1", id="repository-with-port-registry"),
        pytest.param("app:v1", "Tag", "replace", "v2", "app:v2", id="tag-replace"),
        pytest.param("app", "Tag", "add", "v2", "app:v2", id="tag-add-when-none"),
        pytest.param("app:v1", "Tag", "remove", "", "app", id="tag-remove"),
        pytest.param("app@sha256:abc", "Tag", "replace", "sha256:def", "app@sha256:def",
                     id="digest"),
    ],
)
def test_karmada_image_component(image, component, operator, value, expected):
    assert w._image(image, component=component, operator=operator, value=value) == expected


def test_karmada_image_overrider_without_predicate_takes_every_container():
    override = yaml.safe_load("""
metadata: {name: tags, namespace: default}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, labelSelector: {matchLabels: {app: nginx}}}]
  overrideRules:
  - overriders: {imageOverrider: [{component: Tag, operator: replace, value: stable}]}
""")
    wl = w.from_karmada(KARMADA_DEPLOY, KARMADA_POLICY, [override])
    assert wl.overrides == {"*": (
        {"op": "replace", "path": "/spec/template/spec/initContainers/0/image",
         "value": "docker.io/library/busybox:stable"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image",
         "value": "nginx:stable"})}


def test_karmada_defaults_duplicated_and_dynamic_weights():
    policy = dict(KARMADA_POLICY, spec={"resourceSelectors": KARMADA_POLICY["spec"]
                                        ["resourceSelectors"]})
    wl = w.from_karmada(KARMADA_DEPLOY, policy, [])
    assert (wl.duplicated, wl.clusters, wl.preferences) == (True, None, {})
    dynamic = yaml.safe_load("""
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}]
  placement:
    clusterAffinity: {labelSelector: {matchExpressions: [{key: tier, operator: In, values: [gold]}]},
                      clusterNames: [c1, c2, c3], exclude: [c3]}
    replicaScheduling: {replicaSchedulingType: Divided, weightPreference: {dynamicWeight: AvailableReplicas}}
""")
    dynamic["metadata"] = {"name": "any", "namespace": "default"}
    wl = w.from_karmada(KARMADA_DEPLOY, dynamic, [])
    assert (wl.dynamic_weights, wl.duplicated, wl.clusters) == (True, False, ("c1", "c2"))
    assert wl.selector == {"matchExpressions": [{"key": "tier", "operator": "In",
                                                 "values": ["gold"]}]}


@pytest.mark.parametrize(
    ("selector", "obj_meta", "policy_ns", "expected"),
    [
        pytest.param({"apiVersion": "apps/v1", "kind": "Deployment", "name": "nginx"},
                     {"name": "nginx", "namespace": "default"}, "default", True, id="by-name"),
        pytest.param({"apiVersion": "apps/v1", "kind": "Deployment", "name": "other"},
                     {"name": "nginx", "namespace": "default"}, "default", False,
                     id="other-name"),
        pytest.param({"apiVersion": "apps/v1", "kind": "ReplicaSet"},
                     {"name": "nginx", "namespace": "default"}, "default", False,
                     id="other-kind"),
        pytest.param({"apiVersion": "apps/v1", "kind": "Deployment"},
                     {"name": "nginx", "namespace": "default"}, "prod", False,
                     id="other-namespace-than-the-policy"),
        pytest.param({"apiVersion": "apps/v1", "kind": "Deployment",
                      "labelSelector": {"matchLabels": {"app": "nginx"}}},
                     {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
                     "default", True, id="label-selector"),
        pytest.param({"apiVersion": "apps/v1", "kind": "Deployment",
                      "labelSelector": {"matchLabels": {"app": "db"}}},
                     {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
                     "default", False, id="label-selector-misses"),
        pytest.param({"apiVersion": "apps/v1", "kind": "Deployment"},
                     {"name": "nginx"}, "default", True, id="no-namespace-is-default"),
    ],
)
def test_karmada_selects(selector, obj_meta, policy_ns, expected):
    policy = {"metadata": {"name": "p", "namespace": policy_ns},
              "spec": {"resourceSelectors": [selector]}}
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": obj_meta}
    assert w.karmada_selects(policy, obj) is expected


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        pytest.param({}, {}, True, id="empty-matches-all"),
        pytest.param({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True, id="labels"),
        pytest.param({"matchLabels": {"a": "1"}}, {"a": "2"}, False, id="labels-miss"),
        pytest.param({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
                     {"a": "2"}, True, id="in"),
        pytest.param({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
                     {}, True, id="notin-absent"),
        pytest.param({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False,
                     id="exists"),
        pytest.param({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]},
                     {"a": ""}, False, id="does-not-exist"),
    ],
)
def test_selector_matches(selector, labels, expected):
    assert w.selector_matches(w.check_selector(selector, "s"), labels) is expected


def test_member_object_applies_overrides_then_replicas_and_marks_the_owner():
    wl = w.from_kubefed(FEDERATED, RSP)
    obj = w.member_object(wl, cluster="c2", replicas=2, owner="fed-dns/fed.example.com.")
    assert obj["spec"]["replicas"] == 2
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert obj["metadata"]["labels"] == {"app": "web", "zone": "eu",
                                         w.MANAGED_BY: w.owner_label("fed-dns/fed.example.com.")}
    assert obj["metadata"]["annotations"] == {w.OWNER: "fed-dns/fed.example.com."}
    other = w.member_object(wl, cluster="c1", replicas=4, owner="o")
    assert other["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert "zone" not in other["metadata"]["labels"]
    assert wl.template["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"


@pytest.mark.parametrize(("override", "where", "want"), [
    pytest.param({"op": "add", "path": "/spec/template/spec/nodeSelector", "value": {"d": "ssd"}},
                 ("spec", "template", "spec", "nodeSelector"), {"d": "ssd"}, id="add"),
    pytest.param({"path": "/spec/template/spec/containers/0/image", "value": "nginx:2"},
                 ("spec", "template", "spec", "containers", 0, "image"), "nginx:2",
                 id="replace-by-default"),
    pytest.param({"op": "remove", "path": "/spec/template/metadata/labels/tier"},
                 ("spec", "template", "metadata", "labels"), {"app": "web"}, id="remove"),
])
def test_kubefed_override_ops_in_one_cluster(override, where, want):
    fd = yaml.safe_load(yaml.safe_dump(FEDERATED))
    fd["spec"]["template"]["spec"]["template"]["metadata"]["labels"]["tier"] = "front"
    fd["spec"]["overrides"] = [{"clusterName": "c2", "clusterOverrides": [override]}]
    wl = w.from_kubefed(fd, None)
    objs = {c: w.member_object(wl, cluster=c, replicas=3, owner="o") for c in ("c1", "c2")}

    def at(obj):
        for step in where:
            obj = obj[step]
        return obj

    assert at(objs["c2"]) == want
    assert objs["c1"]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert objs["c1"]["spec"]["template"]["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert "nodeSelector" not in objs["c1"]["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    "owner", ["fed-dns/fed.example.com.", "x" * 300, "///", "fed-dns/fed.example.com"],
    ids=["owner-id", "long", "only-bad-characters", "without-dot"])
def test_owner_label_is_a_valid_distinct_label_value(owner):
    value = w.owner_label(owner)
    assert len(value) <= 63
    assert re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", value)
    assert value == w.owner_label(owner)
    assert value != w.owner_label(owner + "x")


def _tomcat() -> dict:
    return yaml.safe_load(TOMCAT.format(api="apps/v1"))


def _with(obj: dict, path: str, value: object) -> dict:
    *parents, last = path.split(".")
    cur = obj
    for p in parents:
        cur = cur[p]
    cur[last] = value
    return obj


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(lambda: w.from_federation_v1(_with(_tomcat(), "kind", "StatefulSet")),
                     "kind: must be Deployment or ReplicaSet", id="kind"),
        pytest.param(lambda: w.from_federation_v1(_with(_tomcat(), "apiVersion", "apps/v2")),
                     "apiVersion", id="api-version"),
        pytest.param(lambda: w.from_federation_v1(_with(_tomcat(), "spec.replicas", -1)),
                     "spec.replicas: must be a non-negative integer", id="negative-replicas"),
        pytest.param(lambda: w.from_federation_v1(_with(_tomcat(), "metadata.name", "")),
                     "metadata.name: Required", id="no-name"),
        pytest.param(lambda: w.from_federation_v1(_with(
            _tomcat(), "metadata.annotations", {w.PREFERENCES: "{nope"})),
            "must be JSON", id="annotation-not-json"),
        pytest.param(lambda: w.from_federation_v1(_with(
            _tomcat(), "metadata.annotations", {w.PREFERENCES: '{"rebalance": "yes"}'})),
            ".rebalance: must be true or false", id="rebalance-not-bool"),
        pytest.param(lambda: w.from_federation_v1(_with(
            _tomcat(), "metadata.annotations",
            {w.PREFERENCES: '{"clusters": {"c1": {"minReplicas": 3, "maxReplicas": 2}}}'})),
            "clusters[c1].minReplicas: 3 is more than maxReplicas", id="min-above-max"),
        pytest.param(lambda: w.from_federation_v1(_with(
            _tomcat(), "metadata.annotations",
            {w.PREFERENCES: '{"clusters": {"c1": {"weight": -1}}}'})),
            "clusters[c1].weight", id="negative-weight"),
        pytest.param(lambda: w.from_kubefed(dict(FEDERATED, spec={}), None),
                     "spec.template: Required", id="kubefed-no-template"),
        pytest.param(lambda: w.from_kubefed(dict(FEDERATED, spec=dict(
            FEDERATED["spec"], overrides=[{"clusterName": "c1", "clusterOverrides": [
                {"op": "move", "path": "/spec/x"}]}])), None),
            "spec.overrides[0].clusterOverrides[0].op", id="kubefed-bad-op"),
        pytest.param(lambda: w.from_kubefed(dict(FEDERATED, spec=dict(
            FEDERATED["spec"], overrides=[{"clusterName": "c1", "clusterOverrides": [
                {"path": "/spec/template/spec/containers/5/image", "value": "x"}]}])), None),
            "overrides[c1] for cluster c1", id="kubefed-override-path-missing"),
        pytest.param(lambda: w.from_kubefed(FEDERATED, {"spec": {"totalReplicas": "6"}}),
                     "ReplicaSchedulingPreference spec.totalReplicas", id="rsp-total"),
        pytest.param(lambda: w.from_kubefed(dict(FEDERATED, spec=dict(
            FEDERATED["spec"], placement={"clusterSelector": {"matchExpressions": [
                {"key": "a", "operator": "Near"}]}})), None),
            "clusterSelector.matchExpressions[0].operator", id="kubefed-bad-selector"),
        pytest.param(lambda: w.from_karmada(dict(KARMADA_DEPLOY, metadata={
            "name": "other"}), KARMADA_POLICY, []), "does not select", id="karmada-unselected"),
        pytest.param(lambda: w.from_karmada(KARMADA_DEPLOY, _with(yaml.safe_load(yaml.dump(
            KARMADA_POLICY)), "spec.placement.replicaScheduling", {
                "replicaSchedulingType": "Spread"}), []),
            "replicaScheduling.replicaSchedulingType", id="karmada-scheduling-type"),
        pytest.param(lambda: w.from_karmada(KARMADA_DEPLOY, KARMADA_POLICY, [_with(yaml.safe_load(
            yaml.dump(KARMADA_OVERRIDE)), "spec.overrideRules", [{"overriders": {
                "imageOverrider": [{"component": "Host", "operator": "replace",
                                    "value": "x"}]}}])]),
            "imageOverrider[0].component", id="karmada-image-component"),
        pytest.param(lambda: w.from_karmada(KARMADA_DEPLOY, KARMADA_POLICY, [_with(yaml.safe_load(
            yaml.dump(KARMADA_OVERRIDE)), "spec.overrideRules", [{"targetCluster": {
                "labelSelector": {"matchLabels": {"a": "b"}}}, "overriders": {}}])]),
            "targetCluster: only clusterNames", id="karmada-override-by-labels"),
    ],
)
def test_bad_input_names_the_field(build, message):
    with pytest.raises(WorkloadError, match=re.escape(message)):
        build()
