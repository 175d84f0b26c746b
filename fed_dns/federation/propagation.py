"""Propagation, pure: desired member objects vs what the members hold -> the writes to make,
and the federated object's status from the members' (no I/O).

The replica loop (fed_dns/app/replicas.py) computes each placed member's desired object
(`workloads.member_object` with the replicas `scheduling.graceful` allows now), reads what
each member holds (`Observed`), and asks `plan` for the writes:

- a member that is not writable (unreachable, unknown) is not written at all: its object is
  left as it is (a control-plane partition is not a data-plane death);
- an object of the same name without our `fed-dns.io/managed-by` label (or with another
  owner's) is never touched: the member is reported as a conflict;
- missing and desired -> create; ours and different (content hash or spec.replicas) ->
  update, carrying the observed resourceVersion; ours and no longer placed -> delete, with
  a resourceVersion precondition.

`stamp` puts a hash of the desired object in an annotation, so a change is judged on what we
wrote, not on the defaults a member's API server added.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

MANAGED_BY = "fed-dns.io/managed-by"
SPEC_HASH = "fed-dns.io/spec-hash"
CREATE, UPDATE, DELETE = "create", "update", "delete"
_SCALED = ("Deployment", "ReplicaSet")

# placement reasons (status.placement[].reason and `fed-dns status`)
SCHEDULED = "Scheduled"
UNREACHABLE = "ClusterUnreachable"
CONFLICT = "Conflict"
AT_CAPACITY = "AtCapacity"  # capped at its ready replicas after unschedulable_after
REMOVED = "NotPlaced"  # still holds an object the plan no longer places there


def content_hash(obj: Mapping) -> str:
    """A hash of an object's content, metadata.resourceVersion and our own hash excluded."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("resourceVersion", None)
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != SPEC_HASH}
    meta["annotations"] = annotations
    data = json.dumps(dict(obj, metadata=meta), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()[:20]


def stamp(obj: Mapping) -> dict:
    """`obj` with its content hash in the SPEC_HASH annotation (a new dict)."""
    meta = dict(obj.get("metadata") or {})
    meta["annotations"] = dict(meta.get("annotations") or {}, **{SPEC_HASH: content_hash(obj)})
    return dict(obj, metadata=meta)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Observed:
    """A member's object of a workload's name, as read from the member."""

    kind: str
    namespace: str
    name: str
    resource_version: str = ""
    managed_by: str | None = None  # the MANAGED_BY label, None when absent
    spec_hash: str = ""
    replicas: int = 0  # spec.replicas
    generation: int = 0
    observed_generation: int = 0
    status_replicas: int = 0
    ready: int = 0
    available: int = 0
    updated: int = 0

    @classmethod
    def of(cls, obj: Mapping) -> Observed:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        st = obj.get("status") or {}
        # replicas: spec.replicas of a Deployment or ReplicaSet; 0 for the other kinds
        # (ConfigMaps, Secrets, Services follow their workload: `dependents`)
        replicas = spec.get("replicas", 1) if obj.get("kind") in _SCALED else 0
        return cls(kind=obj.get("kind") or "", namespace=meta.get("namespace") or "",
                   name=meta.get("name") or "",
                   resource_version=str(meta.get("resourceVersion") or ""),
                   managed_by=(meta.get("labels") or {}).get(MANAGED_BY),
                   spec_hash=(meta.get("annotations") or {}).get(SPEC_HASH, ""),
                   replicas=_int(replicas), generation=_int(meta.get("generation")),
                   observed_generation=_int(st.get("observedGeneration")),
                   status_replicas=_int(st.get("replicas")), ready=_int(st.get("readyReplicas")),
                   available=_int(st.get("availableReplicas")),
                   updated=_int(st.get("updatedReplicas", st.get("replicas"))))

    @property
    def settled(self) -> bool:
        """The member's controller has seen this spec (status.observedGeneration)."""
        return self.observed_generation >= self.generation


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """One write to one member. `body`: the object to create or PUT (None for deletes);
    `resource_version`: the precondition of an update or delete."""

    cluster: str
    verb: str  # CREATE | UPDATE | DELETE
    kind: str
    namespace: str
    name: str
    body: Mapping | None = None
    resource_version: str = ""
    replicas: int = 0  # what the member will run (0 for deletes)


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    actions: tuple[Action, ...] = ()
    conflicts: tuple[str, ...] = ()  # clusters holding an object we must not touch
    in_sync: bool = True  # every writable member already holds what is desired


def plan(*, desired: Mapping[str, Mapping], observed: Mapping[str, Observed],
         writable: Iterable[str], owner: str, kind: str, namespace: str, name: str) -> Plan:
    """The writes that make the writable members hold `desired` (cluster -> stamped object;
    clusters absent from it must not hold the workload). `observed`: cluster -> the object
    of that name each member holds (absent: none)."""
    actions: list[Action] = []
    conflicts: list[str] = []
    writable = frozenset(writable)
    for cluster in sorted(set(desired) | set(observed)):
        have, want = observed.get(cluster), desired.get(cluster)
        if have is not None and have.managed_by != owner:
            conflicts.append(cluster)
            continue
        if cluster not in writable:
            continue
        if want is None:
            if have is not None:
                actions.append(Action(cluster=cluster, verb=DELETE, kind=have.kind or kind,
                                      namespace=namespace, name=name,
                                      resource_version=have.resource_version))
            continue
        replicas = _int((want.get("spec") or {}).get("replicas"))
        if have is None:
            actions.append(Action(cluster=cluster, verb=CREATE, kind=kind, namespace=namespace,
                                  name=name, body=want, replicas=replicas))
        elif have.spec_hash != _hash_of(want) or have.replicas != replicas or have.kind != kind:
            actions.append(Action(cluster=cluster, verb=UPDATE, kind=kind, namespace=namespace,
                                  name=name, body=_with_rv(want, have.resource_version),
                                  resource_version=have.resource_version, replicas=replicas))
    return Plan(actions=tuple(actions), conflicts=tuple(conflicts), in_sync=not actions)


def _hash_of(obj: Mapping) -> str:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(SPEC_HASH) or \
        content_hash(obj)


def _with_rv(obj: Mapping, rv: str) -> dict:
    return dict(obj, metadata=dict(obj.get("metadata") or {}, resourceVersion=rv))


# -- status --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    """One member's share of a workload, as `fed-dns status` and status.placement show it."""

    cluster: str
    desired: int  # what the plan gives it (its target)
    replicas: int  # what its object asks for now (spec.replicas; graceful steps lag the target)
    ready: int
    reason: str

    def as_dict(self) -> dict:
        return {"cluster": self.cluster, "desired": self.desired, "replicas": self.replicas,
                "ready": self.ready, "reason": self.reason}


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """What the status of a federated object says (the members' sums and the placement)."""

    replicas: int = 0
    ready: int = 0
    available: int = 0
    updated: int = 0
    observed_generation: int = 0
    placement: tuple[Placement, ...] = ()
    conflicts: tuple[str, ...] = ()
    conditions: tuple[Mapping, ...] = field(default=())


def summarize(*, generation: int, previous_generation: int, in_sync: bool,
              observed: Mapping[str, Observed], reachable: Iterable[str], owner: str,
              targets: Mapping[str, int], reasons: Mapping[str, str],
              conflicts: Iterable[str]) -> Summary:
    """Sum the reachable members' status of our objects; observedGeneration is the federated
    object's generation once every reachable member holds what it asks and has seen it (else
    the previous one), so `kubectl rollout status` waits for every member."""
    reachable = frozenset(reachable)
    conflicts = tuple(sorted(conflicts))
    ours = {c: o for c, o in observed.items() if o.managed_by == owner}
    counted = [o for c, o in ours.items() if c in reachable]
    settled = in_sync and all(o.settled for o in counted)
    rows = []
    for cluster in sorted(set(targets) | set(ours) | set(conflicts)):
        o = ours.get(cluster)
        if cluster in conflicts:
            reason = CONFLICT
        elif cluster not in reachable:
            reason = UNREACHABLE
        else:
            reason = reasons.get(cluster, SCHEDULED if cluster in targets else REMOVED)
        rows.append(Placement(cluster=cluster, desired=targets.get(cluster, 0),
                              replicas=o.replicas if o else 0, ready=o.ready if o else 0,
                              reason=reason))
    conditions: list[Mapping] = []
    if conflicts:
        conditions.append({"type": "Conflict", "status": "True", "reason": "ObjectNotManaged",
                           "message": "an object of the same name not managed by fed-dns "
                                      f"exists in: {', '.join(conflicts)}"})
    return Summary(replicas=sum(o.status_replicas for o in counted),
                   ready=sum(o.ready for o in counted),
                   available=sum(o.available for o in counted),
                   updated=sum(o.updated for o in counted),
                   observed_generation=generation if settled else previous_generation,
                   placement=tuple(rows), conflicts=conflicts, conditions=tuple(conditions))


def status_of(*, kind: str, summary: Summary) -> dict:
    """The federated object's status: the fields of its kind (Deployment, ReplicaSet) plus
    `placement` and `conditions`."""
    out: dict = {"observedGeneration": summary.observed_generation,
                 "replicas": summary.replicas, "readyReplicas": summary.ready,
                 "availableReplicas": summary.available}
    if kind == "ReplicaSet":
        out["fullyLabeledReplicas"] = summary.replicas
    else:
        out["updatedReplicas"] = summary.updated
    out["placement"] = [p.as_dict() for p in summary.placement]
    if summary.conditions:
        out["conditions"] = [dict(c) for c in summary.conditions]
    return out
