"""propagation: desired vs observed member objects -> writes; the federated status."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fed_dns.federation import propagation as p

OWNER = "fed-dns.example.org"


def deployment(*, replicas: int, image: str = "tomcat:9", owner: str | None = OWNER) -> dict:
    labels = {"app": "tomcat"} | ({p.MANAGED_BY: owner} if owner else {})
    return p.stamp({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "tomcat", "namespace": "default", "labels": labels},
                    "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                        {"name": "t", "image": image}]}}}})


def observed(obj: dict, *, rv: str = "7", ready: int | None = None, managed: bool = True,
             generation: int = 1, seen: int = 1) -> p.Observed:
    obj = dict(obj, metadata=dict(obj["metadata"], resourceVersion=rv, generation=generation))
    if not managed:
        obj["metadata"]["labels"] = {"app": "tomcat"}
    replicas = obj["spec"]["replicas"]
    obj["status"] = {"replicas": replicas, "readyReplicas": replicas if ready is None else ready,
                     "availableReplicas": replicas if ready is None else ready,
                     "updatedReplicas": replicas, "observedGeneration": seen}
    return p.Observed.of(obj)


def run(desired, seen, writable=("c1", "c2")):
    return p.plan(desired=desired, observed=seen, writable=writable, owner=OWNER,
                  kind="Deployment", namespace="default", name="tomcat")


def verbs(result: p.Plan) -> list[tuple[str, str, int]]:
    return [(a.cluster, a.verb, a.replicas) for a in result.actions]


PLANS = [
    pytest.param({"c1": deployment(replicas=2)}, {}, ("c1", "c2"),
                 [("c1", "create", 2)], (), id="missing-created"),
    pytest.param({"c1": deployment(replicas=2)}, {"c1": observed(deployment(replicas=2))},
                 ("c1", "c2"), [], (), id="equal-nothing"),
    pytest.param({"c1": deployment(replicas=4)}, {"c1": observed(deployment(replicas=2))},
                 ("c1", "c2"), [("c1", "update", 4)], (), id="replicas-updated"),
    pytest.param({"c1": deployment(replicas=2, image="tomcat:10")},
                 {"c1": observed(deployment(replicas=2))}, ("c1", "c2"),
                 [("c1", "update", 2)], (), id="template-updated"),
    pytest.param({}, {"c2": observed(deployment(replicas=2))}, ("c1", "c2"),
                 [("c2", "delete", 0)], (), id="not-placed-deleted"),
    pytest.param({"c1": deployment(replicas=4)},
                 {"c1": observed(deployment(replicas=2)), "c2": observed(deployment(replicas=2))},
                 ("c1",), [("c1", "update", 4)], (), id="unreachable-left-alone"),
    pytest.param({"c2": deployment(replicas=2)}, {}, ("c1",), [], (),
                 id="unwritable-not-created"),
    pytest.param({"c1": deployment(replicas=2)},
                 {"c1": observed(deployment(replicas=9), managed=False)}, ("c1",), [], ("c1",),
                 id="unlabelled-conflict"),
    pytest.param({"c1": deployment(replicas=2)},
                 {"c1": observed(deployment(replicas=9, owner="someone-else"))}, ("c1",), [],
                 ("c1",), id="other-owner-conflict"),
    pytest.param({}, {"c1": observed(deployment(replicas=9), managed=False)}, ("c1",), [],
                 ("c1",), id="unlabelled-never-deleted"),
    pytest.param({"c2": deployment(replicas=0)}, {"c2": observed(deployment(replicas=2))},
                 ("c1", "c2"), [("c2", "update", 0)], (), id="stale-copy-scaled-to-zero"),
]


@pytest.mark.parametrize(("desired", "seen", "writable", "want", "conflicts"), PLANS)
def test_plan(desired, seen, writable, want, conflicts) -> None:
    result = run(desired, seen, writable)
    assert verbs(result) == want
    assert result.conflicts == conflicts
    assert result.in_sync is (not want)


def test_update_carries_the_observed_resource_version() -> None:
    result = run({"c1": deployment(replicas=4)}, {"c1": observed(deployment(replicas=2), rv="42")})
    (action,) = result.actions
    assert action.resource_version == "42"
    assert action.body["metadata"]["resourceVersion"] == "42"
    assert action.body["spec"]["replicas"] == 4


def test_delete_carries_the_observed_resource_version() -> None:
    (action,) = run({}, {"c1": observed(deployment(replicas=2), rv="9")}).actions
    assert (action.verb, action.resource_version, action.body) == ("delete", "9", None)


def test_member_defaults_do_not_cause_updates() -> None:
    """A member's API server adds defaults (strategy, ...): judged on our hash, no rewrite."""
    obj = deployment(replicas=2)
    filled = dict(obj, spec=dict(obj["spec"], strategy={"type": "RollingUpdate"},
                                 revisionHistoryLimit=10))
    assert run({"c1": obj}, {"c1": observed(filled)}).actions == ()


