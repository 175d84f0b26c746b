"""What the API server fills in and checks on write: defaults, allocated ClusterIPs,
a controller-free Deployment and ReplicaSet status (when the cluster runs no pods), and the
little validation we need."""

from __future__ import annotations

import ipaddress
import re

from fed_dns.sim.kinds import DEPLOYMENT, ENDPOINT_SLICE, NAMESPACE, REPLICA_SET, SERVICE, Kind
from fed_dns.apiserver.status import invalid

READY_LIMIT_ANNOTATION = "sim.fed-dns.io/ready-limit"
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # DNS-1035
_LABEL_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class IpAllocator:
    """ClusterIPs from 10.96.0.0/12, never reused within a cluster's life."""

    def __init__(self, cidr: str = "10.96.0.0/12") -> None:
        self._net = ipaddress.ip_network(cidr)
        self._next = 10

    def allocate(self) -> str:
        self._next += 1
        return str(self._net.network_address + self._next)


def validate(kind: Kind, obj: dict) -> None:
    """Reject what the API server would reject with 422 (names, required fields)."""
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    if not name:
        raise invalid(kind=kind.kind, name=name, message="metadata.name: Required value")
    if kind in (SERVICE, NAMESPACE):
        pattern = _LABEL if kind is SERVICE else _LABEL_1123
        if len(name) > 63 or not pattern.match(name):
            raise invalid(kind=kind.kind, name=name,
                          message=f"metadata.name: Invalid value: {name!r}: must be a DNS label "
                                  "(lower case alphanumeric characters or '-')")
    elif len(name) > 253 or not _SUBDOMAIN.match(name):
        raise invalid(kind=kind.kind, name=name,
                      message=f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 "
                              "subdomain must consist of lower case alphanumeric characters, "
                              "'-' or '.'")
    if kind is ENDPOINT_SLICE and obj.get("addressType") not in ("IPv4", "IPv6", "FQDN"):
        raise invalid(kind=kind.kind, name=name,
                      message="addressType: Unsupported value: must be IPv4, IPv6 or FQDN")
    if kind in (DEPLOYMENT, REPLICA_SET):
        replicas = (obj.get("spec") or {}).get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 0:
            raise invalid(kind=kind.kind, name=name,
                          message="spec.replicas: Invalid value: must be >= 0")


def fill(kind: Kind, obj: dict, *, ips: IpAllocator, old: dict | None,
         ready_limit: int | None, pods: bool = False) -> None:
    """Defaults; with `pods` false, workloads get their controller-free status."""
    if kind is SERVICE:
        _service(obj, ips=ips, old=old)
    elif kind in (DEPLOYMENT, REPLICA_SET):
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        if pods:
            obj.setdefault("status", {})
        else:
            obj["status"] = workload_status(kind, obj, ready_limit=ready_limit)
    elif kind is NAMESPACE:
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj.setdefault("status", {"phase": "Active"})
        labels = obj["metadata"].setdefault("labels", {})
        labels.setdefault("kubernetes.io/metadata.name", obj["metadata"]["name"])


def _service(obj: dict, *, ips: IpAllocator, old: dict | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    old_spec = (old or {}).get("spec") or {}
    if spec["type"] != "ExternalName":
        if not spec.get("clusterIP"):
            spec["clusterIP"] = old_spec.get("clusterIP") or ips.allocate()
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv6" if ":" in spec["clusterIP"] else "IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])
    obj.setdefault("status", {"loadBalancer": {}})


def workload_status(kind: Kind, obj: dict, *, ready_limit: int | None) -> dict:
    """The controller-free status of a Deployment or a ReplicaSet."""
    status = deployment_status(obj, ready_limit=ready_limit)
    if kind is DEPLOYMENT:
        return status
    out = {k: status[k] for k in ("observedGeneration", "replicas", "readyReplicas",
                                  "availableReplicas") if k in status}
    out["fullyLabeledReplicas"] = status["replicas"]
    return out


def deployment_status(obj: dict, *, ready_limit: int | None) -> dict:
    """As if a controller ran at once: every replica ready, up to the cluster's ready limit
    (or the Deployment's own `sim.fed-dns.io/ready-limit` annotation)."""
    replicas = (obj.get("spec") or {}).get("replicas", 1)
    if not isinstance(replicas, int):
        replicas = 1
    limit = ready_limit
    annotation = ((obj.get("metadata") or {}).get("annotations") or {}).get(READY_LIMIT_ANNOTATION)
    if annotation is not None and str(annotation).isdigit():
        limit = int(annotation)
    ready = replicas if limit is None else max(0, min(replicas, limit))
    status: dict = {
        "observedGeneration": (obj.get("metadata") or {}).get("generation", 1),
        "replicas": replicas,
        "updatedReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "True" if ready >= replicas else "False",
             "reason": "MinimumReplicasAvailable" if ready >= replicas
             else "MinimumReplicasUnavailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        ],
    }
    if ready:
        status["readyReplicas"] = ready
        status["availableReplicas"] = ready
    if replicas - ready:
        status["unavailableReplicas"] = replicas - ready
    return status
