"""Builders for the objects tests and the demo put into simulated clusters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

Ports = Iterable[tuple[str, int] | tuple[str, int, str] | Mapping]


def _ports(ports: Ports | None) -> list[dict]:
    out = []
    for p in ports or ():
        if isinstance(p, Mapping):
            out.append(dict(p))
            continue
        name, port, *rest = p
        entry: dict = {"port": int(port), "protocol": rest[0] if rest else "TCP"}
        if name:
            entry["name"] = name
        out.append(entry)
    return out


def _meta(*, name: str, namespace: str, labels: Mapping | None,
          annotations: Mapping | None) -> dict:
    meta: dict = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def namespace(*, name: str, labels: Mapping | None = None) -> dict:
    meta: dict = {"name": name}
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def service(*, name: str, namespace: str, type: str = "ClusterIP",  # noqa: A002 - k8s field
            cluster_ip: str | None = None, ports: Ports = (("", 80),),
            annotations: Mapping | None = None, labels: Mapping | None = None,
            selector: Mapping | None = None, lb_ips: Sequence[str] = (),
            lb_hostnames: Sequence[str] = (), external_name: str | None = None,
            headless: bool = False) -> dict:
    """A core/v1 Service. `ports` items are (name, port[, protocol]) or full port dicts;
    `headless` sets clusterIP None; `lb_ips`/`lb_hostnames` fill status.loadBalancer."""
    if external_name is not None:
        type = "ExternalName"
    spec: dict = {"type": type, "ports": _ports(ports)}
    if selector:
        spec["selector"] = dict(selector)
    if external_name is not None:
        spec["externalName"] = external_name
        if not ports:
            spec.pop("ports")
    elif headless:
        spec["clusterIP"] = "None"
        spec["clusterIPs"] = ["None"]
    elif cluster_ip:
        spec["clusterIP"] = cluster_ip
        spec["clusterIPs"] = [cluster_ip]
    ingress = [{"ip": ip} for ip in lb_ips] + [{"hostname": h} for h in lb_hostnames]
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": _meta(name=name, namespace=namespace, labels=labels, annotations=annotations),
        "spec": spec,
        "status": {"loadBalancer": {"ingress": ingress} if ingress else {}},
    }


def endpoint_slice(*, service: str, namespace: str, name: str | None = None,
                   endpoints: Iterable[tuple[str, bool, str | None] | tuple[str, bool]] = (),
                   ports: Ports = (("", 80),), address_type: str = "IPv4",
                   labels: Mapping | None = None) -> dict:
    """A discovery.k8s.io/v1 EndpointSlice of `service` (label kubernetes.io/service-name).
    `endpoints` items are (ip, ready[, hostname])."""
    eps = []
    for item in endpoints:
        ip, ready, *rest = item
        ep: dict = {"addresses": [ip], "conditions": {"ready": bool(ready),
                                                      "serving": bool(ready),
                                                      "terminating": False}}
        if rest and rest[0]:
            ep["hostname"] = rest[0]
        eps.append(ep)
    all_labels = {"kubernetes.io/service-name": service,
                  "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    all_labels.update(labels or {})
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name or f"{service}-sim", "namespace": namespace,
                     "labels": all_labels},
        "addressType": address_type,
        "endpoints": eps,
        "ports": _ports(ports),
    }


def deployment(*, name: str, namespace: str, replicas: int = 1, labels: Mapping | None = None,
               annotations: Mapping | None = None, image: str = "registry.k8s.io/pause:3.9",
               ports: Sequence[int] = ()) -> dict:
    """An apps/v1 Deployment with one container; its pods are labelled app=<name>."""
    pod_labels = {"app": name}
    container: dict = {"name": name, "image": image}
    if ports:
        container["ports"] = [{"containerPort": int(p), "protocol": "TCP"} for p in ports]
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta(name=name, namespace=namespace, labels=labels, annotations=annotations),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": pod_labels},
            "template": {"metadata": {"labels": pod_labels}, "spec": {"containers": [container]}},
        },
    }
