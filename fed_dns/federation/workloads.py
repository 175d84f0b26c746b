"""Federated workloads: every accepted format read into one model, `Workload`. Pure.

federation.md, "Federated replicas". The formats:

- Federation v1 (`from_federation_v1`): an apps/v1 or extensions/v1beta1 Deployment or
  ReplicaSet, with the annotation `federation.kubernetes.io/replica-set-preferences`
  (`rebalance`, default false; `clusters: {name or "*": {weight, minReplicas, maxReplicas}}`;
  a cluster neither named nor covered by "*" gets nothing). Without the annotation
  (source "plain"): every ready cluster, equal weights, rebalance true.
- kubefed (`from_kubefed`): a FederatedDeployment; placement by `clusters` names (which win
  over `clusterSelector`, as in kubefed) or by a `clusterSelector` on Cluster labels (`{}`:
  every cluster; neither: none). Without a ReplicaSchedulingPreference every placed cluster
  runs the template's replicas (`duplicated`); with one, `totalReplicas` are divided.
- Karmada (`from_karmada`): a Deployment selected by a PropagationPolicy (`karmada_selects`);
  clusterAffinity `clusterNames` (minus `exclude`) and `labelSelector`; replicaScheduling
  `Duplicated` (Karmada's default) or `Divided` with `staticWeightList` (clusters no entry
  names weigh 0) or `dynamicWeight: AvailableReplicas`; rebalance true. OverridePolicies
  (applied in name order) give plaintext ops and image overriders, the latter turned into
  `replace` ops on each container's image.

An override of `/spec/replicas` for one cluster (kubefed `clusterOverrides`, Karmada
plaintext) does not stay an op: it pins that cluster (`min_replicas = max_replicas = value`
in its ClusterPreference), so the scheduler's numbers stay the truth and the total stays
exact. Overrides keyed "*" apply to every cluster, before the cluster's own.

The member object (`member_object`) carries the label `fed-dns.io/managed-by:
owner_label(owner)` — a label value cannot hold the owner id itself ("fed-dns/fed.example.com."
has a '/' and a trailing '.'), so it is the owner id with every other character than
[A-Za-z0-9._-] turned into '-', trimmed to 52 characters, plus '-' and 10 hex characters of
its SHA-256 (so two owners never share a value) — and the annotation `fed-dns.io/owner` with
the owner id as it is.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fed_dns.apiserver.patch import json_patch
from fed_dns.apiserver.status import ApiError

PREFERENCES = "federation.kubernetes.io/replica-set-preferences"
MANAGED_BY = "fed-dns.io/managed-by"
OWNER = "fed-dns.io/owner"
KINDS = ("Deployment", "ReplicaSet")
API_VERSIONS = ("apps/v1", "extensions/v1beta1")
OPS = ("add", "replace", "remove")
REPLICAS_PATH = "/spec/replicas"
# Annotations that describe the federated object, not what a member should run.
_DROPPED_ANNOTATIONS = (PREFERENCES, "kubectl.kubernetes.io/last-applied-configuration",
                        "deployment.kubernetes.io/revision")
_DROPPED_PREFIXES = ("federation.kubernetes.io/", "fed-dns.io/")
_KEPT_META = ("name", "namespace", "labels", "annotations")
_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9._-]")
_SELECTOR_OPS = ("In", "NotIn", "Exists", "DoesNotExist")


class WorkloadError(ValueError):
    """A federated object that cannot be scheduled; the message names the field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterPreference:
    weight: int = 1
    min_replicas: int = 0
    max_replicas: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    kind: str  # "Deployment" | "ReplicaSet": the member object's kind
    namespace: str
    name: str
    source: str  # "federation-v1" | "plain" | "kubefed" | "karmada"
    replicas: int  # total desired (per cluster when duplicated)
    rebalance: bool
    preferences: Mapping[str, ClusterPreference]  # name or "*"; empty: every placed, weight 1
    clusters: tuple[str, ...] | None  # placement by names (None: no name list)
    selector: Mapping | None  # a label selector on Cluster labels (None: no selector)
    duplicated: bool = False  # every placed cluster gets `replicas`
    dynamic_weights: bool = False  # weights from each cluster's available replicas
    template: Mapping = field(default_factory=dict)
    overrides: Mapping[str, tuple[Mapping, ...]] = field(default_factory=dict)
    generation: int = 0

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


