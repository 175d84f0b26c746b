"""Built-in Kubernetes kinds both API servers serve, with kube-apiserver's printer columns."""

from __future__ import annotations

from fed_dns.apiserver.kinds import Kind


def _namespace(obj: dict) -> list:
    return [(obj.get("status") or {}).get("phase", "Active")]


def _deployment(obj: dict) -> list:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    return [f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            st.get("updatedReplicas", 0), st.get("availableReplicas", 0)]


def _replica_set(obj: dict) -> list:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    return [spec.get("replicas", 1), st.get("replicas", 0), st.get("readyReplicas", 0)]


def _secret(obj: dict) -> list:
    return [obj.get("type", "Opaque"), len(obj.get("data") or {}) + len(obj.get("stringData") or {})]


def _config_map(obj: dict) -> list:
    return [len(obj.get("data") or {}) + len(obj.get("binaryData") or {})]


def _ports(ports: list | None) -> str:
    out = []
    for p in ports or []:
        if not isinstance(p, dict):
            continue
        text = f"{p.get('port', '')}"
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        out.append(f"{text}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _service(obj: dict) -> list:
    """TYPE CLUSTER-IP EXTERNAL-IP PORT(S), as kube-apiserver's printer fills them."""
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    ingress = (st.get("loadBalancer") or {}).get("ingress") or []
    external = [i.get("ip") or i.get("hostname") for i in ingress
                if isinstance(i, dict) and (i.get("ip") or i.get("hostname"))]
    external += [ip for ip in spec.get("externalIPs") or [] if isinstance(ip, str)]
    if spec.get("type") == "ExternalName":
        external = [spec.get("externalName", "")]
    elif not external:
        external = ["<pending>"] if spec.get("type") == "LoadBalancer" else ["<none>"]
    return [spec.get("type", ""), spec.get("clusterIP") or "<none>", ",".join(external),
            _ports(spec.get("ports"))]


NAMESPACE = Kind(kind="Namespace", plural="namespaces", group="", version="v1", namespaced=False,
                 short_names=("ns",), singular="namespace", subresources=("status",),
                 columns=(("Status", "string"),), cells=_namespace, delete_returns_object=True)
DEPLOYMENT = Kind(kind="Deployment", plural="deployments", group="apps", version="v1",
                  namespaced=True, short_names=("deploy",), singular="deployment",
                  subresources=("status", "scale"), categories=("all",),
                  columns=(("Ready", "string"), ("Up-to-date", "integer"),
                           ("Available", "integer")), cells=_deployment)
REPLICA_SET = Kind(kind="ReplicaSet", plural="replicasets", group="apps", version="v1",
                   namespaced=True, short_names=("rs",), singular="replicaset",
                   subresources=("status", "scale"), categories=("all",),
                   columns=(("Desired", "integer"), ("Current", "integer"), ("Ready", "integer")),
                   cells=_replica_set)
SECRET = Kind(kind="Secret", plural="secrets", group="", version="v1", namespaced=True,
              singular="secret", columns=(("Type", "string"), ("Data", "integer")),
              cells=_secret)
CONFIG_MAP = Kind(kind="ConfigMap", plural="configmaps", group="", version="v1",
                  namespaced=True, short_names=("cm",), singular="configmap",
                  columns=(("Data", "integer"),), cells=_config_map)
SERVICE = Kind(kind="Service", plural="services", group="", version="v1", namespaced=True,
               short_names=("svc",), singular="service", subresources=("status",),
               categories=("all",), delete_returns_object=True,
               columns=(("Type", "string"), ("Cluster-IP", "string"), ("External-IP", "string"),
                        ("Port(s)", "string")), cells=_service)
