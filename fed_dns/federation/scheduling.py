"""The replica scheduler: how many replicas of a workload each member runs. Pure.

federation.md, "Scheduling", in the manner of kubefed's planner (mins first, then weights;
ties by a hash of workload and cluster):

- Only placed clusters (`placed`) get replicas; unhealthy ones get 0.
- A cluster's bounds: `min_replicas`, and the least of `max_replicas` and its `capacity`
  (replicas it was seen able to hold, None: unlimited); a min above that bound is cut to it.
- Mins first (if they add up to more than the total, clusters by weight, then hash, take
  theirs first), then the rest by weight with largest remainder, in rounds: a cluster that
  reaches its bound drops out and the next round divides what is left among the others.
  Weight-0 clusters take replicas only when no weighted cluster has room (so a standby takes
  the load of a dead member rather than the total falling short).
- The sum is exactly `replicas` whenever the healthy clusters' bounds allow it; else every
  healthy cluster is at its bound.
- `rebalance` false: `current` (the placement in effect, i.e. the last plan — not a returned
  member's stale spec) is kept where still valid (healthy, within bounds); only the
  difference to the total moves, taken from (or given to) the clusters furthest above (below)
  the weighted spread. `rebalance` true: the weighted spread itself.
- Duplicated: every healthy placed cluster gets `replicas`, within its bounds.
- Dynamic weights: a cluster's weight is its `available` replicas (all 0: equal weights).

`graceful` is the step from the current specs towards a plan that never lowers the total of
ready replicas below min(ready now, the plan's total).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from fed_dns.federation.workloads import ClusterPreference, Workload, selector_matches

_DEFAULT = ClusterPreference()


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    name: str
    healthy: bool
    labels: Mapping[str, str] = field(default_factory=dict)
    capacity: int | None = None  # replicas it can hold (None: unlimited)
    available: int = 0  # ready replicas now (dynamic weights)


def preference(workload: Workload, cluster: str) -> ClusterPreference | None:
    """The cluster's preference: its own, else "*", else (no preferences at all) weight 1;
    None when preferences name other clusters only (the cluster is not placed)."""
    prefs = workload.preferences
    if not prefs:
        return _DEFAULT
    return prefs.get(cluster) or prefs.get("*")


def placed(workload: Workload, candidates: Sequence[Candidate]) -> tuple[str, ...]:
    """The clusters the workload is placed on (healthy or not), sorted: in the name list
    (when there is one), matching the selector (when there is one), with a preference."""
    names = set(workload.clusters) if workload.clusters is not None else None
    return tuple(sorted(
        c.name for c in candidates
        if (names is None or c.name in names)
        and (workload.selector is None or selector_matches(workload.selector, c.labels))
        and preference(workload, c.name) is not None))


def tie_hash(workload: Workload, cluster: str) -> int:
    """A stable tie-break (every fed-dns replica computes the same)."""
    digest = hashlib.sha256(f"{workload.namespace}/{workload.name}\0{cluster}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(slots=True)
class _Slot:
    name: str
    weight: int
    low: int
    high: int | None  # None: unbounded
    order: int  # the tie-break hash

    def room(self, value: int) -> int | None:
        return None if self.high is None else self.high - value


def _slots(workload: Workload, healthy: Sequence[Candidate]) -> list[_Slot]:
    out = []
    dynamic = workload.dynamic_weights and any(c.available > 0 for c in healthy)
    for c in healthy:
        pref = preference(workload, c.name) or _DEFAULT
        high = pref.max_replicas
        if c.capacity is not None:
            high = c.capacity if high is None else min(high, c.capacity)
        low = pref.min_replicas if high is None else min(pref.min_replicas, high)
        weight = max(0, c.available) if dynamic else (1 if workload.dynamic_weights
                                                      else pref.weight)
        out.append(_Slot(name=c.name, weight=weight, low=low, high=high,
                         order=tie_hash(workload, c.name)))
    return out


def _fill(slots: list[_Slot], plan: dict[str, int], remaining: int) -> int:
    """Give `remaining` replicas by weight (largest remainder, rounds); return what is left."""
    while remaining > 0:
        open_ = [s for s in slots if s.room(plan[s.name]) != 0]
        weighted = [s for s in open_ if s.weight > 0]
        if not weighted:  # only weight-0 clusters have room: they share equally
            weighted = open_
            weights = {s.name: 1 for s in weighted}
        else:
            weights = {s.name: s.weight for s in weighted}
        if not weighted:
            return remaining
        total_weight = sum(weights.values())
        shares = {s.name: remaining * weights[s.name] // total_weight for s in weighted}
        left = remaining - sum(shares.values())
        by_remainder = sorted(weighted, key=lambda s: (-(remaining * weights[s.name]
                                                         % total_weight), s.order))
        for s in by_remainder[:left]:
            shares[s.name] += 1
        given = 0
        for s in weighted:
            room = s.room(plan[s.name])
            take = shares[s.name] if room is None else min(shares[s.name], room)
            plan[s.name] += take
            given += take
        remaining -= given
        if given == 0:  # cannot happen (some open slot always takes one), but never spin
            return remaining
    return remaining


def _spread(workload: Workload, slots: list[_Slot]) -> dict[str, int]:
    """Mins first, then by weight (rebalance true)."""
    plan = {s.name: 0 for s in slots}
    remaining = workload.replicas
    for s in sorted(slots, key=lambda s: (-s.weight, s.order)):
        take = min(s.low, remaining)
        plan[s.name] = take
        remaining -= take
    _fill(slots, plan, remaining)
    return plan


def _keep(workload: Workload, slots: list[_Slot], current: Mapping[str, int]) -> dict[str, int]:
    """rebalance false: the current placement, clamped to the bounds, then the difference to
    the total taken from (given to) the clusters furthest above (below) the spread."""
    spread = _spread(workload, slots)
    plan = {}
    for s in slots:
        value = max(0, current.get(s.name, 0), s.low)
        plan[s.name] = value if s.high is None else min(value, s.high)
    diff = sum(plan.values()) - workload.replicas
    if diff > 0:  # too many: remove from those most above the spread
        for s in sorted(slots, key=lambda s: (spread[s.name] - plan[s.name], s.order)):
            cut = min(diff, max(0, plan[s.name] - spread[s.name]))
            plan[s.name] -= cut
            diff -= cut
    elif diff < 0:  # too few: add to those most below the spread, then anywhere with room
        missing = -diff
        for s in sorted(slots, key=lambda s: (plan[s.name] - spread[s.name], s.order)):
            add = min(missing, max(0, spread[s.name] - plan[s.name]))
            plan[s.name] += add
            missing -= add
        _fill(slots, plan, missing)
    return plan


def schedule(*, workload: Workload, candidates: Sequence[Candidate],
             current: Mapping[str, int]) -> dict[str, int]:
    """Replicas per placed cluster (0 for the unhealthy)."""
    names = placed(workload, candidates)
    wanted = set(names)
    healthy = [c for c in sorted(candidates, key=lambda c: c.name)
               if c.name in wanted and c.healthy]
    plan = dict.fromkeys(names, 0)
    slots = _slots(workload, healthy)
    if workload.duplicated:
        for s in slots:
            value = max(workload.replicas, s.low)
            plan[s.name] = value if s.high is None else min(value, s.high)
    elif workload.rebalance:
        plan.update(_spread(workload, slots))
    else:
        plan.update(_keep(workload, slots, current))
    return plan


def graceful(*, target: Mapping[str, int], current: Mapping[str, int],
             ready: Mapping[str, int], healthy: Collection[str]) -> dict[str, int]:
    """The specs to write now on the way from `current` to `target`.

    Healthy clusters going up get their target at once; an unhealthy cluster keeps its
    current spec (it cannot be written). Healthy clusters going down shrink only as the
    others' replicas become ready: together they keep the target's total minus the ready
    replicas of the clusters going up or steady, giving up their not-ready replicas first,
    then ready ones, largest excess first. A survivor's replicas still starting are not cut
    while the returning cluster's are not ready either (they are about to carry the load).
    A cluster missing from `target` has target 0.
    """
    names = sorted(set(target) | set(current))
    step = {n: current.get(n, 0) for n in names}
    live = [n for n in names if n in healthy]
    up = [n for n in live if target.get(n, 0) > step[n]]
    for n in up:
        step[n] = target.get(n, 0)
    down = sorted((n for n in live if target.get(n, 0) < step[n]),
                  key=lambda n: (-(step[n] - target.get(n, 0)), n))
    steady = [n for n in live if n not in up and n not in down]
    # The clusters going down keep, together, what the total still needs beyond the ready
    # replicas of the others (going up or steady): they shrink only as the others' replicas
    # become ready; with everything else ready they go straight to the target.
    need = (sum(target.get(n, 0) for n in names)
            - sum(min(ready.get(n, 0), step[n]) for n in (*up, *steady)))
    excess = sum(step[n] for n in down) - max(need, sum(target.get(n, 0) for n in down))
    for n in down:  # what may go, their replicas that are not ready first
        unready = step[n] - max(target.get(n, 0), min(ready.get(n, 0), step[n]))
        cut = min(max(0, excess), max(0, unready))
        step[n] -= cut
        excess -= cut
    # Ready replicas go only while the healthy clusters keep at least min(their ready now,
    # the target's total) ready.
    floor = min(sum(min(ready.get(n, 0), current.get(n, 0)) for n in live),
                sum(target.get(n, 0) for n in names))
    slack = sum(min(ready.get(n, 0), step[n]) for n in live) - floor
    for n in down:
        cut = min(max(0, excess), max(0, slack), step[n] - target.get(n, 0))
        step[n] -= cut
        excess -= cut
        slack -= cut
    return step
