"""`fed-dns status` (plain text): the federated replicas' table from /status's placements
(the whole command against a running daemon: tests/e2e/test_api_services.py)."""

from __future__ import annotations

from fed_dns.app.admin import placement_rows

PLACEMENTS = [
    {"kind": "Deployment", "namespace": "default", "name": "tomcat", "source": "federation-v1",
     "replicas": 4, "rebalance": True, "ready": 2, "error": "", "conflicts": ["c3"],
     "dependent_conflicts": ["ConfigMap default/web-conf in c2"],
     "clusters": [{"cluster": "c1", "desired": 2, "replicas": 2, "ready": 2, "reason": "Scheduled"},
                  {"cluster": "c2", "desired": 0, "replicas": 2, "ready": 0,
                   "reason": "ClusterUnreachable"}]},
    {"kind": "FederatedDeployment", "namespace": "ns", "name": "web", "clusters": [],
     "conflicts": [], "error": "placement names no member"},
]


def test_one_row_per_workload_and_member_then_errors_and_conflicts():
    assert placement_rows(PLACEMENTS) == [
        ["WORKLOAD", "CLUSTER", "DESIRED", "REPLICAS", "READY", "REASON"],
        ["Deployment/default/tomcat", "c1", "2", "2", "2", "Scheduled"],
        ["Deployment/default/tomcat", "c2", "0", "2", "0", "ClusterUnreachable"],
        ["Deployment/default/tomcat", "c3", "-", "-", "-",
         "Conflict: an object of that name not managed by fed-dns"],
        ["Deployment/default/tomcat", "-", "-", "-", "-",
         "Conflict: ConfigMap default/web-conf in c2"],
        ["FederatedDeployment/ns/web", "-", "-", "-", "-", "error: placement names no member"],
    ]


def test_no_workloads_header_only():
    assert placement_rows([]) == [["WORKLOAD", "CLUSTER", "DESIRED", "REPLICAS", "READY",
                                   "REASON"]]
