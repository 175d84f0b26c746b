"""Admission for the federation API: what kube-apiserver (and kubefed's and Karmada's
webhooks) refuse, refused whole with 422 and a cause per field; nothing of it is stored.

`admit_for(clusters=..., reserved=...)` gives the `context.Admit` the handlers call;
`clusters` returns the member names (weights and placements may name only those, or "*"),
`reserved` the names of the members declared in the config file (no Cluster object may
take one).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Collection

from fed_dns.apiserver import fedkinds as k
from fed_dns.apiserver import services
from fed_dns.apiserver.clusters import CLUSTER_KINDS
from fed_dns.apiserver.context import Admit
from fed_dns.apiserver.invalid import (FieldErrors, dns1035_label, dns_label, dns_subdomain,
                                      non_negative_int)
from fed_dns.apiserver.kinds import Kind

PREFERENCES = "federation.kubernetes.io/replica-set-preferences"
PATCH_OPS = ("add", "remove", "replace")
SCHEDULING_TYPES = ("Duplicated", "Divided")


def _dict(errors: FieldErrors, path: str, value: object) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.invalid(path, value, "must be an object")
        return {}
    return value


def _list(errors: FieldErrors, path: str, value: object) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.invalid(path, value, "must be a list")
        return []
    return value


def _cluster_name(errors: FieldErrors, path: str, name: object, known: Collection[str], *,
                  wildcard: bool) -> None:
    if wildcard and name == "*":
        return
    if name not in known:
        errors.not_found(path, name, "no member cluster of that name (members: "
                         f"{', '.join(sorted(known)) or 'none'})")


def weights(errors: FieldErrors, path: str, clusters: object, known: Collection[str]) -> None:
    """`clusters: {name or "*": {weight, minReplicas, maxReplicas}}` (Federation v1 and
    kubefed's RSP share it)."""
    for name, pref in _dict(errors, path, clusters).items():
        at = f"{path}[{name}]"
        _cluster_name(errors, at, name, known, wildcard=True)
        pref = _dict(errors, at, pref)
        non_negative_int(errors, f"{at}.weight", pref.get("weight"))
        low_ok = non_negative_int(errors, f"{at}.minReplicas", pref.get("minReplicas"))
        high_ok = non_negative_int(errors, f"{at}.maxReplicas", pref.get("maxReplicas"))
        low, high = pref.get("minReplicas"), pref.get("maxReplicas")
        if low_ok and high_ok and low is not None and high is not None and low > high:
            errors.invalid(f"{at}.minReplicas", low,
                           f"must be less than or equal to maxReplicas ({high})")


def _metadata(errors: FieldErrors, kind: Kind, obj: dict) -> str:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    if not name:
        errors.required("metadata.name", "name or generateName is required")
    elif kind is k.NAMESPACE or kind in CLUSTER_KINDS:  # a member name is a DNS label
        dns_label(errors, "metadata.name", name)
    elif kind is k.SERVICE:
        dns1035_label(errors, "metadata.name", name)
    else:
        dns_subdomain(errors, "metadata.name", name)
    if kind.namespaced and meta.get("namespace"):
        dns_label(errors, "metadata.namespace", meta["namespace"])
    return name


def _workload(errors: FieldErrors, obj: dict, known: Collection[str]) -> None:
    spec = _dict(errors, "spec", obj.get("spec"))
    non_negative_int(errors, "spec.replicas", spec.get("replicas"))
    selector = _dict(errors, "spec.selector", spec.get("selector"))
    match = _dict(errors, "spec.selector.matchLabels", selector.get("matchLabels"))
    if not selector:
        errors.required("spec.selector")
    template = _dict(errors, "spec.template", spec.get("template"))
    labels = (template.get("metadata") or {}).get("labels") or {}
    if match and any(labels.get(key) != value for key, value in match.items()):
        errors.invalid("spec.template.metadata.labels", labels,
                       "`selector` does not match template `labels`")
    if not ((template.get("spec") or {}).get("containers")):
        errors.required("spec.template.spec.containers")
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(PREFERENCES)
    if raw is None:
        return
    at = f"metadata.annotations[{PREFERENCES}]"
    try:
        prefs = json.loads(raw)
    except (TypeError, ValueError) as exc:
        errors.invalid(at, raw, f"must be JSON: {exc}")
        return
    if not isinstance(prefs, dict):
        errors.invalid(at, raw, "must be a JSON object")
        return
    if not isinstance(prefs.get("rebalance", False), bool):
        errors.invalid(f"{at}.rebalance", prefs.get("rebalance"), "must be true or false")
    weights(errors, f"{at}.clusters", prefs.get("clusters"), known)


def _federated_deployment(errors: FieldErrors, obj: dict, known: Collection[str]) -> None:
    spec = _dict(errors, "spec", obj.get("spec"))
    if not spec.get("template"):
        errors.required("spec.template")
    else:
        template = _dict(errors, "spec.template", spec["template"])
        non_negative_int(errors, "spec.template.spec.replicas",
                         (template.get("spec") or {}).get("replicas"))
    placement = _dict(errors, "spec.placement", spec.get("placement"))
    for i, c in enumerate(_list(errors, "spec.placement.clusters", placement.get("clusters"))):
        _cluster_name(errors, f"spec.placement.clusters[{i}].name", (c or {}).get("name"),
                      known, wildcard=False)
    for i, o in enumerate(_list(errors, "spec.overrides", spec.get("overrides"))):
        o = _dict(errors, f"spec.overrides[{i}]", o)
        _cluster_name(errors, f"spec.overrides[{i}].clusterName", o.get("clusterName"),
                      known, wildcard=False)
        for j, co in enumerate(_list(errors, f"spec.overrides[{i}].clusterOverrides",
                                     o.get("clusterOverrides"))):
            at = f"spec.overrides[{i}].clusterOverrides[{j}]"
            co = _dict(errors, at, co)
            path = co.get("path")
            if not isinstance(path, str) or not path.startswith("/") or path == "/" \
                    or "//" in path:
                errors.invalid(f"{at}.path", path,
                               "must be a JSON pointer into the template, such as /spec/replicas")
            if co.get("op", "replace") not in PATCH_OPS:
                errors.unsupported(f"{at}.op", co.get("op"), PATCH_OPS)


def _rsp(errors: FieldErrors, obj: dict, known: Collection[str]) -> None:
    spec = _dict(errors, "spec", obj.get("spec"))
    non_negative_int(errors, "spec.totalReplicas", spec.get("totalReplicas"), required=True)
    weights(errors, "spec.clusters", spec.get("clusters"), known)


def _selectors(errors: FieldErrors, spec: dict) -> None:
    selectors = _list(errors, "spec.resourceSelectors", spec.get("resourceSelectors"))
    if not selectors:
        errors.required("spec.resourceSelectors", "a policy selects at least one resource")
    for i, s in enumerate(selectors):
        s = _dict(errors, f"spec.resourceSelectors[{i}]", s)
        for field in ("apiVersion", "kind"):
            if not s.get(field):
                errors.required(f"spec.resourceSelectors[{i}].{field}")


def _propagation_policy(errors: FieldErrors, obj: dict, known: Collection[str]) -> None:
    spec = _dict(errors, "spec", obj.get("spec"))
    _selectors(errors, spec)
    placement = _dict(errors, "spec.placement", spec.get("placement"))
    affinity = _dict(errors, "spec.placement.clusterAffinity", placement.get("clusterAffinity"))
    for i, name in enumerate(_list(errors, "spec.placement.clusterAffinity.clusterNames",
                                   affinity.get("clusterNames"))):
        _cluster_name(errors, f"spec.placement.clusterAffinity.clusterNames[{i}]", name, known,
                      wildcard=False)
    rs = _dict(errors, "spec.placement.replicaScheduling", placement.get("replicaScheduling"))
    kind = rs.get("replicaSchedulingType")
    if kind is not None and kind not in SCHEDULING_TYPES:
        errors.unsupported("spec.placement.replicaScheduling.replicaSchedulingType", kind,
                           SCHEDULING_TYPES)
    pref = _dict(errors, "spec.placement.replicaScheduling.weightPreference",
                 rs.get("weightPreference"))
    for i, w in enumerate(_list(errors, "spec.placement.replicaScheduling.weightPreference."
                                "staticWeightList", pref.get("staticWeightList"))):
        at = f"spec.placement.replicaScheduling.weightPreference.staticWeightList[{i}]"
        w = _dict(errors, at, w)
        non_negative_int(errors, f"{at}.weight", w.get("weight"), required=True)
        names = ((w.get("targetCluster") or {}).get("clusterNames")) or []
        for j, name in enumerate(names):
            _cluster_name(errors, f"{at}.targetCluster.clusterNames[{j}]", name, known,
                          wildcard=False)


def _override_policy(errors: FieldErrors, obj: dict, known: Collection[str]) -> None:
    spec = _dict(errors, "spec", obj.get("spec"))
    _selectors(errors, spec)
    for i, rule in enumerate(_list(errors, "spec.overrideRules", spec.get("overrideRules"))):
        rule = _dict(errors, f"spec.overrideRules[{i}]", rule)
        overriders = _dict(errors, f"spec.overrideRules[{i}].overriders", rule.get("overriders"))
        for j, p in enumerate(_list(errors, f"spec.overrideRules[{i}].overriders.plaintext",
                                    overriders.get("plaintext"))):
            at = f"spec.overrideRules[{i}].overriders.plaintext[{j}]"
            p = _dict(errors, at, p)
            path = p.get("path")
            if not isinstance(path, str) or not path.startswith("/"):
                errors.invalid(f"{at}.path", path, "must be a JSON pointer such as /spec/replicas")
            if p.get("operator") not in PATCH_OPS:
                errors.unsupported(f"{at}.operator", p.get("operator"), PATCH_OPS)


def _url(errors: FieldErrors, path: str, value: object, *, schemes=("https", "http"),
         bare: bool = False) -> None:
    if not isinstance(value, str) or not value:
        errors.required(path)
        return
    scheme, sep, rest = value.partition("://")
    if not sep and bare and value and "/" not in value:
        return  # Federation v1 took host:port
    if not sep or scheme not in schemes or not rest.split("/", 1)[0]:
        errors.invalid(path, value, "must be a URL such as https://10.0.0.1:6443")


def _secret_ref(errors: FieldErrors, spec: dict, *, with_namespace: bool) -> None:
    ref = _dict(errors, "spec.secretRef", spec.get("secretRef"))
    if not ref.get("name"):
        errors.required("spec.secretRef.name", "the Secret that holds the credentials")
    elif isinstance(ref["name"], str):
        dns_subdomain(errors, "spec.secretRef.name", ref["name"])
    if with_namespace:
        if not ref.get("namespace"):
            errors.required("spec.secretRef.namespace")
        elif isinstance(ref["namespace"], str):
            dns_label(errors, "spec.secretRef.namespace", ref["namespace"])


def _federation_cluster(errors: FieldErrors, obj: dict, known: Collection[str]) -> None:
    spec = _dict(errors, "spec", obj.get("spec"))
    rows = _list(errors, "spec.serverAddressByClientCIDRs", spec.get("serverAddressByClientCIDRs"))
    if not rows:
        errors.required("spec.serverAddressByClientCIDRs", "the member's API server address")
    for i, row in enumerate(rows):
        row = _dict(errors, f"spec.serverAddressByClientCIDRs[{i}]", row)
        _url(errors, f"spec.serverAddressByClientCIDRs[{i}].serverAddress",
             row.get("serverAddress"), bare=True)
    _secret_ref(errors, spec, with_namespace=False)


def _kubefed_cluster(errors: FieldErrors, obj: dict, known: Collection[str]) -> None:
    spec = _dict(errors, "spec", obj.get("spec"))
    _url(errors, "spec.apiEndpoint", spec.get("apiEndpoint"))
    ca = spec.get("caBundle")
    if ca is not None:
        try:
            base64.b64decode(ca, validate=True)
        except (binascii.Error, ValueError, TypeError):
            errors.invalid("spec.caBundle", "<bytes>", "must be base64")
    _secret_ref(errors, spec, with_namespace=False)


def _karmada_cluster(errors: FieldErrors, obj: dict, known: Collection[str]) -> None:
    spec = _dict(errors, "spec", obj.get("spec"))
    mode = spec.get("syncMode", "Push")
    if mode not in ("Push", "Pull"):
        errors.unsupported("spec.syncMode", mode, ("Push", "Pull"))
    elif mode == "Pull":
        errors.unsupported("spec.syncMode", mode, ("Push",))  # no agent: fed-dns pushes
    _url(errors, "spec.apiEndpoint", spec.get("apiEndpoint"))
    skip = spec.get("insecureSkipTLSVerification")
    if skip is not None and not isinstance(skip, bool):
        errors.invalid("spec.insecureSkipTLSVerification", skip, "must be true or false")
    _secret_ref(errors, spec, with_namespace=True)


def _service(errors: FieldErrors, obj: dict, known: Collection[str]) -> None:
    services.validate(errors, obj)


_CHECKS: dict[str, Callable[[FieldErrors, dict, Collection[str]], None]] = {
    k.SERVICE.key: _service,
    k.DEPLOYMENT.key: _workload,
    k.REPLICA_SET.key: _workload,
    k.FEDERATED_DEPLOYMENT.key: _federated_deployment,
    k.REPLICA_SCHEDULING_PREFERENCE.key: _rsp,
    k.PROPAGATION_POLICY.key: _propagation_policy,
    k.OVERRIDE_POLICY.key: _override_policy,
    k.CLUSTER.key: _federation_cluster,
    k.KUBEFED_CLUSTER.key: _kubefed_cluster,
    k.KARMADA_CLUSTER.key: _karmada_cluster,
}


def defaults(kind: Kind, obj: dict) -> None:
    """What kube-apiserver fills in before it validates (in place)."""
    if kind is k.SERVICE:
        services.defaults(obj)


def validate(kind: Kind, obj: dict, *, clusters: Collection[str],
             reserved: Collection[str] = ()) -> None:
    """Raise ApiError 422 (a cause per bad field) for an object the federation API refuses."""
    errors = FieldErrors()
    name = _metadata(errors, kind, obj)
    if kind in CLUSTER_KINDS and name in reserved:
        errors.invalid("metadata.name", name, "a member of that name is declared in the "
                       "fed-dns config file")
    check = _CHECKS.get(kind.key)
    if check is not None:
        check(errors, obj, clusters)
    errors.raise_for(kind, name)


def admit_for(*, clusters: Callable[[], Collection[str]],
              reserved: Callable[[], Collection[str]] = tuple) -> Admit:
    async def admit(kind: Kind, obj: dict, old: dict | None) -> None:
        defaults(kind, obj)
        validate(kind, obj, clusters=frozenset(clusters()), reserved=frozenset(reserved()))
    return admit
