"""Dependents of federated workloads, pure: which ConfigMaps, Secrets and Services of the
federation API follow a workload into the members where it has replicas (issue 12).

- `references(template)`: the ConfigMaps and Secrets a pod template names: volumes
  (`configMap`, `secret`, `projected.sources[]`), every container's `envFrom`
  (`configMapRef`, `secretRef`) and `env[].valueFrom` (`configMapKeyRef`, `secretKeyRef`),
  and `imagePullSecrets`;
- `selects(service, pod_labels)`: a Service with a non-empty selector that the pod labels
  match (a Service without a selector, or ExternalName, follows nothing);
- `member_copy(obj, owner_id=...)`: what a member gets: data (ConfigMap, Secret) or spec
  (Service, without the member-allocated clusterIP/clusterIPs/nodePorts/healthCheckNodePort),
  labels plus `fed-dns.io/managed-by`, annotations kept (so `fed-dns.io/export` publishes a
  propagated Service like any other), stamped with its content hash;
- `desired(uses=..., sources=..., owner_id=...)`: dependent -> cluster -> member copy, from
  what each workload uses where it has replicas (a dependent shared by two workloads stays
  while any of them runs there; one missing from the federation API is wanted nowhere);
- `with_conflicts(status, conflicts)`: a workload's status with its dependents' conflicts
  (objects of the same name not managed by fed-dns) in its Conflict condition.

The writes themselves are `propagation.plan` per dependent, the same rules as the workload's
own object: never an unlabelled object, deletes only of ours.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fed_dns.federation.propagation import MANAGED_BY, SPEC_HASH, stamp
from fed_dns.federation.workloads import OWNER, owner_label

CONFIG_MAP, SECRET, SERVICE = "ConfigMap", "Secret", "Service"
KINDS = (CONFIG_MAP, SECRET, SERVICE)
Ref = tuple[str, str]  # (kind, name), in the workload's namespace
DependentKey = tuple[str, str, str]  # (kind, namespace, name)

_DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration", SPEC_HASH, OWNER)
_ALLOCATED = ("clusterIP", "clusterIPs", "healthCheckNodePort")
_DATA_FIELDS = {CONFIG_MAP: ("data", "binaryData", "immutable"),
                SECRET: ("type", "data", "stringData", "immutable")}


def _dicts(value: object) -> list[Mapping]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _map(value: object) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _name(value: object, field: str = "name") -> str | None:
    name = _map(value).get(field)
    return name if isinstance(name, str) and name else None


def _add(out: set[Ref], kind: str, name: str | None) -> None:
    if name is not None:
        out.add((kind, name))


def references(template: Mapping) -> frozenset[Ref]:
    """The ConfigMaps and Secrets a pod template ({metadata, spec}) names."""
    spec = _map(_map(template).get("spec"))
    out: set[Ref] = set()
    for volume in _dicts(spec.get("volumes")):
        _add(out, CONFIG_MAP, _name(volume.get("configMap")))
        _add(out, SECRET, _name(volume.get("secret"), "secretName"))
        for source in _dicts(_map(volume.get("projected")).get("sources")):
            _add(out, CONFIG_MAP, _name(source.get("configMap")))
            _add(out, SECRET, _name(source.get("secret")))
    containers = [*_dicts(spec.get("containers")), *_dicts(spec.get("initContainers")),
                  *_dicts(spec.get("ephemeralContainers"))]
    for container in containers:
        for source in _dicts(container.get("envFrom")):
            _add(out, CONFIG_MAP, _name(source.get("configMapRef")))
            _add(out, SECRET, _name(source.get("secretRef")))
        for env in _dicts(container.get("env")):
            value_from = _map(env.get("valueFrom"))
            _add(out, CONFIG_MAP, _name(value_from.get("configMapKeyRef")))
            _add(out, SECRET, _name(value_from.get("secretKeyRef")))
    for secret in _dicts(spec.get("imagePullSecrets")):
        _add(out, SECRET, _name(secret))
    return frozenset(out)


def pod_template(member_object: Mapping) -> Mapping:
    """The pod template of a Deployment or ReplicaSet ({} when it has none)."""
    return _map(_map(member_object.get("spec")).get("template"))


def pod_labels(member_object: Mapping) -> Mapping[str, str]:
    labels = _map(_map(pod_template(member_object).get("metadata")).get("labels"))
    return {k: v for k, v in labels.items() if isinstance(v, str)}


def selects(service: Mapping, labels: Mapping[str, str]) -> bool:
    """Whether a Service's selector picks pods with `labels` (no selector: nothing)."""
    spec = _map(service.get("spec"))
    selector = _map(spec.get("selector"))
    if not selector or spec.get("type") == "ExternalName":
        return False
    return all(labels.get(k) == v for k, v in selector.items())


