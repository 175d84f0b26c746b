"""Clusters join and leave `fed-dns run` at runtime through Cluster objects of its federation
API, in the three formats, with real kubectl: Federation v1's Cluster + a kubeconfig Secret,
kubefed's KubeFedCluster + a token Secret, Karmada's Cluster + a token/caBundle Secret."""

from __future__ import annotations

import base64
import json
import shutil
import uuid

import pytest
import yaml

from fed_dns.federation.propagation import MANAGED_BY

from tests.e2e.harness import Daemon, etcd_items, seed_service, timed
from tests.e2e.test_daemon_replicas import kubeconfig_of, kubectl, member_replicas
from tests.e2e.test_daemon_replicas import sims  # noqa: F401 - the fixture: c1, c2 on TLS
from tests.support import free_port

pytestmark = [pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed"),
              pytest.mark.slow]

C4 = {"10.4.0.1", "10.4.0.2"}
RESOURCE = {"v1": "clusters.federation", "kubefed": "kubefedclusters",
            "karmada": "clusters.cluster.karmada.io"}
NAMESPACE = {"v1": None, "kubefed": "kube-federation-system", "karmada": "karmada-cluster"}
WEB = {  # `tomcat`: the name member_replicas reads
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "tomcat", "namespace": "default", "labels": {"app": "web"}},
    "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}},
}


def b64(value: str | bytes) -> str:
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode()


def join_manifests(fmt: str, member, *, name: str = "c4", token: str | None = None,
                   secret: bool = True, user: dict | None = None) -> str:
    """The Secret and the Cluster object that join `member` as `name` in format `fmt`, as
    `kubectl create -f c4.yaml` (Federation v1), `kubefedctl join` or `karmadactl join`
    would make them (`user`: the v1 kubeconfig's user entry instead of the token)."""
    kubeconfig = member.kubeconfig()
    ca = kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]
    token = token or member.token
    kubeconfig["users"][0]["user"] = user or {"token": token}
    labels = {"topology.kubernetes.io/region": "ap", "tier": "gold"}
    ns = NAMESPACE[fmt]
    docs: list[dict] = []
    if ns:
        docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    secret_meta = {"name": f"{name}-creds", "namespace": ns or "default"}
    if fmt == "v1":
        docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": secret_meta,
                     "data": {"kubeconfig": b64(json.dumps(kubeconfig))}})
        docs.append({"apiVersion": "federation/v1beta1", "kind": "Cluster",
                     "metadata": {"name": name, "labels": labels},
                     "spec": {"serverAddressByClientCIDRs": [
                         {"clientCIDR": "0.0.0.0/0", "serverAddress": member.url}],
                         "secretRef": {"name": secret_meta["name"]}}})
    elif fmt == "kubefed":
        docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": secret_meta,
                     "data": {"token": b64(token)}})
        docs.append({"apiVersion": "core.kubefed.io/v1beta1", "kind": "KubeFedCluster",
                     "metadata": {"name": name, "namespace": ns, "labels": labels},
                     "spec": {"apiEndpoint": member.url, "caBundle": ca,
                              "secretRef": {"name": secret_meta["name"]}}})
    else:
        docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": secret_meta,
                     "data": {"token": b64(token), "caBundle": ca}})
        docs.append({"apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
                     "metadata": {"name": name, "labels": labels},
                     "spec": {"apiEndpoint": member.url, "syncMode": "Push",
                              "secretRef": {"namespace": ns, "name": secret_meta["name"]}}})
    if not secret:
        docs = [d for d in docs if d["kind"] != "Secret"]
    return yaml.safe_dump_all(docs)


@pytest.fixture
def rig(tmp_path, sims, etcd_server):
    """`fed-dns run` over c1 and c2 (config) with its API; c4 runs but is no member yet."""
    zone = f"j{uuid.uuid4().hex[:8]}.example.com."
    d = Daemon(tmp=tmp_path, sims=sims, etcd_url=etcd_server.url, zone=zone,
               extra={"api": {"enabled": True, "listen": f"127.0.0.1:{free_port()}",
                              "dir": str(tmp_path / "api")}})
    c4 = sims.add("c4", use_tls=True)  # after the config is made: not a config member
    for index, name in enumerate(("c1", "c2", "c4"), start=1):
        seed_service(sims, name, index=4 if name == "c4" else index)
    try:
        d.start()
        yield d, kubeconfig_of(d, tmp_path / "federation.kubeconfig"), c4
    finally:
        d.stop()


