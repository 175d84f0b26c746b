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
                   secret: bool = True) -> str:
    """The Secret and the Cluster object that join `member` as `name` in format `fmt`, as
    `kubectl create -f c4.yaml` (Federation v1), `kubefedctl join` or `karmadactl join`
    would make them."""
    kubeconfig = member.kubeconfig()
    ca = kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]
    token = token or member.token
    kubeconfig["users"][0]["user"]["token"] = token
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


def c4_keys(url: str, zone: str) -> list[str]:
    prefix = "/skydns/" + "/".join(reversed(zone.rstrip(".").split("."))) + "/"
    return [k for k, v in etcd_items(url, prefix).items() if v.get("cluster") == "c4"]


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
    table = kubectl(kc, "get", RESOURCE[fmt], *(["-A"] if NAMESPACE[fmt] else []))
    assert table.returncode == 0, table.stderr
    header, *rows = [line.split() for line in table.stdout.strip().splitlines()]
    expected = {"v1": ["NAME", "HEALTH", "REGION", "SYNCED", "AGE"],
                "kubefed": ["NAMESPACE", "NAME", "READY", "AGE"],
                "karmada": ["NAME", "VERSION", "MODE", "READY", "AGE"]}[fmt]
    assert header == expected
    row = next(r for r in rows if "c4" in r)
    assert {"v1": row[1:4] == ["ready", "ap", "True"], "kubefed": row[2] == "True",
            "karmada": row[-2:-1] == ["True"]}[fmt], row
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
    assert not d.addresses(f"c4.{name}") and not d.cnames(f"c4.{name}")
    timed(lambda: not c4_keys(etcd_server.url, d.zone), timeout=10, what="c4's keys out of etcd")
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
