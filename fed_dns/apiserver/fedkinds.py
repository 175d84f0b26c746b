"""The kinds of the federation API: built-in workloads (apps/v1, also extensions/v1beta1) and
the v1 kinds that follow them (Namespace, ConfigMap, Secret, Service),
kubefed's FederatedDeployment and ReplicaSchedulingPreference, Karmada's PropagationPolicy
and OverridePolicy, and the Cluster kinds of the three formats (Federation v1's, kubefed's
KubeFedCluster, Karmada's)."""

from __future__ import annotations

from dataclasses import replace

from fed_dns.apiserver import builtin
from fed_dns.apiserver.clusters import CLUSTER, KARMADA_CLUSTER, KUBEFED_CLUSTER
from fed_dns.apiserver.kinds import Kind, Registry

EXTENSIONS = "extensions/v1beta1"  # the apiVersion of Federation v1 era manifests

NAMESPACE, SECRET, CONFIG_MAP = builtin.NAMESPACE, builtin.SECRET, builtin.CONFIG_MAP
SERVICE = builtin.SERVICE  # a federated workload's Services follow it into its members
DEPLOYMENT = replace(builtin.DEPLOYMENT, aliases=(EXTENSIONS,))
REPLICA_SET = replace(builtin.REPLICA_SET, aliases=(EXTENSIONS,))


def _fed_deployment(obj: dict) -> list:
    spec = obj.get("spec") or {}
    replicas = ((spec.get("template") or {}).get("spec") or {}).get("replicas", "")
    clusters = [c.get("name", "") for c in (spec.get("placement") or {}).get("clusters") or []]
    return [replicas, ",".join(clusters) or "<selector>"]


def _rsp(obj: dict) -> list:
    spec = obj.get("spec") or {}
    return [spec.get("totalReplicas", ""), str(bool(spec.get("rebalance", False)))]


def _policy(obj: dict) -> list:
    selectors = (obj.get("spec") or {}).get("resourceSelectors") or []
    return [",".join(f"{s.get('kind', '')}/{s.get('name', '*')}" for s in selectors)]


FEDERATED_DEPLOYMENT = Kind(
    kind="FederatedDeployment", plural="federateddeployments", group="types.kubefed.io",
    version="v1beta1", namespaced=True, singular="federateddeployment",
    short_names=("fdeploy",), subresources=("status",),
    columns=(("Replicas", "integer"), ("Clusters", "string")), cells=_fed_deployment)
REPLICA_SCHEDULING_PREFERENCE = Kind(
    kind="ReplicaSchedulingPreference", plural="replicaschedulingpreferences",
    group="scheduling.kubefed.io", version="v1alpha1", namespaced=True,
    singular="replicaschedulingpreference", short_names=("rsp",),
    columns=(("Total", "integer"), ("Rebalance", "string")), cells=_rsp)
PROPAGATION_POLICY = Kind(
    kind="PropagationPolicy", plural="propagationpolicies", group="policy.karmada.io",
    version="v1alpha1", namespaced=True, singular="propagationpolicy", short_names=("pp",),
    columns=(("Resources", "string"),), cells=_policy)
OVERRIDE_POLICY = Kind(
    kind="OverridePolicy", plural="overridepolicies", group="policy.karmada.io",
    version="v1alpha1", namespaced=True, singular="overridepolicy", short_names=("op",),
    columns=(("Resources", "string"),), cells=_policy)

KINDS: tuple[Kind, ...] = (NAMESPACE, SECRET, CONFIG_MAP, SERVICE, DEPLOYMENT, REPLICA_SET,
                           FEDERATED_DEPLOYMENT, REPLICA_SCHEDULING_PREFERENCE,
                           PROPAGATION_POLICY, OVERRIDE_POLICY, CLUSTER, KUBEFED_CLUSTER,
                           KARMADA_CLUSTER)
REGISTRY = Registry(KINDS)
