"""A federated workload's Service through `fed-dns run` itself (issue 12 with issue 9's API):
kubectl applies a Deployment and an exported Service selecting its pods to the federation API
(real etcd, simulated members running pods); the Service is created, labelled ours, in every
member where the Deployment has replicas, and its name answers in DNS with those members' pod
addresses; when the Deployment leaves a member, its Service goes with it there and so do that
member's addresses. `fed-dns status` shows the placements as a table."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
import yaml

from fed_dns.federation.propagation import MANAGED_BY
from fed_dns.federation.workloads import PREFERENCES
from tests.e2e.harness import Daemon, SimThread, timed
from tests.e2e.test_daemon_replicas import kubectl
from tests.support import REPO, fed_dns_command, free_port

pytestmark = pytest.mark.slow


def deployment(clusters: dict[str, int]) -> dict:
    prefs = {"rebalance": True, "clusters": {c: {"weight": w} for c, w in clusters.items()}}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                         "annotations": {PREFERENCES: json.dumps(prefs)}},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}}


SERVICE = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "web", "namespace": "default",
                        "annotations": {"fed-dns.io/export": "true"}},  # as README says
           "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}}


@pytest.fixture
def sims():
    """c1 and c2 running pods (10.1.x.x and 10.2.x.x), as members do."""
    threads = SimThread()
    try:
        for name in ("c1", "c2"):
            threads.add(name, use_tls=True, pods=True, ready_delay=0.05)
        yield threads
    finally:
        threads.close()


def member(sims: SimThread, cluster: str, kind: str, name: str = "web") -> dict | None:
    return sims.call(sims.clusters[cluster].get, kind=kind, namespace="default", name=name)


def ready_pods(sims: SimThread, cluster: str) -> set[str]:
    pods = sims.call(sims.clusters[cluster].list, kind="Pod", namespace="default")
    return {p["status"]["podIP"] for p in pods
            if (p["metadata"].get("labels") or {}).get("app") == "web"
            and any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (p.get("status") or {}).get("conditions") or ())}


def apply(kc: str, obj: dict) -> None:
    result = kubectl(kc, "apply", "-f", "-", stdin=yaml.safe_dump(obj))
    assert result.returncode == 0, result.stderr


def test_a_workloads_service_follows_it_and_answers_in_dns(tmp_path, sims, etcd_server):
    zone = f"svc-{uuid.uuid4().hex[:8]}.example.com."
    d = Daemon(tmp=tmp_path, sims=sims, etcd_url=etcd_server.url, zone=zone,
               extra={"api": {"enabled": True, "listen": f"127.0.0.1:{free_port()}",
                              "dir": str(tmp_path / "api")}})
    name = f"web.default.{zone}"
    try:
        d.start()
        kc = str(tmp_path / "federation.kubeconfig")
        subprocess.run(fed_dns_command("kubeconfig", "--config", str(d.config_path),
                                       "--output", kc), cwd=REPO, timeout=30, check=True)
        apply(kc, SERVICE)
        apply(kc, deployment({"c1": 1, "c2": 1}))

        # the Service in both members, labelled ours
        timed(lambda: all(member(sims, c, "Service") for c in ("c1", "c2")), timeout=15,
              what="web's Service in c1 and c2")
        owner_label = member(sims, "c1", "Service")["metadata"]["labels"][MANAGED_BY]
        assert owner_label and member(sims, "c2", "Service")["metadata"]["labels"][
            MANAGED_BY] == owner_label
        copy = member(sims, "c1", "Service")
        assert copy["metadata"]["annotations"]["fed-dns.io/export"] == "true"
        assert copy["spec"]["clusterIP"].startswith("10.96.")  # c1 allocated it
        # kubectl shows it as kube-apiserver does (no clusterIP in the federation API)
        header, row = [r.split() for r in kubectl(kc, "get", "svc").stdout.splitlines()]
        assert header == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
        assert row[:5] == ["web", "ClusterIP", "<none>", "<none>", "80/TCP"]

        # its name answers with the pods of both members (2 + 2)
        def both() -> bool:
            pods = ready_pods(sims, "c1") | ready_pods(sims, "c2")
            return len(pods) == 4 and d.addresses(name) == pods

        timed(both, timeout=20, what=f"{name} answers the 4 pods of c1 and c2")
        assert {a.split(".")[1] for a in d.addresses(name)} == {"1", "2"}

        status = subprocess.run(fed_dns_command("status", "--url",
                                                f"http://127.0.0.1:{d.http_port}"),
                                capture_output=True, text=True, cwd=REPO, timeout=30)
        assert status.returncode == 0, status.stderr
        rows = [line.split() for line in status.stdout.splitlines()]
        assert ["WORKLOAD", "CLUSTER", "DESIRED", "REPLICAS", "READY", "REASON"] in rows
        assert {tuple(r[:4]) for r in rows if r[:1] == ["Deployment/default/web"]} == \
            {("Deployment/default/web", "c1", "2", "2"), ("Deployment/default/web", "c2", "2", "2")}

        # the workload leaves c2: its Service goes from there, and c2's pods from the answer
        apply(kc, deployment({"c1": 1}))
        timed(lambda: member(sims, "c2", "Service") is None, timeout=15,
              what="web's Service gone from c2")
        assert member(sims, "c1", "Service") is not None

        def c1_only() -> bool:
            pods = ready_pods(sims, "c1")
            return len(pods) == 4 and d.addresses(name) == pods

        timed(c1_only, timeout=20, what=f"{name} answers c1's 4 pods only")
    finally:
        d.stop()