def test_hash_ignores_resource_version_and_itself() -> None:
    a = deployment(replicas=2)
    b = dict(a, metadata=dict(a["metadata"], resourceVersion="5"))
    assert p.content_hash(a) == p.content_hash(b) == p.content_hash(p.stamp(b))
    assert p.content_hash(a) != p.content_hash(deployment(replicas=3))


def summarize(seen, *, reachable=("c1", "c2"), in_sync=True, targets=None, reasons=None,
              conflicts=(), generation=3):
    return p.summarize(generation=generation, previous_generation=2, in_sync=in_sync,
                       observed=seen, reachable=reachable, owner=OWNER,
                       targets=targets if targets is not None else {"c1": 2, "c2": 2},
                       reasons=reasons or {}, conflicts=conflicts)


def test_summary_sums_reachable_members() -> None:
    seen = {"c1": observed(deployment(replicas=2)), "c2": observed(deployment(replicas=2))}
    s = summarize(seen)
    assert (s.replicas, s.ready, s.available, s.updated) == (4, 4, 4, 4)
    assert s.observed_generation == 3
    assert [(r.cluster, r.desired, r.ready, r.reason) for r in s.placement] == [
        ("c1", 2, 2, p.SCHEDULED), ("c2", 2, 2, p.SCHEDULED)]


def test_summary_leaves_out_an_unreachable_member() -> None:
    seen = {"c1": observed(deployment(replicas=4)), "c2": observed(deployment(replicas=2))}
    s = summarize(seen, reachable=("c1",), targets={"c1": 4})
    assert (s.replicas, s.ready) == (4, 4)
    assert [(r.cluster, r.desired, r.reason) for r in s.placement] == [
        ("c1", 4, p.SCHEDULED), ("c2", 0, p.UNREACHABLE)]


@pytest.mark.parametrize(("in_sync", "seen_generation", "want"), [
    (True, 1, 3), (False, 1, 2), (True, 0, 2)], ids=["settled", "writes-pending", "member-behind"])
def test_observed_generation_waits_for_every_member(in_sync, seen_generation, want) -> None:
    seen = {"c1": observed(deployment(replicas=2), seen=seen_generation),
            "c2": observed(deployment(replicas=2))}
    assert summarize(seen, in_sync=in_sync).observed_generation == want


def test_conflict_condition_and_reason() -> None:
    seen = {"c1": observed(deployment(replicas=2)),
            "c2": observed(deployment(replicas=5), managed=False)}
    s = summarize(seen, conflicts=("c2",))
    assert (s.replicas, s.ready) == (2, 2)  # the foreign object is not ours to count
    assert s.conflicts == ("c2",)
    assert s.conditions[0]["type"] == "Conflict" and "c2" in s.conditions[0]["message"]
    assert [r.reason for r in s.placement] == [p.SCHEDULED, p.CONFLICT]


@pytest.mark.parametrize(("kind", "present", "absent"), [
    ("Deployment", "updatedReplicas", "fullyLabeledReplicas"),
    ("ReplicaSet", "fullyLabeledReplicas", "updatedReplicas")], ids=["deployment", "replicaset"])
def test_status_fields_of_the_kind(kind, present, absent) -> None:
    seen = {"c1": observed(deployment(replicas=2)), "c2": observed(deployment(replicas=2))}
    status = p.status_of(kind=kind, summary=summarize(seen))
    assert status[present] == 4 and absent not in status
    assert status["readyReplicas"] == 4 and status["observedGeneration"] == 3
    assert status["placement"][0] == {"cluster": "c1", "desired": 2, "replicas": 2, "ready": 2,
                                      "reason": p.SCHEDULED}
    assert "conditions" not in status


CLUSTERS = ("c1", "c2", "c3")


@given(desired=st.dictionaries(st.sampled_from(CLUSTERS), st.integers(0, 5)),
       seen=st.dictionaries(st.sampled_from(CLUSTERS), st.tuples(st.integers(0, 5), st.booleans())),
       writable=st.sets(st.sampled_from(CLUSTERS)))
def test_plan_properties(desired, seen, writable) -> None:
    """Never a write to an unwritable member or to an object not ours; applying the plan
    leaves every writable, unconflicted member holding exactly what is desired."""
    want = {c: deployment(replicas=n) for c, n in desired.items()}
    have = {c: observed(deployment(replicas=n), managed=m) for c, (n, m) in seen.items()}
    result = run(want, have, writable)
    touched = {a.cluster for a in result.actions}
    assert touched <= set(writable)
    assert touched.isdisjoint(result.conflicts)
    assert set(result.conflicts) == {c for c, (_, m) in seen.items() if not m}
    after = {c: o.replicas for c, o in have.items() if o.managed_by == OWNER}
    for a in result.actions:
        if a.verb == p.DELETE:
            after.pop(a.cluster)
        else:
            after[a.cluster] = a.replicas
    for c in writable:
        if c not in result.conflicts:
            assert after.get(c) == desired.get(c)
