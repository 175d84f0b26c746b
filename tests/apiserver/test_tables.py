"""`kubectl get` columns of every federation API kind, in the order its real server prints
them: kube-apiserver's built-in printers and Karmada's put AGE last, kubefed's CRDs list
`age` before `ready`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fed_dns.apiserver import fedkinds as k
from fed_dns.apiserver.tables import table


def five_minutes_ago() -> str:
    """At the test's own time: taken when the module was collected, the age read "6m" and
    more once the tests before it had run for a minute."""
    return (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")


READY = {"conditions": [{"type": "Ready", "status": "True"}]}

CASES = [
    pytest.param(k.KUBEFED_CLUSTER, {"status": READY},
                 ["NAME", "AGE", "READY"], ["x", "5m", "True"], id="kubefed-cluster"),
    pytest.param(k.KARMADA_CLUSTER, {"spec": {"syncMode": "Push"},
                                     "status": dict(READY, kubernetesVersion="v1.31.0")},
                 ["NAME", "VERSION", "MODE", "READY", "AGE"],
                 ["x", "v1.31.0", "Push", "True", "5m"], id="karmada-cluster"),
    pytest.param(k.KARMADA_CLUSTER, {}, ["NAME", "VERSION", "MODE", "READY", "AGE"],
                 ["x", "", "Push", "Unknown", "5m"], id="karmada-cluster-no-condition"),
    pytest.param(k.CLUSTER, {"status": {"health": "ready", "region": "eu", "synced": True}},
                 ["NAME", "HEALTH", "REGION", "SYNCED", "AGE"],
                 ["x", "ready", "eu", "True", "5m"], id="federation-v1-cluster"),
    pytest.param(k.SERVICE, {"spec": {"type": "ClusterIP", "ports": [
        {"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}},
                 ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
                 ["x", "ClusterIP", "<none>", "<none>", "80/TCP,53/UDP", "5m"], id="service"),
    pytest.param(k.SERVICE, {"spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.7",
                                      "ports": [{"port": 443, "nodePort": 30443}]}},
                 ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
                 ["x", "LoadBalancer", "10.96.0.7", "<pending>", "443:30443/TCP", "5m"],
                 id="service-load-balancer"),
    pytest.param(k.REPLICA_SET, {"spec": {"replicas": 3}, "status": {"replicas": 3,
                                                                       "readyReplicas": 2}},
                 ["NAME", "DESIRED", "CURRENT", "READY", "AGE"], ["x", 3, 3, 2, "5m"],
                 id="replicaset"),
    pytest.param(k.DEPLOYMENT, {"spec": {"replicas": 2}, "status": {"readyReplicas": 1}},
                 ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], ["x", "1/2", 0, 0, "5m"],
                 id="deployment"),
]


@pytest.mark.parametrize(("kind", "obj", "header", "row"), CASES)
def test_columns_as_the_real_server_prints_them(kind, obj, header, row):
    obj = {**obj, "metadata": {"name": "x", "creationTimestamp": five_minutes_ago()}}
    doc = table(kind, [obj], resource_version="7")
    assert [c["name"].upper() for c in doc["columnDefinitions"]] == header
    assert doc["rows"][0]["cells"] == row
    assert len(doc["rows"][0]["cells"]) == len(doc["columnDefinitions"])
