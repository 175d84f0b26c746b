"""Answer orders: pure functions from an answer's records to the orders it is sent in.

Never changes the answer set except for `local-first`, which keeps only the client region's
records of a run while it has any. A *run* is consecutive records with one owner and type:
A/AAAA runs rotate (weighted by cluster when weights differ) and follow the client's region;
SRV runs only put the region's records first (clients pick SRV targets by priority/weight).

- Plain: orders 0..min(n, MAX_ROTATIONS)-1 rotate each run by k (today's rotation).
- Weighted (cluster weights not all equal): the record leading order k is picked by smooth
  weighted round-robin over the run's clusters (in proportion to weight; weight 0 never
  leads), the chosen cluster's records taking turns; the rest of the run follows in rotation.
- Region (mode `order`): the region's records first, then the others, each part rotated
  (weighted) on its own. Mode `local-first`: only the region's part when it is not empty.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from fed_dns.server import resolve as rs
from fed_dns.server.topology import LOCAL_FIRST, ORDER

MAX_ROTATIONS = 8  # plain rotation: orders per answer
MAX_WEIGHTED = 32  # weighted: orders per answer (weights are scaled down to fit)
_ROTATE = (rs.T_A, rs.T_AAAA)
_PLACE = (rs.T_A, rs.T_AAAA, rs.T_SRV)


def smooth_wrr(weights: Sequence[int]) -> list[int]:
    """One period (sum of weights) of smooth weighted round-robin: the index picked at each
    step. Weight 0 is never picked; ties go to the lower index."""
    total = sum(weights)
    current = [0] * len(weights)
    out = []
    for _ in range(total):
        for i, w in enumerate(weights):
            current[i] += w
        best = max(range(len(weights)), key=current.__getitem__)
        current[best] -= total
        out.append(best)
    return out


def scaled(weights: Sequence[int], *, limit: int = MAX_WEIGHTED) -> list[int]:
    """Weights whose sum fits `limit`, in about the same proportions (non-zero stay >= 1)."""
    total = sum(weights)
    if total <= limit:
        return list(weights)
    return [max(1, round(w * limit / total)) if w else 0 for w in weights]


def leads(clusters: Sequence[str], *, weight_of: Mapping[str, int]) -> tuple[list[int], bool]:
    """Which position of a run leads each order, and whether that is weighted.

    Plain rotation (`range(n)`, False) when every record's cluster has the same weight (or
    all are 0); else a smooth-WRR period over the clusters. A record without a cluster
    weighs 1.
    """
    weights = [weight_of.get(c, 1) for c in clusters]
    if len(set(weights)) <= 1:
        return list(range(len(clusters))), False
    members: dict[str, list[int]] = {}
    for i, c in enumerate(clusters):
        members.setdefault(c, []).append(i)
    names = list(members)
    period = smooth_wrr(scaled([weight_of.get(c, 1) for c in names]))
    # repeat the period until each cluster's records have all led equally often (if it fits)
    picks = [period.count(g) for g in range(len(names))]
    repeat = math.lcm(*(len(members[c]) // math.gcd(p, len(members[c]))
                        for c, p in zip(names, picks) if p))
    if repeat * len(period) > MAX_WEIGHTED:
        repeat = max(1, MAX_WEIGHTED // len(period))
    turns = [0] * len(names)
    out = []
    for pick in period * repeat:
        group = members[names[pick]]
        out.append(group[turns[pick] % len(group)])
        turns[pick] += 1
    return out, True


def runs(records: Sequence[rs.RR], *, types: tuple[int, ...]) -> list[tuple[int, int]]:
    """(start, end) of each run of two or more same-owner records of one of `types`."""
    out = []
    i = 0
    while i < len(records):
        j = i + 1
        if records[i][1] in types:
            while j < len(records) and records[j][:2] == records[i][:2]:
                j += 1
            if j - i > 1:
                out.append((i, j))
        i = j
    return out


def parts(*, members: list[int], rtype: int, origins: Sequence[str], region_of: Mapping[str, str],
          region: str | None, mode: str) -> list[list[int]]:
    """A run's members split in the parts it is sent as, in order (see the module doc)."""
    if region is None:
        return [members]
    local = [i for i in members if region_of.get(origins[i]) == region]
    if not local:
        return [members]
    rest = [i for i in members if region_of.get(origins[i]) != region]
    if mode == LOCAL_FIRST and rtype != rs.T_SRV:
        return [local]
    return [local, rest] if rest else [local]


def orderings(records: tuple, *, origins: Sequence[str] = (), weight_of: Mapping[str, int] = {},
              region_of: Mapping[str, str] = {}, region: str | None = None,
              mode: str = ORDER) -> list[tuple]:
    """The orders to send `records` in, cycled per query. `origins[i]` is record i's cluster
    ("" when unknown); `region` None is the client in no region (plain or weighted)."""
    origins = tuple(origins) or ("",) * len(records)
    plans = []  # (start, end, [(part, leads, weighted)])
    for a, b in runs(records, types=_PLACE if region is not None else _ROTATE):
        rtype = records[a][1]
        rotate = rtype in _ROTATE
        plan = []
        for part in parts(members=list(range(a, b)), rtype=rtype, origins=origins,
                          region_of=region_of, region=region, mode=mode):
            seq, weighted = leads([origins[i] for i in part], weight_of=weight_of) \
                if rotate else ([0], False)
            plan.append((part, seq, weighted))
        plans.append((a, b, plan))
    count = max((len(seq) if weighted else min(len(seq), MAX_ROTATIONS)
                 for _, _, plan in plans for _, seq, weighted in plan), default=1)
    out = []
    for k in range(min(count, MAX_WEIGHTED)):
        rec = list(records)
        for a, b, plan in reversed(plans):
            span = []
            for part, seq, _ in plan:
                lead = seq[k % len(seq)]
                span.extend(records[i] for i in part[lead:] + part[:lead])
            rec[a:b] = span
        out.append(tuple(rec))
    return out