def ready_condition(kc: str, resource: str, name: str, namespace: str | None) -> dict:
    args = ["get", resource, name, "-o", "json"] + (["-n", namespace] if namespace else [])
    got = kubectl(kc, *args)
    if got.returncode != 0:
        return {}
    conditions = (json.loads(got.stdout).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Ready"), {})


def zone_prefix(zone: str) -> str:
    return "/skydns/" + "/".join(reversed(zone.rstrip(".").split("."))) + "/"


def c4_keys(url: str, zone: str) -> list[str]:
    return [k for k, v in etcd_items(url, zone_prefix(zone)).items() if v.get("cluster") == "c4"]


@pytest.mark.parametrize("fmt", ["v1", "kubefed", "karmada"])
def test_a_cluster_joins_by_kubectl_apply_and_leaves_by_delete(rig, sims, etcd_server, fmt):
    d, kc, c4 = rig
    name = f"mysql.ns.{d.zone}"
    timed(lambda: d.addresses(name) == {"10.1.0.1", "10.1.0.2", "10.2.0.1", "10.2.0.2"},
          timeout=10, what="c1 and c2 in DNS")
    applied = kubectl(kc, "apply", "-f", "-", stdin=yaml.safe_dump(WEB))
    assert applied.returncode == 0, applied.stderr
    timed(lambda: (member_replicas(sims, "c1"), member_replicas(sims, "c2")) == (3, 3),
          timeout=15, what="3 + 3 before the join")

    applied = kubectl(kc, "apply", "-f", "-", stdin=join_manifests(fmt, c4))
    assert applied.returncode == 0, applied.stderr
    took = timed(lambda: C4 <= d.addresses(name), timeout=10, what="c4's Service in DNS")
    assert d.addresses(f"c4.{name}") == C4
    timed(lambda: ready_condition(kc, RESOURCE[fmt], "c4", NAMESPACE[fmt]).get("status") == "True",
          timeout=10, what="c4 Ready in kubectl get")
    assert ready_condition(kc, RESOURCE[fmt], "c4", NAMESPACE[fmt])["reason"] == "ClusterReady"
    expected = {"v1": ["NAME", "HEALTH", "REGION", "SYNCED", "AGE"],
                "kubefed": ["NAMESPACE", "NAME", "AGE", "READY"],  # as kubefed prints
                "karmada": ["NAME", "VERSION", "MODE", "READY", "AGE"]}[fmt]
    cells = {"v1": (1, ["ready", "ap", "True"]), "kubefed": (3, ["True"]),
             "karmada": (1, ["v1.31.0-fed-dns", "Push", "True"])}[fmt]  # the member's /version

    def c4_row() -> list[str]:
        table = kubectl(kc, "get", RESOURCE[fmt], *(["-A"] if NAMESPACE[fmt] else []))
        assert table.returncode == 0, table.stderr
        header, *rows = [line.split() for line in table.stdout.strip().splitlines()]
        assert header == expected
        return next(r for r in rows if "c4" in r)

    timed(lambda: c4_row()[cells[0]:cells[0] + len(cells[1])] == cells[1], timeout=5,
          what=f"c4's columns in kubectl get {RESOURCE[fmt]}")
    # the joined member takes replicas: 6 over three members now
    timed(lambda: (member_replicas(sims, "c4") or 0) == 2, timeout=15, what="c4 gets 2 replicas")
    assert {"name": "c4", "health": "ready", "region": "ap"}.items() <= next(
        m for m in d.status()["clusters"] if m["name"] == "c4").items()
    print(f"{fmt}: c4 in DNS {took:.2f}s after kubectl apply")

    deleted = kubectl(kc, "delete", RESOURCE[fmt], "c4",
                      *(["-n", NAMESPACE[fmt]] if NAMESPACE[fmt] else []))
    assert deleted.returncode == 0, deleted.stderr
    took = timed(lambda: not (C4 & d.addresses(name)), timeout=10, what="c4's records gone")
    assert d.addresses(name) == {"10.1.0.1", "10.1.0.2", "10.2.0.1", "10.2.0.2"}
    # its records go to the fallback: c4's name is a CNAME to the global one, which no
    # longer holds c4's backends; in etcd c4 holds only that CNAME (no backend, even for serve-all)
    assert d.cnames(f"c4.{name}") == {name}
    timed(lambda: [etcd_items(etcd_server.url, zone_prefix(d.zone))[k]["host"]
                   for k in c4_keys(etcd_server.url, d.zone)] == [name.rstrip(".")],
          timeout=10, what="c4's keys in etcd: only the fallback CNAME")
    assert all(m["name"] != "c4" for m in d.status()["clusters"])
    timed(lambda: (member_replicas(sims, "c1"), member_replicas(sims, "c2")) == (3, 3),
          timeout=15, what="its replicas back on c1 and c2")
    assert all(p["cluster"] != "c4" for w in d.status()["placements"] for p in w["clusters"])
    print(f"{fmt}: c4's records gone {took:.2f}s after kubectl delete")


def test_bad_or_missing_credentials_are_not_ready_with_the_reason_and_no_secret(rig, sims):
    d, kc, c4 = rig
    bad = "not-the-token-" + uuid.uuid4().hex
    applied = kubectl(kc, "apply", "-f", "-", stdin=join_manifests("kubefed", c4, token=bad))
    assert applied.returncode == 0, applied.stderr
    applied = kubectl(kc, "apply", "-f", "-",
                      stdin=join_manifests("karmada", c4, name="c5", secret=False))
    assert applied.returncode == 0, applied.stderr
    ns = NAMESPACE["kubefed"]
    timed(lambda: ready_condition(kc, "kubefedclusters", "c4", ns).get("status") == "False",
          timeout=15, what="c4 not Ready")
    condition = ready_condition(kc, "kubefedclusters", "c4", ns)
    assert condition["reason"] == "Unauthorized" and "401" in condition["message"], condition
    timed(lambda: ready_condition(kc, RESOURCE["karmada"], "c5", None).get("reason")
          == "SecretNotFound", timeout=10, what="c5 refused: no Secret")
    assert ready_condition(kc, RESOURCE["karmada"], "c5", None)["status"] == "False"
    # a kubeconfig that would read a file of the fed-dns host (its own API token) and send
    # it to the member, or run a command: refused, nothing read, nothing run
    api_token = d.tmp / "api" / "token"
    marker = d.tmp / "exec-ran"
    for name, user in (("c6", {"tokenFile": str(api_token)}),
                       ("c7", {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                        "command": "touch", "args": [str(marker)]}})):
        applied = kubectl(kc, "apply", "-f", "-", stdin=join_manifests("v1", c4, name=name,
                                                                       user=user))
        assert applied.returncode == 0, applied.stderr
        timed(lambda name=name: ready_condition(kc, RESOURCE["v1"], name, None).get("reason")
              == "UnsupportedKubeconfig", timeout=10, what=f"{name} refused: not inline")
        assert "no commands, no local files" in ready_condition(kc, RESOURCE["v1"], name,
                                                                None)["message"]
    assert not marker.exists()
    assert not {"c6", "c7"} & {m["name"] for m in d.status()["clusters"]}
    assert not C4 & d.addresses(f"mysql.ns.{d.zone}")
    # never the credential: not in any status, log line or /status
    everything = kubectl(kc, "get", "kubefedclusters,clusters.cluster.karmada.io,clusters",
                         "-A", "-o", "json")
    assert everything.returncode == 0, everything.stderr
    assert bad not in everything.stdout and c4.token not in everything.stdout
    assert bad not in json.dumps(d.status())
    assert bad not in d.log_path.read_text(errors="replace")
    assert d.ready()  # never a crash