# -- small readers --------------------------------------------------------------------------


def _map(value: object, path: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise WorkloadError(f"{path}: must be an object, not {type(value).__name__}")
    return dict(value)


def _seq(value: object, path: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise WorkloadError(f"{path}: must be a list, not {type(value).__name__}")
    return list(value)


def _count(value: object, path: str, *, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WorkloadError(f"{path}: must be a non-negative integer, not {value!r}")
    return value


def _names(value: object, path: str) -> tuple[str, ...]:
    names = _seq(value, path)
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise WorkloadError(f"{path}[{i}]: must be a cluster name, not {name!r}")
    return tuple(names)


def check_selector(selector: object, path: str) -> dict:
    """A Kubernetes label selector (matchLabels, matchExpressions), checked."""
    sel = _map(selector, path)
    for key in sel:
        if key not in ("matchLabels", "matchExpressions"):
            raise WorkloadError(f"{path}.{key}: unknown field (matchLabels, matchExpressions)")
    for key, value in _map(sel.get("matchLabels"), f"{path}.matchLabels").items():
        if not isinstance(value, str):
            raise WorkloadError(f"{path}.matchLabels[{key}]: must be a string, not {value!r}")
    for i, expr in enumerate(_seq(sel.get("matchExpressions"), f"{path}.matchExpressions")):
        at = f"{path}.matchExpressions[{i}]"
        expr = _map(expr, at)
        if not isinstance(expr.get("key"), str) or not expr.get("key"):
            raise WorkloadError(f"{at}.key: Required value")
        op = expr.get("operator")
        if op not in _SELECTOR_OPS:
            raise WorkloadError(f"{at}.operator: must be one of {', '.join(_SELECTOR_OPS)}, "
                                f"not {op!r}")
        values = _seq(expr.get("values"), f"{at}.values")
        if op in ("In", "NotIn") and not values:
            raise WorkloadError(f"{at}.values: must be non-empty for {op}")
        if op in ("Exists", "DoesNotExist") and values:
            raise WorkloadError(f"{at}.values: must be empty for {op}")
    return sel


def selector_matches(selector: Mapping, labels: Mapping[str, str]) -> bool:
    """Whether `labels` match a label selector ({} matches everything)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr["key"], expr["operator"], expr.get("values") or ()
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def _preference(value: object, path: str) -> ClusterPreference:
    pref = _map(value, path)
    low = _count(pref.get("minReplicas"), f"{path}.minReplicas", default=0)
    high = None if pref.get("maxReplicas") is None else _count(pref["maxReplicas"],
                                                               f"{path}.maxReplicas")
    if high is not None and low > high:
        raise WorkloadError(f"{path}.minReplicas: {low} is more than maxReplicas ({high})")
    return ClusterPreference(weight=_count(pref.get("weight"), f"{path}.weight", default=1),
                             min_replicas=low, max_replicas=high)


def _preferences(value: object, path: str) -> dict[str, ClusterPreference]:
    return {str(name): _preference(pref, f"{path}[{name}]")
            for name, pref in _map(value, path).items()}


def _op(value: object, path: str, *, op_key: str = "op", default_op: str | None = None) -> dict:
    raw = _map(value, path)
    op = raw.get(op_key, default_op)
    if op not in OPS:
        raise WorkloadError(f"{path}.{op_key}: must be one of {', '.join(OPS)}, not {op!r}")
    target = raw.get("path")
    if not isinstance(target, str) or not target.startswith("/") or target == "/":
        raise WorkloadError(f"{path}.path: must be a JSON pointer such as /spec/replicas, "
                            f"not {target!r}")
    out = {"op": op, "path": target}
    if op != "remove":
        if "value" not in raw:
            raise WorkloadError(f"{path}.value: Required value for {op}")
        out["value"] = copy.deepcopy(raw["value"])
    return out


# -- templates ------------------------------------------------------------------------------


def _clean_annotations(annotations: object, path: str) -> dict:
    return {k: v for k, v in _map(annotations, path).items()
            if k not in _DROPPED_ANNOTATIONS and not k.startswith(_DROPPED_PREFIXES)}


def _template(*, kind: str, namespace: str, name: str, meta: Mapping, spec: object,
              path: str) -> dict:
    spec = copy.deepcopy(_map(spec, f"{path}.spec"))
    spec.pop("replicas", None)
    metadata: dict = {"name": name, "namespace": namespace}
    labels = _map(meta.get("labels"), f"{path}.metadata.labels")
    if labels:
        metadata["labels"] = dict(labels)
    annotations = _clean_annotations(meta.get("annotations"), f"{path}.metadata.annotations")
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": metadata, "spec": spec}


def _identity(obj: Mapping, path: str = "metadata") -> tuple[str, str, int]:
    meta = _map(obj.get("metadata"), path)
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise WorkloadError(f"{path}.name: Required value")
    namespace = meta.get("namespace") or "default"
    generation = meta.get("generation") or 0
    return namespace, name, generation if isinstance(generation, int) else 0


def _workload_kind(obj: Mapping) -> str:
    if obj.get("kind") not in KINDS:
        raise WorkloadError(f"kind: must be Deployment or ReplicaSet, not {obj.get('kind')!r}")
    if obj.get("apiVersion") not in API_VERSIONS:
        raise WorkloadError(f"apiVersion: must be one of {', '.join(API_VERSIONS)}, not "
                            f"{obj.get('apiVersion')!r}")
    return obj["kind"]


def _workload_object(obj: Mapping) -> tuple[str, str, str, int, dict, int, dict]:
    """kind, namespace, name, generation, metadata, replicas and template of a Deployment or
    ReplicaSet of the federation API."""
    kind = _workload_kind(obj)
    namespace, name, generation = _identity(obj)
    meta = _map(obj.get("metadata"), "metadata")
    spec = _map(obj.get("spec"), "spec")
    replicas = _count(spec.get("replicas"), "spec.replicas", default=1)
    template = _template(kind=kind, namespace=namespace, name=name, meta=meta, spec=spec,
                         path="")
    return kind, namespace, name, generation, meta, replicas, template


def _pin_replicas(*, overrides: dict[str, list[dict]],
                  preferences: dict[str, ClusterPreference]) -> dict[str, tuple[dict, ...]]:
    """Turn per-cluster `/spec/replicas` ops into pinned preferences (see the module doc);
    the other ops stay, by cluster."""
    out: dict[str, tuple[dict, ...]] = {}
    everyone = not preferences  # no preferences: every placed cluster, which a pin keeps so
    for cluster, ops in overrides.items():
        kept = []
        for op in ops:
            if op["path"] != REPLICAS_PATH:
                kept.append(op)
                continue
            if op["op"] == "remove":
                continue
            value = op["value"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise WorkloadError(f"overrides[{cluster}] {REPLICAS_PATH}: must be a "
                                    f"non-negative integer, not {value!r}")
            if cluster == "*":
                raise WorkloadError(f"overrides {REPLICAS_PATH}: must name one cluster, not *")
            base = preferences.get(cluster) or preferences.get("*") or ClusterPreference()
            preferences[cluster] = ClusterPreference(weight=base.weight, min_replicas=value,
                                                     max_replicas=value)
        if kept:
            out[cluster] = tuple(kept)
    if everyone and preferences:
        preferences["*"] = ClusterPreference()
    return out


def _checked(workload: Workload) -> Workload:
    """Every override applies to the template (else WorkloadError naming cluster and path)."""
    for cluster in workload.overrides:
        _patched(workload, cluster=cluster)
    return workload


# -- the formats ----------------------------------------------------------------------------


def from_federation_v1(obj: Mapping) -> Workload:
    """A Deployment or ReplicaSet of the federation API (Federation v1 or plain)."""
    kind, namespace, name, generation, meta, replicas, template = _workload_object(obj)
    raw = _map(meta.get("annotations"), "metadata.annotations").get(PREFERENCES)
    if raw is None:
        return Workload(kind=kind, namespace=namespace, name=name, source="plain",
                        replicas=replicas, rebalance=True, preferences={}, clusters=None,
                        selector=None, template=template, generation=generation)
    at = f"metadata.annotations[{PREFERENCES}]"
    try:
        prefs = json.loads(raw) if isinstance(raw, str) else None
    except ValueError as exc:
        raise WorkloadError(f"{at}: must be JSON: {exc}") from None
    if not isinstance(prefs, dict):
        raise WorkloadError(f"{at}: must be a JSON object")
    rebalance = prefs.get("rebalance", False)
    if not isinstance(rebalance, bool):
        raise WorkloadError(f"{at}.rebalance: must be true or false, not {rebalance!r}")
    preferences = _preferences(prefs.get("clusters"), f"{at}.clusters")
    if not preferences:
        preferences = {"*": ClusterPreference()}  # an annotation naming no cluster: all
    return Workload(kind=kind, namespace=namespace, name=name, source="federation-v1",
                    replicas=replicas, rebalance=rebalance, preferences=preferences,
                    clusters=None, selector=None, template=template, generation=generation)


def from_kubefed(fd: Mapping, rsp: Mapping | None) -> Workload:
    """A FederatedDeployment, with the ReplicaSchedulingPreference of the same name if any."""
    if fd.get("kind") != "FederatedDeployment":
        raise WorkloadError(f"kind: must be FederatedDeployment, not {fd.get('kind')!r}")
    namespace, name, generation = _identity(fd)
    spec = _map(fd.get("spec"), "spec")
    tmpl = _map(spec.get("template"), "spec.template")
    if not tmpl:
        raise WorkloadError("spec.template: Required value")
    tmpl_spec = _map(tmpl.get("spec"), "spec.template.spec")
    replicas = _count(tmpl_spec.get("replicas"), "spec.template.spec.replicas", default=1)
    template = _template(kind="Deployment", namespace=namespace, name=name,
                         meta=_map(tmpl.get("metadata"), "spec.template.metadata"),
                         spec=tmpl_spec, path="spec.template")
    placement = _map(spec.get("placement"), "spec.placement")
    clusters: tuple[str, ...] | None
    selector: dict | None = None
    if placement.get("clusters") is not None:
        clusters = tuple(_map(c, f"spec.placement.clusters[{i}]").get("name") or ""
                         for i, c in enumerate(_seq(placement["clusters"],
                                                    "spec.placement.clusters")))
        _names(list(clusters), "spec.placement.clusters.name")
    elif placement.get("clusterSelector") is not None:
        clusters = None
        selector = check_selector(placement["clusterSelector"], "spec.placement.clusterSelector")
    else:
        clusters = ()  # kubefed: no placement, no cluster
    overrides: dict[str, list[dict]] = {}
    for i, o in enumerate(_seq(spec.get("overrides"), "spec.overrides")):
        o = _map(o, f"spec.overrides[{i}]")
        cluster = o.get("clusterName")
        if not isinstance(cluster, str) or not cluster:
            raise WorkloadError(f"spec.overrides[{i}].clusterName: Required value")
        for j, co in enumerate(_seq(o.get("clusterOverrides"),
                                    f"spec.overrides[{i}].clusterOverrides")):
            overrides.setdefault(cluster, []).append(
                _op(co, f"spec.overrides[{i}].clusterOverrides[{j}]", default_op="replace"))
    rebalance, duplicated, preferences = False, True, {}
    if rsp is not None:
        rsp_spec = _map(rsp.get("spec"), "ReplicaSchedulingPreference spec")
        replicas = _count(rsp_spec.get("totalReplicas"),
                          "ReplicaSchedulingPreference spec.totalReplicas")
        rebalance = rsp_spec.get("rebalance", False)
        if not isinstance(rebalance, bool):
            raise WorkloadError("ReplicaSchedulingPreference spec.rebalance: must be true or "
                                f"false, not {rebalance!r}")
        preferences = _preferences(rsp_spec.get("clusters"),
                                   "ReplicaSchedulingPreference spec.clusters")
        duplicated = False
    pinned = _pin_replicas(overrides=overrides, preferences=preferences)
    return _checked(Workload(
        kind="Deployment", namespace=namespace, name=name, source="kubefed", replicas=replicas,
        rebalance=rebalance, preferences=preferences, clusters=clusters, selector=selector,
        duplicated=duplicated, template=template, overrides=pinned, generation=generation))


def _selects(selector: Mapping, obj: Mapping, *, namespace: str) -> bool:
    meta = obj.get("metadata") or {}
    if selector.get("apiVersion") not in (obj.get("apiVersion"), *(
            API_VERSIONS if obj.get("apiVersion") in API_VERSIONS else ())):
        return False
    if selector.get("kind") != obj.get("kind"):
        return False
    if selector.get("namespace") and selector["namespace"] != (meta.get("namespace") or namespace):
        return False
    if selector.get("name"):
        return selector["name"] == meta.get("name")
    if selector.get("labelSelector") is not None:
        return selector_matches(selector["labelSelector"], meta.get("labels") or {})
    return True


def karmada_selects(policy: Mapping, obj: Mapping) -> bool:
    """Whether a PropagationPolicy or OverridePolicy (namespaced: its own namespace only)
    selects `obj` by one of its resourceSelectors."""
    policy_ns = (policy.get("metadata") or {}).get("namespace") or "default"
    if ((obj.get("metadata") or {}).get("namespace") or "default") != policy_ns:
        return False
    selectors = (policy.get("spec") or {}).get("resourceSelectors") or []
    return any(isinstance(s, Mapping) and _selects(s, obj, namespace=policy_ns)
               for s in selectors)


def _target_names(target: object, path: str) -> tuple[str, ...] | None:
    """A Karmada ClusterAffinity used as a rule's target: its names (None: every cluster)."""
    t = _map(target, path)
    if t.get("labelSelector") or t.get("fieldSelector"):
        raise WorkloadError(f"{path}: only clusterNames (and exclude) are supported here")
    if t.get("clusterNames") is None:
        if t.get("exclude"):
            raise WorkloadError(f"{path}.exclude: needs clusterNames")
        return None
    excluded = set(_names(t.get("exclude"), f"{path}.exclude"))
    return tuple(n for n in _names(t["clusterNames"], f"{path}.clusterNames")
                 if n not in excluded)


def _image(image: str, *, component: str, operator: str, value: str) -> str:
    """Karmada's imageOverrider on one image reference (registry/repository:tag or @digest)."""
    rest, sep, tag = image, "", ""
    if "@" in rest:
        rest, tag = rest.split("@", 1)
        sep = "@"
    elif ":" in rest.rsplit("/", 1)[-1]:
        rest, tag = rest.rsplit(":", 1)
        sep = ":"
    first, slash, after = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, after
    else:
        registry, repository = "", rest
    if component == "Registry":
        registry = {"add": registry + value, "replace": value, "remove": ""}[operator]
    elif component == "Repository":
        repository = {"add": repository + value, "replace": value, "remove": ""}[operator]
    else:
        tag = {"add": tag + value, "replace": value, "remove": ""}[operator]
        sep = "" if not tag else ("@" if tag.startswith("sha256:") else ":")
    return (f"{registry}/" if registry else "") + repository + (sep + tag if tag else "")


def _image_ops(overrider: object, path: str, template: Mapping) -> list[dict]:
    o = _map(overrider, path)
    component, operator = o.get("component"), o.get("operator")
    if component not in ("Registry", "Repository", "Tag"):
        raise WorkloadError(f"{path}.component: must be Registry, Repository or Tag, not "
                            f"{component!r}")
    if operator not in OPS:
        raise WorkloadError(f"{path}.operator: must be one of {', '.join(OPS)}, not "
                            f"{operator!r}")
    value = o.get("value", "")
    if operator != "remove" and (not isinstance(value, str) or not value):
        raise WorkloadError(f"{path}.value: Required value for {operator}")
    pod = (template.get("spec") or {}).get("template") or {}
    paths = [f"/spec/template/spec/{group}/{i}/image"
             for group in ("initContainers", "containers")
             for i, _ in enumerate((pod.get("spec") or {}).get(group) or [])]
    predicate = _map(o.get("predicate"), f"{path}.predicate").get("path")
    if predicate is not None:
        if predicate not in paths:
            raise WorkloadError(f"{path}.predicate.path: {predicate!r} is no container image "
                                "of the template")
        paths = [predicate]
    ops = []
    for p in paths:
        _, _, group, i, _ = p.rsplit("/", 4)
        image = pod["spec"][group][int(i)].get("image") or ""
        ops.append({"op": "replace", "path": p, "value": _image(
            image, component=component, operator=operator, value=value or "")})
    return ops


def _override_rules(policy: Mapping, path: str) -> list[tuple[object, dict]]:
    spec = _map(policy.get("spec"), f"{path}.spec")
    rules = [(r.get("targetCluster"), _map(r.get("overriders"), f"{path}.overrideRules[{i}]"
                                            ".overriders"))
             for i, r in enumerate(_map(x, f"{path}.overrideRules[{i}]") for i, x in
                                   enumerate(_seq(spec.get("overrideRules"),
                                                  f"{path}.spec.overrideRules")))]
    if spec.get("overriders"):  # the older single-rule form
        rules.append((spec.get("targetCluster"), _map(spec["overriders"], f"{path}.overriders")))
    return rules


def _karmada_overrides(obj: Mapping, overrides: Sequence[Mapping],
                       template: Mapping) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    applying = [p for p in overrides if karmada_selects(p, obj)]
    for policy in sorted(applying, key=lambda p: (p.get("metadata") or {}).get("name") or ""):
        path = f"OverridePolicy {(policy.get('metadata') or {}).get('name')}"
        for i, (target, overriders) in enumerate(_override_rules(policy, path)):
            at = f"{path} overrideRules[{i}]"
            names = _target_names(target, f"{at}.targetCluster")
            ops = [_op(p, f"{at}.overriders.plaintext[{j}]", op_key="operator")
                   for j, p in enumerate(_seq(overriders.get("plaintext"),
                                              f"{at}.overriders.plaintext"))]
            for j, io in enumerate(_seq(overriders.get("imageOverrider"),
                                        f"{at}.overriders.imageOverrider")):
                ops.extend(_image_ops(io, f"{at}.overriders.imageOverrider[{j}]", template))
            for name in names if names is not None else ("*",):
                out.setdefault(name, []).extend(ops)
    return out


def from_karmada(obj: Mapping, policy: Mapping, overrides: Sequence[Mapping]) -> Workload:
    """A Deployment, the PropagationPolicy selecting it, and the OverridePolicies (those that
    select it apply, in name order)."""
    kind, namespace, name, generation, _, replicas, template = _workload_object(obj)
    if not karmada_selects(policy, obj):
        raise WorkloadError("PropagationPolicy spec.resourceSelectors: does not select "
                            f"{kind} {name!r}")
    pp = "PropagationPolicy spec.placement"
    placement = _map(_map(policy.get("spec"), "PropagationPolicy spec").get("placement"), pp)
    affinity = _map(placement.get("clusterAffinity"), f"{pp}.clusterAffinity")
    if affinity.get("fieldSelector"):
        raise WorkloadError(f"{pp}.clusterAffinity.fieldSelector: not supported")
    clusters: tuple[str, ...] | None = None
    if affinity.get("clusterNames") is not None:
        excluded = set(_names(affinity.get("exclude"), f"{pp}.clusterAffinity.exclude"))
        clusters = tuple(n for n in _names(affinity["clusterNames"],
                                           f"{pp}.clusterAffinity.clusterNames")
                         if n not in excluded)
    elif affinity.get("exclude"):
        raise WorkloadError(f"{pp}.clusterAffinity.exclude: needs clusterNames")
    selector = None
    if affinity.get("labelSelector") is not None:
        selector = check_selector(affinity["labelSelector"], f"{pp}.clusterAffinity.labelSelector")
    rs = _map(placement.get("replicaScheduling"), f"{pp}.replicaScheduling")
    scheduling = rs.get("replicaSchedulingType", "Duplicated")
    if scheduling not in ("Duplicated", "Divided"):
        raise WorkloadError(f"{pp}.replicaScheduling.replicaSchedulingType: must be Duplicated "
                            f"or Divided, not {scheduling!r}")
    preferences: dict[str, ClusterPreference] = {}
    dynamic = False
    wp = _map(rs.get("weightPreference"), f"{pp}.replicaScheduling.weightPreference")
    if scheduling == "Divided" and wp.get("dynamicWeight") is not None:
        if wp["dynamicWeight"] != "AvailableReplicas":
            raise WorkloadError(f"{pp}.replicaScheduling.weightPreference.dynamicWeight: must "
                                f"be AvailableReplicas, not {wp['dynamicWeight']!r}")
        dynamic = True
    elif scheduling == "Divided":
        at = f"{pp}.replicaScheduling.weightPreference.staticWeightList"
        for i, entry in enumerate(_seq(wp.get("staticWeightList"), at)):
            entry = _map(entry, f"{at}[{i}]")
            weight = _count(entry.get("weight"), f"{at}[{i}].weight")
            names = _target_names(entry.get("targetCluster"), f"{at}[{i}].targetCluster")
            for n in names if names is not None else ("*",):
                old = preferences.get(n)  # Karmada: a cluster named twice takes the largest
                preferences[n] = ClusterPreference(weight=max(weight, old.weight if old else 0))
        if preferences and "*" not in preferences:
            preferences["*"] = ClusterPreference(weight=0)
    raw = _karmada_overrides(obj, overrides, template)
    pinned = _pin_replicas(overrides=raw, preferences=preferences)
    return _checked(Workload(
        kind=kind, namespace=namespace, name=name, source="karmada", replicas=replicas,
        rebalance=True, preferences=preferences, clusters=clusters, selector=selector,
        duplicated=scheduling == "Duplicated", dynamic_weights=dynamic, template=template,
        overrides=pinned, generation=generation))


# -- the member object ----------------------------------------------------------------------


def owner_label(owner: str) -> str:
    """The value of `fed-dns.io/managed-by` for an owner id (a valid label value)."""
    digest = hashlib.sha256(owner.encode()).hexdigest()[:10]
    base = _LABEL_VALUE_BAD.sub("-", owner)[:52].strip("-._")
    return f"{base}-{digest}" if base else digest


def _patched(workload: Workload, *, cluster: str) -> dict:
    obj = copy.deepcopy(dict(workload.template))
    for key in ("*", cluster) if cluster != "*" else ("*",):
        ops = list(workload.overrides.get(key, ()))
        if not ops:
            continue
        try:
            obj = json_patch(obj, ops)
        except ApiError as exc:
            raise WorkloadError(f"overrides[{key}] for cluster {cluster}: {exc}") from None
    return obj


def member_object(workload: Workload, *, cluster: str, replicas: int, owner: str) -> dict:
    """What to write to `cluster`: the template with the cluster's overrides, `replicas`, the
    managed-by label and the owner annotation."""
    obj = _patched(workload, cluster=cluster)
    meta = obj.setdefault("metadata", {})
    meta["name"], meta["namespace"] = workload.name, workload.namespace
    meta.setdefault("labels", {})[MANAGED_BY] = owner_label(owner)
    meta.setdefault("annotations", {})[OWNER] = owner
    obj.setdefault("spec", {})["replicas"] = replicas
    return obj
