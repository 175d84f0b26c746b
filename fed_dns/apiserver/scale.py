"""The autoscaling/v1 Scale subresource of Deployments and ReplicaSets."""

from __future__ import annotations

from fed_dns.apiserver.status import ApiError


def scale_of(obj: dict) -> dict:
    meta = obj["metadata"]
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                          "creationTimestamp") if k in meta},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                   "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items()))},
    }


def scaled(obj: dict, scale: object, *, name: str) -> dict:
    """`obj` with the replicas of `scale` (and its resourceVersion, when it has one)."""
    if not isinstance(scale, dict):
        raise ApiError(code=400, message="expected an autoscaling/v1 Scale")
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise ApiError(code=422, message=f'Scale.autoscaling "{name}" is invalid: '
                       "spec.replicas: must be a non-negative integer", reason="Invalid")
    sent_rv = (scale.get("metadata") or {}).get("resourceVersion")
    out = dict(obj, spec=dict(obj.get("spec") or {}, replicas=replicas))
    out["metadata"] = dict(obj["metadata"], resourceVersion=sent_rv or
                           obj["metadata"]["resourceVersion"])
    return out