def test_config_members_cannot_be_deleted_or_taken_through_the_api(rig):
    d, kc, c4 = rig
    refused = kubectl(kc, "delete", "clusters.federation", "c1")
    assert refused.returncode != 0
    assert "Forbidden" in refused.stderr and "config file" in refused.stderr, refused.stderr
    taken = kubectl(kc, "apply", "-f", "-", stdin=join_manifests("karmada", c4, name="c2"))
    assert taken.returncode != 0 and "config file" in taken.stderr, taken.stderr
    bad_name = kubectl(kc, "apply", "-f", "-", stdin=join_manifests("karmada", c4, name="c4.x"))
    assert bad_name.returncode != 0 and "RFC 1123 label" in bad_name.stderr, bad_name.stderr
    listed = kubectl(kc, "get", "clusters.federation", "-o", "name")
    assert listed.stdout.split() == ["cluster.federation/c1", "cluster.federation/c2"]
    assert d.addresses(f"c1.mysql.ns.{d.zone}") == {"10.1.0.1", "10.1.0.2"}


GOLD = """
apiVersion: types.kubefed.io/v1beta1
kind: FederatedDeployment
metadata: {name: gold-fd, namespace: default}
spec:
  template:
    metadata: {labels: {app: gold-fd}}
    spec:
      replicas: 2
      selector: {matchLabels: {app: gold-fd}}
      template:
        metadata: {labels: {app: gold-fd}}
        spec: {containers: [{name: web, image: nginx:1.25}]}
  placement:
    clusterSelector: {matchLabels: {tier: gold}}
---
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: gold-pp, namespace: default}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: gold-pp}]
  placement:
    clusterAffinity: {labelSelector: {matchLabels: {tier: gold}}}
    replicaScheduling: {replicaSchedulingType: Duplicated}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: gold-pp, namespace: default, labels: {app: gold-pp}}
spec:
  replicas: 2
  selector: {matchLabels: {app: gold-pp}}
  template:
    metadata: {labels: {app: gold-pp}}
    spec: {containers: [{name: web, image: nginx:1.25}]}
"""


