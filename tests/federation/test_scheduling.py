"""The replica scheduler and the graceful step (federation.md "Scheduling")."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fed_dns.federation import scheduling as s
from fed_dns.federation.scheduling import Candidate
from fed_dns.federation.workloads import ClusterPreference as P
from fed_dns.federation.workloads import Workload


def wl(*, replicas: int = 4, rebalance: bool = True, prefs: dict | None = None,
       clusters: tuple | None = None, selector: dict | None = None, duplicated: bool = False,
       dynamic: bool = False, name: str = "tomcat") -> Workload:
    return Workload(kind="ReplicaSet", namespace="default", name=name, source="federation-v1",
                    replicas=replicas, rebalance=rebalance, preferences=prefs or {},
                    clusters=clusters, selector=selector, duplicated=duplicated,
                    dynamic_weights=dynamic, template={}, overrides={})


def up(*names: str, **kw) -> list[Candidate]:
    return [Candidate(name=n, healthy=True, **kw) for n in names]


def down(name: str) -> Candidate:
    return Candidate(name=name, healthy=False)


EQUAL = {"c1": P(), "c2": P()}


@pytest.mark.parametrize(
    ("workload", "candidates", "expected"),
    [
        pytest.param(wl(prefs=EQUAL), up("c1", "c2"), ("c1", "c2"), id="named"),
        pytest.param(wl(prefs=EQUAL), up("c1", "c2", "c3"), ("c1", "c2"),
                     id="unnamed-without-star-not-placed"),
        pytest.param(wl(prefs={"c1": P(), "*": P(weight=0)}), up("c3", "c1"), ("c1", "c3"),
                     id="star-places-the-rest-sorted"),
        pytest.param(wl(), up("c2", "c1") + [down("c3")], ("c1", "c2", "c3"),
                     id="no-preferences-everyone-healthy-or-not"),
        pytest.param(wl(clusters=("c2",)), up("c1", "c2"), ("c2",), id="name-list"),
        pytest.param(wl(clusters=()), up("c1", "c2"), (), id="empty-name-list"),
        pytest.param(wl(selector={"matchLabels": {"region": "eu"}}),
                     [Candidate(name="c1", healthy=True, labels={"region": "eu"}),
                      Candidate(name="c2", healthy=True, labels={"region": "us"})], ("c1",),
                     id="selector"),
        pytest.param(wl(clusters=("c1", "c2"), selector={"matchLabels": {"region": "eu"}}),
                     [Candidate(name="c1", healthy=True, labels={"region": "us"}),
                      Candidate(name="c2", healthy=True, labels={"region": "eu"})], ("c2",),
                     id="names-and-selector"),
    ],
)
def test_placed(workload, candidates, expected):
    assert s.placed(workload, candidates) == expected


@pytest.mark.parametrize(
    ("workload", "candidates", "current", "expected"),
    [
        # The seed scenario: 4 replicas, 1:1 -> 2 + 2; c2 dies -> c1 holds 4; back -> 2 + 2.
        pytest.param(wl(prefs=EQUAL), up("c1", "c2"), {}, {"c1": 2, "c2": 2}, id="seed"),
        pytest.param(wl(prefs=EQUAL), [*up("c1"), down("c2")], {"c1": 2, "c2": 2},
                     {"c1": 4, "c2": 0}, id="seed-failover"),
        pytest.param(wl(prefs=EQUAL), up("c1", "c2"), {"c1": 4, "c2": 0},
                     {"c1": 2, "c2": 2}, id="seed-failback-rebalance"),
        pytest.param(wl(prefs=EQUAL, rebalance=False), up("c1", "c2"), {"c1": 4, "c2": 0},
                     {"c1": 4, "c2": 0}, id="seed-failback-no-rebalance-keeps"),
        # Weights by largest remainder.
        pytest.param(wl(replicas=6, prefs={"c1": P(weight=1), "c2": P(weight=2)}),
                     up("c1", "c2"), {}, {"c1": 2, "c2": 4}, id="weights-1-2"),
        pytest.param(wl(replicas=7, prefs={"c1": P(weight=1), "c2": P(weight=1),
                                           "c3": P(weight=1)}),
                     up("c1", "c2", "c3"), {}, None, id="remainder-one-each-then-hash"),
        pytest.param(wl(replicas=10, prefs={"c1": P(weight=3), "c2": P(weight=1)}),
                     up("c1", "c2"), {}, {"c1": 8, "c2": 2}, id="remainder-largest-first"),
        # Mins first, then weights.
        pytest.param(wl(replicas=4, prefs={"c1": P(min_replicas=2), "c2": P()}),
                     up("c1", "c2"), {}, {"c1": 3, "c2": 1}, id="min-then-weights"),
        pytest.param(wl(replicas=3, prefs={"c1": P(weight=1, min_replicas=2),
                                           "c2": P(weight=2, min_replicas=2)}),
                     up("c1", "c2"), {}, {"c1": 1, "c2": 2}, id="mins-over-total-heavier-first"),
        # Max and capacity caps; the rest goes where there is room.
        pytest.param(wl(replicas=6, prefs={"c1": P(max_replicas=1), "c2": P()}),
                     up("c1", "c2"), {}, {"c1": 1, "c2": 5}, id="max-cap"),
        pytest.param(wl(replicas=6, prefs=EQUAL),
                     [Candidate(name="c1", healthy=True, capacity=2), *up("c2")], {},
                     {"c1": 2, "c2": 4}, id="capacity-cap"),
        pytest.param(wl(replicas=6, prefs={"c1": P(max_replicas=1), "c2": P(max_replicas=2)}),
                     up("c1", "c2"), {}, {"c1": 1, "c2": 2}, id="bounds-below-total"),
        pytest.param(wl(replicas=3, prefs={"c1": P(min_replicas=3)}),
                     [Candidate(name="c1", healthy=True, capacity=1)], {}, {"c1": 1},
                     id="min-cut-to-capacity"),
        # Weight 0: a standby, used only when the others have no room.
        pytest.param(wl(replicas=4, prefs={"c1": P(), "c2": P(weight=0)}), up("c1", "c2"), {},
                     {"c1": 4, "c2": 0}, id="weight-0-idle"),
        pytest.param(wl(replicas=4, prefs={"c1": P(), "c2": P(weight=0)}),
                     [*up("c2"), down("c1")], {}, {"c1": 0, "c2": 4}, id="weight-0-standby"),
        # Unhealthy everywhere: nothing anywhere.
        pytest.param(wl(prefs=EQUAL), [down("c1"), down("c2")], {"c1": 2, "c2": 2},
                     {"c1": 0, "c2": 0}, id="all-down"),
        # rebalance false: keep what is valid, move only the difference.
        pytest.param(wl(replicas=6, rebalance=False, prefs={"c1": P(), "c2": P(), "c3": P()}),
                     up("c1", "c2", "c3"), {"c1": 5, "c2": 1, "c3": 0},
                     {"c1": 5, "c2": 1, "c3": 0}, id="keep-valid"),
        pytest.param(wl(replicas=6, rebalance=False, prefs={"c1": P(), "c2": P(), "c3": P()}),
                     [*up("c1", "c2"), down("c3")], {"c1": 1, "c2": 1, "c3": 4},
                     {"c1": 3, "c2": 3, "c3": 0}, id="keep-moves-the-dead-ones-by-weight"),
        pytest.param(wl(replicas=4, rebalance=False, prefs={"c1": P(max_replicas=2), "c2": P()}),
                     up("c1", "c2"), {"c1": 4, "c2": 0}, {"c1": 2, "c2": 2},
                     id="keep-cut-to-max"),
        pytest.param(wl(replicas=2, rebalance=False, prefs=EQUAL), up("c1", "c2"),
                     {"c1": 3, "c2": 1}, {"c1": 1, "c2": 1}, id="keep-scale-down-the-excess"),
        pytest.param(wl(replicas=4, rebalance=False, prefs={"c1": P(), "c2": P(min_replicas=1)}),
                     up("c1", "c2"), {"c1": 4, "c2": 0}, {"c1": 3, "c2": 1},
                     id="keep-raises-to-min"),
        # Duplicated.
        pytest.param(wl(replicas=3, duplicated=True,
                        prefs={"c2": P(min_replicas=1, max_replicas=1), "*": P()}),
                     [*up("c1", "c2"), down("c3")], {}, {"c1": 3, "c2": 1, "c3": 0},
                     id="duplicated-pinned-and-dead"),
        pytest.param(wl(replicas=3, duplicated=True),
                     [Candidate(name="c1", healthy=True, capacity=2)], {}, {"c1": 2},
                     id="duplicated-capacity"),
        # Dynamic weights: available replicas.
        pytest.param(wl(replicas=4, dynamic=True), [*up("c1", available=3), *up("c2")], {},
                     {"c1": 4, "c2": 0}, id="dynamic-weights"),
        pytest.param(wl(replicas=4, dynamic=True), up("c1", "c2"), {}, {"c1": 2, "c2": 2},
                     id="dynamic-all-zero-equal"),
        pytest.param(wl(replicas=4, prefs=EQUAL), up("c1"), {}, {"c1": 4},
                     id="placed-cluster-missing-from-candidates"),
    ],
)
def test_schedule(workload, candidates, current, expected):
    got = s.schedule(workload=workload, candidates=candidates, current=current)
    if expected is None:  # 7 over 3: 2 each, one extra by the tie-break hash
        assert sorted(got.values()) == [2, 2, 3]
        extra = max(got, key=got.get)
        assert extra == min(got, key=lambda c: s.tie_hash(workload, c))
    else:
        assert got == expected


def test_tie_break_differs_by_workload_so_single_replicas_spread():
    prefs = {f"c{i}": P() for i in range(5)}
    chosen = {max(s.schedule(workload=wl(replicas=1, prefs=prefs, name=f"app{n}"),
                             candidates=up(*prefs), current={}).items(),
                  key=lambda kv: kv[1])[0] for n in range(40)}
    assert len(chosen) >= 3


@pytest.mark.parametrize(
    ("target", "current", "ready", "healthy", "expected"),
    [
        pytest.param({"c1": 2, "c2": 2}, {"c1": 4, "c2": 0}, {"c1": 4, "c2": 0}, {"c1", "c2"},
                     {"c1": 4, "c2": 2}, id="failback-up-first"),
        pytest.param({"c1": 2, "c2": 2}, {"c1": 4, "c2": 2}, {"c1": 4, "c2": 1}, {"c1", "c2"},
                     {"c1": 3, "c2": 2}, id="failback-down-by-what-is-ready"),
        pytest.param({"c1": 2, "c2": 2}, {"c1": 3, "c2": 2}, {"c1": 3, "c2": 2}, {"c1", "c2"},
                     {"c1": 2, "c2": 2}, id="failback-done"),
        pytest.param({"c1": 4, "c2": 0}, {"c1": 4, "c2": 2}, {"c1": 4, "c2": 2}, {"c1", "c2"},
                     {"c1": 4, "c2": 0}, id="stale-copy-to-zero"),
        pytest.param({"c1": 4, "c2": 0}, {"c1": 2, "c2": 2}, {"c1": 2, "c2": 2}, {"c1"},
                     {"c1": 4, "c2": 2}, id="failover-unreachable-left-alone"),
        pytest.param({"c1": 1}, {"c1": 3}, {"c1": 0}, {"c1"}, {"c1": 1},
                     id="scale-down-nothing-ready"),
        pytest.param({"c1": 2, "c2": 2}, {"c1": 4, "c2": 0}, {"c1": 2, "c2": 0}, {"c1", "c2"},
                     {"c1": 4, "c2": 2}, id="unready-replicas-wait-for-the-returning-cluster"),
        pytest.param({"c2": 3}, {"c1": 3, "c2": 0}, {"c1": 3, "c2": 3}, {"c1", "c2"},
                     {"c1": 0, "c2": 3}, id="unplaced-goes-to-zero-when-others-ready"),
    ],
)
def test_graceful(target, current, ready, healthy, expected):
    assert s.graceful(target=target, current=current, ready=ready, healthy=healthy) == expected


# -- properties -------------------------------------------------------------------------------

NAMES = ("c1", "c2", "c3", "c4")


@st.composite
def scenarios(draw):
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    prefs = {}
    for n in names:
        low = draw(st.integers(0, 5))
        high = draw(st.one_of(st.none(), st.integers(low, 12)))
        prefs[n] = P(weight=draw(st.integers(0, 4)), min_replicas=low, max_replicas=high)
    if draw(st.booleans()):
        prefs = {}
    workload = wl(replicas=draw(st.integers(0, 30)), rebalance=draw(st.booleans()), prefs=prefs,
                  duplicated=draw(st.booleans()) and draw(st.booleans()),
                  dynamic=draw(st.booleans()) and draw(st.booleans()),
                  name=draw(st.sampled_from(["a", "b", "tomcat"])))
    candidates = [Candidate(name=n, healthy=draw(st.booleans()),
                            capacity=draw(st.one_of(st.none(), st.integers(0, 10))),
                            available=draw(st.integers(0, 5))) for n in names]
    current = {n: draw(st.integers(0, 12)) for n in names if draw(st.booleans())}
    return workload, candidates, current


def bounds(workload, candidate):
    pref = s.preference(workload, candidate.name)
    high = pref.max_replicas
    if candidate.capacity is not None:
        high = candidate.capacity if high is None else min(high, candidate.capacity)
    return (pref.min_replicas if high is None else min(pref.min_replicas, high)), high


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_properties(scenario):
    workload, candidates, current = scenario
    plan = s.schedule(workload=workload, candidates=candidates, current=current)
    assert plan == s.schedule(workload=workload, candidates=list(reversed(candidates)),
                              current=dict(current))  # deterministic, order-free
    assert set(plan) == set(s.placed(workload, candidates))
    healthy = [c for c in candidates if c.healthy and c.name in plan]
    for c in candidates:
        if c.name in plan and not c.healthy:
            assert plan[c.name] == 0  # no replica on an unhealthy cluster
    for c in healthy:
        low, high = bounds(workload, c)
        assert high is None or plan[c.name] <= high
        assert plan[c.name] >= 0
    if workload.duplicated:
        return
    highs = [bounds(workload, c)[1] for c in healthy]
    room = sum(10**9 if high is None else high for high in highs)
    if healthy and sum(bounds(workload, c)[0] for c in healthy) <= workload.replicas <= room:
        assert sum(plan.values()) == workload.replicas  # exact when bounds allow
        for c in healthy:
            assert plan[c.name] >= bounds(workload, c)[0]  # mins respected when they fit
    elif healthy and workload.replicas > room:
        assert all(plan[c.name] == bounds(workload, c)[1] for c in healthy)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_no_rebalance_moves_no_more_than_needed(scenario):
    workload, candidates, current = scenario
    assume(not workload.duplicated)
    workload = wl(replicas=workload.replicas, rebalance=False, prefs=dict(workload.preferences),
                  name=workload.name)
    plan = s.schedule(workload=workload, candidates=candidates, current=current)
    healthy = [c for c in candidates if c.healthy and c.name in plan]
    kept = {}
    for c in healthy:  # what stays valid of the current placement
        low, high = bounds(workload, c)
        value = max(current.get(c.name, 0), low)
        kept[c.name] = value if high is None else min(value, high)
    removed = sum(max(0, kept[n] - plan[n]) for n in kept)
    added = sum(max(0, plan[n] - kept[n]) for n in kept)
    assert removed <= max(0, sum(kept.values()) - workload.replicas)
    assert added <= max(0, workload.replicas - sum(kept.values()))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_graceful_keeps_ready_replicas(data):
    names = data.draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    target = {n: data.draw(st.integers(0, 8)) for n in names if data.draw(st.booleans())}
    current = {n: data.draw(st.integers(0, 8)) for n in names}
    ready = {n: data.draw(st.integers(0, current[n])) for n in names}
    healthy = {n for n in names if data.draw(st.booleans())}
    step = s.graceful(target=target, current=current, ready=ready, healthy=healthy)
    before = sum(ready[n] for n in healthy)
    after = sum(min(ready[n], step[n]) for n in healthy)  # a scale-down may take ready ones
    assert after >= min(before, sum(target.values()))
    for n in step:
        lo, hi = sorted((current.get(n, 0), target.get(n, 0)))
        assert lo <= step[n] <= hi  # never beyond the target, never backwards
        if n not in healthy:
            assert step[n] == current.get(n, 0)  # an unreachable member is not written
    # With replicas ready at once, the target is reached in two steps (when unreachable
    # members are not what the target waits for, as schedule() never makes them).
    if any(target.get(n, 0) for n in step if n not in healthy):
        return
    for _ in range(2):
        current = step
        ready = {n: step[n] for n in step}
        step = s.graceful(target=target, current=current, ready=ready, healthy=healthy)
    assert all(step[n] == target.get(n, 0) for n in step if n in healthy)
