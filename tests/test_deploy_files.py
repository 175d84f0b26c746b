"""config/: the Kubernetes manifests, the Corefile and the Prometheus snippet (operations.md, Deploying)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import fed_dns.config

CONFIG = Path(__file__).resolve().parent.parent / "config"
KUBE = CONFIG / "kubernetes"
OPERATIONS_KEYS = {"zone", "owner_id", "ttl", "publish", "export", "namespaces", "all_unhealthy",
                   "clusters", "health", "dns", "etcd", "http", "leader_election", "topology"}
EXPECTED = {
    "namespace.yaml": [("v1", "Namespace")],
    "serviceaccount.yaml": [("v1", "ServiceAccount")],
    "configmap.yaml": [("v1", "ConfigMap")],
    "deployment.yaml": [("apps/v1", "Deployment")],
    "service.yaml": [("v1", "Service")],
    "poddisruptionbudget.yaml": [("policy/v1", "PodDisruptionBudget")],
    "kustomization.yaml": [("kustomize.config.k8s.io/v1beta1", "Kustomization")],
    "member-rbac.yaml": [("v1", "Namespace"), ("v1", "ServiceAccount"), ("v1", "Secret"),
                         ("rbac.authorization.k8s.io/v1", "ClusterRole"),
                         ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")],
    "member-rbac-workloads.yaml": [("rbac.authorization.k8s.io/v1", "ClusterRole"),
                                   ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")],
}


def docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((KUBE / name).read_text()) if d is not None]


def one(name: str, kind: str) -> dict:
    found = [d for d in docs(name) if d["kind"] == kind]
    assert len(found) == 1, (name, kind)
    return found[0]


def test_every_manifest_is_expected_and_has_the_expected_kinds():
    assert {p.name for p in KUBE.glob("*.yaml")} == set(EXPECTED)
    for name, kinds in EXPECTED.items():
        assert [(d["apiVersion"], d["kind"]) for d in docs(name)] == kinds, name


def test_host_objects_live_in_the_fed_dns_namespace_and_kustomize_lists_them():
    listed = one("kustomization.yaml", "Kustomization")["resources"]
    assert sorted(listed) == sorted(n for n in EXPECTED if n.endswith(".yaml")
                                    and not n.startswith(("member-", "kustomization")))
    for name in listed:
        for doc in docs(name):
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["namespace"] == "fed-dns", name


def test_deployment_runs_the_daemon_with_probes_on_the_http_port():
    deployment = one("deployment.yaml", "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    pod = spec["template"]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    (container,) = pod["containers"]
    assert "run --config /etc/fed-dns/fed-dns.yaml" in " ".join(container["command"] + container["args"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 9153}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 9153}
    ports = {(p["containerPort"], p["protocol"]) for p in container["ports"]}
    assert ports == {(5353, "UDP"), (5353, "TCP"), (9153, "TCP")}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/etc/fed-dns/fed-dns.yaml"] == "config"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == one("configmap.yaml", "ConfigMap")["metadata"]["name"]
    assert pod["serviceAccountName"] == one("serviceaccount.yaml", "ServiceAccount")["metadata"]["name"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_service_maps_dns_53_to_5353_on_udp_and_tcp_and_exposes_metrics():
    service = one("service.yaml", "Service")
    ports = {(p["port"], p["targetPort"], p["protocol"]) for p in service["spec"]["ports"]}
    assert ports == {(53, 5353, "UDP"), (53, 5353, "TCP"), (9153, 9153, "TCP")}
    labels = one("deployment.yaml", "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_configmap_holds_a_valid_config_with_the_keys_of_operations_md():
    text = one("configmap.yaml", "ConfigMap")["data"]["fed-dns.yaml"]
    data = yaml.safe_load(text)
    assert OPERATIONS_KEYS <= set(data)
    config = fed_dns.config.parse(data, source="configmap.yaml")
    assert config.http.listen.endswith(":9153") and not config.http.listen.startswith("127.")
    assert config.dns.listen.endswith(":5353") and not config.dns.listen.startswith("127.")
    assert config.leader_election.enabled  # three replicas
    assert config.etcd.endpoints and config.etcd.prefix == "/skydns"
    assert not re.search(r"token|password:\s*\S|BEGIN", text, re.I)  # no credential in a ConfigMap


def rules(name: str, role: str) -> list[dict]:
    (found,) = [d for d in docs(name) if d["kind"] == "ClusterRole" and d["metadata"]["name"] == role]
    return found["rules"]


def grants(rule_list: list[dict]) -> set[tuple[str, str, str]]:
    out = set()
    for rule in rule_list:
        for verb in rule["verbs"]:
            for group in rule.get("apiGroups", ["<url>"]):
                for resource in rule.get("resources", rule.get("nonResourceURLs", [])):
                    out.add((group, resource, verb))
    return out


def test_member_reader_role_grants_exactly_read_of_services_and_endpointslices():
    assert grants(rules("member-rbac.yaml", "fed-dns-reader")) == {
        ("", "services", "get"), ("", "services", "list"), ("", "services", "watch"),
        ("discovery.k8s.io", "endpointslices", "get"), ("discovery.k8s.io", "endpointslices", "list"),
        ("discovery.k8s.io", "endpointslices", "watch"),
        ("<url>", "/readyz", "get"), ("<url>", "/healthz", "get"),
    }


def test_workloads_role_is_separate_and_only_manages_deployments():
    assert grants(rules("member-rbac-workloads.yaml", "fed-dns-workloads")) == {
        ("apps", "deployments", verb) for verb in ("get", "list", "watch", "create", "update", "patch", "delete")}
    assert "fed-dns-workloads" not in (KUBE / "member-rbac.yaml").read_text()


@pytest.mark.parametrize("name", ["member-rbac.yaml", "member-rbac-workloads.yaml"])
def test_bindings_bind_their_role_to_the_fed_dns_service_account(name):
    roles = {d["metadata"]["name"] for d in docs(name) if d["kind"] == "ClusterRole"}
    for binding in (d for d in docs(name) if d["kind"] == "ClusterRoleBinding"):
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                      "name": binding["metadata"]["name"]}
        assert binding["roleRef"]["name"] in roles
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "fed-dns", "namespace": "fed-dns"}]


def test_corefile_serves_the_zone_from_etcd_under_skydns():
    text = (CONFIG / "Corefile").read_text()
    live = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert re.search(r"^fed\.example\.com(:53)?\s*\{", live, re.M)
    assert re.search(r"^\s*etcd\s+fed\.example\.com\s*\{", live, re.M)
    assert re.search(r"^\s*path /skydns\s*$", live, re.M)
    assert re.search(r"^\s*endpoint\s+https?://\S+:2379\s*$", live, re.M)
    assert re.search(r"^\s*cache\s+5\s*$", live, re.M)
    assert live.count("{") == live.count("}")
    configmap = yaml.safe_load(one("configmap.yaml", "ConfigMap")["data"]["fed-dns.yaml"])
    assert configmap["etcd"]["endpoints"][0] in live  # the same etcd as the daemon


def test_prometheus_snippet_scrapes_the_http_port():
    data = yaml.safe_load((CONFIG / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in data["scrape_configs"]}
    assert {"fed-dns", "fed-dns-local"} <= set(jobs)
    assert jobs["fed-dns-local"]["static_configs"][0]["targets"] == ["127.0.0.1:9153"]
    keep = [r for r in jobs["fed-dns"]["relabel_configs"] if r.get("action") == "keep"]
    assert {r["regex"] for r in keep} == {"fed-dns", "http"}