def placed_on(sims, name: str) -> dict[str, int]:
    """cluster -> spec.replicas of the member Deployment `name` (members holding one)."""
    out = {}
    for cluster in ("c1", "c2", "c4"):
        obj = sims.call(sims.clusters[cluster].get, kind="Deployment", namespace="default",
                        name=name)
        if obj is not None:
            out[cluster] = obj["spec"]["replicas"]
    return out


def test_labels_of_a_joined_cluster_feed_cluster_selectors(rig, sims):
    """kubefed's placement.clusterSelector and Karmada's clusterAffinity.labelSelector pick a
    joined member by its Cluster object's labels; relabelled, the workloads leave it."""
    d, kc, c4 = rig
    applied = kubectl(kc, "apply", "-f", "-", stdin=join_manifests("kubefed", c4))
    assert applied.returncode == 0, applied.stderr
    ns = NAMESPACE["kubefed"]
    timed(lambda: ready_condition(kc, "kubefedclusters", "c4", ns).get("status") == "True",
          timeout=10, what="c4 Ready")
    applied = kubectl(kc, "apply", "-f", "-", stdin=GOLD)
    assert applied.returncode == 0, applied.stderr
    for name in ("gold-fd", "gold-pp"):
        timed(lambda name=name: placed_on(sims, name) == {"c4": 2}, timeout=15,
              what=f"{name} on c4 (tier: gold) only: {placed_on(sims, name)}")

    relabelled = kubectl(kc, "label", "kubefedcluster", "c4", "-n", ns, "tier=silver",
                         "--overwrite")
    assert relabelled.returncode == 0, relabelled.stderr
    for name in ("gold-fd", "gold-pp"):
        timed(lambda name=name: placed_on(sims, name) == {}, timeout=15,
              what=f"{name} off c4 once it is silver: {placed_on(sims, name)}")


DEPENDENTS = (("ConfigMap", "web-conf"), ("ConfigMap", "web-env"), ("Secret", "web-token"),
              ("Secret", "regcred"))
THEIRS = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "web-env", "namespace": "default", "labels": {"team": "x"}},
          "data": {"owner": "theirs"}}