def uses(member_object: Mapping, services: Iterable[Mapping]) -> frozenset[Ref]:
    """What a member object of a workload needs in its cluster: the ConfigMaps and Secrets
    its pod template names, and the `services` (of its namespace) that select its pods."""
    labels = pod_labels(member_object)
    chosen = {(SERVICE, s["metadata"]["name"]) for s in services if selects(s, labels)}
    return references(pod_template(member_object)) | chosen


def member_copy(obj: Mapping, *, owner_id: str) -> dict:
    """The member's copy of a federation API ConfigMap, Secret or Service, stamped."""
    kind = obj.get("kind")
    meta = _map(obj.get("metadata"))
    labels = dict(_map(meta.get("labels")))
    labels[MANAGED_BY] = owner_label(owner_id)
    annotations = {k: v for k, v in _map(meta.get("annotations")).items()
                   if k not in _DROPPED_ANNOTATIONS}
    annotations[OWNER] = owner_id
    out: dict = {"apiVersion": "v1", "kind": kind,
                 "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"),
                              "labels": labels, "annotations": annotations}}
    if kind == SERVICE:
        spec = copy.deepcopy(dict(_map(obj.get("spec"))))
        for key in _ALLOCATED:
            spec.pop(key, None)
        for port in _dicts(spec.get("ports")):
            if isinstance(port, dict):
                port.pop("nodePort", None)
        out["spec"] = spec
    else:
        for key in _DATA_FIELDS.get(kind, ()):
            if key in obj:
                out[key] = copy.deepcopy(obj[key])
    return stamp(out)


def desired(*, uses: Mapping[str, Mapping[str, frozenset[Ref]]],
            namespaces: Mapping[str, str], sources: Mapping[DependentKey, Mapping],
            owner_id: str, wanted: Iterable[DependentKey]) -> dict[DependentKey, dict[str, dict]]:
    """For each dependent in `wanted`: cluster -> the member copy it should hold.

    `uses`: workload -> cluster -> the refs it uses there (clusters where it has replicas
    only); `namespaces`: workload -> its namespace; `sources`: the federation API's objects.
    """
    where: dict[DependentKey, set[str]] = {}
    for workload, by_cluster in uses.items():
        namespace = namespaces[workload]
        for cluster, refs in by_cluster.items():
            for kind, name in refs:
                where.setdefault((kind, namespace, name), set()).add(cluster)
    out: dict[DependentKey, dict[str, dict]] = {}
    for key in wanted:
        source = sources.get(key)
        clusters = where.get(key, set())
        if source is None or not clusters:
            out[key] = {}
            continue
        body = member_copy(source, owner_id=owner_id)
        out[key] = {c: body for c in sorted(clusters)}
    return out


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class DependentConflict:
    cluster: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name} in {self.cluster}"


def with_conflicts(status: Mapping, conflicts: Iterable[DependentConflict]) -> dict:
    """`status` with the dependents' conflicts in its Conflict condition (one per type, as
    Kubernetes conditions are: appended to the message of one already there)."""
    conflicts = sorted(set(conflicts))
    out = dict(status)
    if not conflicts:
        return out
    message = ("dependents not managed by fed-dns (left alone): " +
               ", ".join(str(c) for c in conflicts))
    conditions = [dict(c) for c in out.get("conditions") or ()]
    for condition in conditions:
        if condition.get("type") == "Conflict":
            condition["message"] = f"{condition.get('message', '')}; {message}"
            break
    else:
        conditions.append({"type": "Conflict", "status": "True",
                           "reason": "DependentNotManaged", "message": message})
    out["conditions"] = conditions
    return out