def web_manifests(cluster: str) -> str:
    """`web`, placed on `cluster` only (Federation v1 preferences), and what it references:
    a ConfigMap volume, a ConfigMap envFrom, a Secret env and an imagePullSecret."""
    prefs = json.dumps({"rebalance": True, "clusters": {cluster: {"weight": 1}}})
    container = {"name": "web", "image": "registry.example/web:1",
                 "envFrom": [{"configMapRef": {"name": "web-env"}}],
                 "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "web-token",
                                                                          "key": "token"}}}],
                 "volumeMounts": [{"name": "conf", "mountPath": "/etc/web"}]}
    docs = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-conf",
                                                                "namespace": "default"},
         "data": {"index.html": "hello"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-env",
                                                                "namespace": "default"},
         "data": {"MODE": "federated"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-token",
                                                             "namespace": "default"},
         "data": {"token": b64("web-secret-value")}},
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
         "metadata": {"name": "regcred", "namespace": "default"},
         "data": {".dockerconfigjson": b64('{"auths": {}}')}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                      "annotations": {"federation.kubernetes.io/replica-set-preferences": prefs}},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                      "containers": [container], "imagePullSecrets": [{"name": "regcred"}],
                      "volumes": [{"name": "conf", "configMap": {"name": "web-conf"}}]}}}},
    ]
    return yaml.safe_dump_all(docs)


def member_object(sims, cluster: str, kind: str, name: str) -> dict | None:
    return sims.call(sims.clusters[cluster].get, kind=kind, namespace="default", name=name)


def test_dependents_follow_a_workload_onto_a_joined_cluster_and_leave_with_it(rig, sims):
    """With kubectl all the way: `web` moves from c1 to the joined c4; its ConfigMaps and
    Secrets are there, ours, before its Deployment; they leave c1; an unlabelled ConfigMap of
    the same name in c4 is left as it is; `web` deleted, ours go from c4, theirs stays."""
    d, kc, c4 = rig
    sims.call(c4.apply, THEIRS)
    theirs = member_object(sims, "c4", "ConfigMap", "web-env")
    applied = kubectl(kc, "apply", "-f", "-", stdin=join_manifests("karmada", c4))
    assert applied.returncode == 0, applied.stderr
    timed(lambda: ready_condition(kc, RESOURCE["karmada"], "c4", None).get("status") == "True",
          timeout=10, what="c4 Ready")

    applied = kubectl(kc, "apply", "-f", "-", stdin=web_manifests("c1"))
    assert applied.returncode == 0, applied.stderr
    timed(lambda: placed_on(sims, "web") == {"c1": 2}, timeout=15, what="web on c1")
    assert all(member_object(sims, "c1", k, n) for k, n in DEPENDENTS)

    applied = kubectl(kc, "apply", "-f", "-", stdin=web_manifests("c4"))
    assert applied.returncode == 0, applied.stderr
    timed(lambda: placed_on(sims, "web") == {"c4": 2}, timeout=15,
          what=f"web moved to c4 ({placed_on(sims, 'web')})")
    deployment_rv = int(member_object(sims, "c4", "Deployment", "web")["metadata"]["resourceVersion"])
    for kind, name in DEPENDENTS:
        obj = member_object(sims, "c4", kind, name)
        if name == "web-env":  # not ours: never overwritten
            assert obj == theirs
            continue
        assert obj["metadata"]["labels"][MANAGED_BY], obj
        assert int(obj["metadata"]["resourceVersion"]) < deployment_rv, f"{kind} {name} after web"
    assert member_object(sims, "c4", "Secret", "web-token")["data"] == {
        "token": b64("web-secret-value")}
    timed(lambda: not any(member_object(sims, "c1", k, n) for k, n in DEPENDENTS),
          timeout=10, what="web's dependents gone from c1")

    deleted = kubectl(kc, "delete", "deployment", "web")
    assert deleted.returncode == 0, deleted.stderr
    timed(lambda: [n for k, n in DEPENDENTS if member_object(sims, "c4", k, n)] == ["web-env"],
          timeout=10, what="ours gone from c4, theirs left")
    assert member_object(sims, "c4", "ConfigMap", "web-env") == theirs
    assert "web-secret-value" not in d.log_path.read_text(errors="replace")
