"""The answer-order decisions as pure functions (order.py, topology.py): table-driven."""

from __future__ import annotations

from collections import Counter

import pytest

from fed_dns.server import order
from fed_dns.server import resolve as rs
from fed_dns.server.topology import (
    LOCAL_FIRST,
    ORDER,
    Clients,
    Topology,
    client_region,
    ecs_address,
)


def a(n: int, owner: str = "w.") -> tuple:
    return (owner, rs.T_A, 5, f"10.0.0.{n}")


def srv(n: int) -> tuple:
    return ("w.", rs.T_SRV, 5, (10, 50, 80, f"t{n}."))


def old_rotations(records: tuple) -> list[tuple]:
    """compile.rotations as it was before weights and regions: the plain orders must not move."""
    runs = order.runs(records, types=(rs.T_A, rs.T_AAAA))
    count = min(8, max((b - a_ for a_, b in runs), default=1))
    out = []
    for k in range(count):
        rec = list(records)
        for start, end in runs:
            run = records[start:end]
            shift = k % len(run)
            rec[start:end] = run[shift:] + run[:shift]
        out.append(tuple(rec))
    return out


CNAME = ("w.", rs.T_CNAME, 5, "x.")


@pytest.mark.parametrize("records", [
    (),
    (a(1),),
    (a(1), a(2), a(3)),
    tuple(a(i) for i in range(1, 13)),  # more than 8: still 8 orders
    (CNAME, a(1, "x."), a(2, "x."), a(3, "x.")),
    (a(1), a(2), a(3, "v."), a(4, "v."), a(5, "v.")),
])
def test_equal_weights_keep_the_plain_rotation(records):
    origins = ["c1", "c2", "c1", "c3", "c2", "c1", "c3", "c2", "c1", "c1", "c3", "c2", "c1"][:len(records)]
    assert order.orderings(records, origins=origins) == old_rotations(records)
    assert order.orderings(records, origins=origins, weight_of={"c1": 4, "c2": 4, "c3": 4}) == \
        old_rotations(records)


@pytest.mark.parametrize("weights, expect", [
    ([1, 1, 1], [0, 1, 2]),
    ([3, 1], [0, 0, 1, 0]),
    ([5, 1, 1], [0, 0, 1, 0, 2, 0, 0]),
    ([2, 0, 1], [0, 2, 0]),
    ([0, 0], []),
])
def test_smooth_wrr(weights, expect):
    assert order.smooth_wrr(weights) == expect


@pytest.mark.parametrize("weights, limit, expect", [
    ([3, 1], 32, [3, 1]),
    ([100, 100, 0], 32, [16, 16, 0]),
    ([1000, 1], 32, [32, 1]),
])
def test_scaled(weights, limit, expect):
    assert order.scaled(weights, limit=limit) == expect


@pytest.mark.parametrize("clusters, weight_of, expect, weighted", [
    (["c1", "c2", "c3"], {}, [0, 1, 2], False),
    (["c1", "c2"], {"c1": 2, "c2": 2}, [0, 1], False),
    (["c1", "c2"], {"c1": 0, "c2": 0}, [0, 1], False),  # all zero: nothing to prefer
    (["c1", "c2"], {"c1": 3}, [0, 0, 1, 0], True),
    (["c1", "c1", "c2"], {"c2": 2}, [2, 0, 2, 2, 1, 2], True),  # c1's two records take turns
    (["c1", "c2", "c3"], {"c3": 0}, [0, 1], True),  # weight 0 never leads
    (["", "c2"], {"c2": 3}, [1, 0, 1, 1], True),  # no cluster weighs 1
])
def test_leads(clusters, weight_of, expect, weighted):
    assert order.leads(clusters, weight_of=weight_of) == (expect, weighted)


RUN = (a(1), a(2), a(3), a(4))
ORIGINS = ("c1", "c2", "c1", "c3")  # c1: east, c2: west, c3: no region
REGION_OF = {"c1": "east", "c2": "west"}


@pytest.mark.parametrize("region, mode, firsts, kept", [
    (None, ORDER, {a(1), a(2), a(3), a(4)}, set(RUN)),
    ("east", ORDER, {a(1), a(3)}, set(RUN)),
    ("west", ORDER, {a(2)}, set(RUN)),
    ("north", ORDER, {a(1), a(2), a(3), a(4)}, set(RUN)),  # no backend there: plain
    ("east", LOCAL_FIRST, {a(1), a(3)}, {a(1), a(3)}),
    ("west", LOCAL_FIRST, {a(2)}, {a(2)}),
    ("north", LOCAL_FIRST, {a(1), a(2), a(3), a(4)}, set(RUN)),  # falls back to all
])
def test_region_orders(region, mode, firsts, kept):
    orders = order.orderings(RUN, origins=ORIGINS, region_of=REGION_OF, region=region, mode=mode)
    assert {o[0] for o in orders} == firsts
    for o in orders:
        assert set(o) == kept and len(o) == len(kept)
        if region is not None and mode == ORDER:  # the region's records before the others
            local = [REGION_OF.get(ORIGINS[RUN.index(r)]) == region for r in o]
            assert local == sorted(local, reverse=True)


def test_region_part_rotates_with_weights():
    origins = ("c1", "c4", "c2", "c1")
    orders = order.orderings(RUN, origins=origins, weight_of={"c1": 3, "c4": 1},
                             region_of={"c1": "east", "c4": "east", "c2": "west"}, region="east")
    firsts = Counter(origins[RUN.index(o[0])] for o in orders)
    assert set(firsts) == {"c1", "c4"} and firsts["c1"] == 3 * firsts["c4"]
    assert {o[0] for o in orders} == {a(1), a(4), a(2)}  # c1's records take turns
    assert all(o[3] == a(3) for o in orders)  # the west record last


def test_srv_is_ordered_by_region_never_cut():
    records = (srv(1), srv(2), srv(3))
    origins = ("c2", "c1", "c2")
    for mode in (ORDER, LOCAL_FIRST):
        orders = order.orderings(records, origins=origins, region_of=REGION_OF, region="east",
                                 mode=mode)
        assert orders == [(srv(2), srv(1), srv(3))]
    assert order.orderings(records, origins=origins) == [records]  # no region: as resolved


def test_weighted_first_cluster_follows_the_weights():
    origins = ("c1", "c2", "c3", "c1")
    orders = order.orderings(RUN, origins=origins, weight_of={"c1": 6, "c2": 2, "c3": 0})
    firsts = Counter(origins[RUN.index(o[0])] for o in orders)
    assert firsts == {"c1": 6, "c2": 2}
    assert all(set(o) == set(RUN) for o in orders)


TOPO = Topology(mode=ORDER, subnets=(("10.1.0.0/16", "west"), ("10.0.0.0/8", "east"),
                                     ("fd00::/8", "west"), ("127.0.0.2/32", "east")),
                clusters=(("c1", "east"),), weights=(("c1", 1), ("c2", 3)))


@pytest.mark.parametrize("address, region", [
    ("10.1.2.3", "west"),  # the more specific subnet first
    ("10.2.0.1", "east"),
    (bytes([10, 9, 0, 1]), "east"),  # packed, as the batched loop reads it
    ("::ffff:10.2.0.1", "east"),  # v4-mapped (a dual-stack socket)
    ("fd00::1", "west"),
    (bytes.fromhex("fd000000000000000000000000000001"), "west"),
    ("192.0.2.1", None),
    ("not an address", None),
    (b"", None),
])
def test_client_region(address, region):
    number = client_region(TOPO, address)
    assert (TOPO.regions[number - 1] if number else None) == region


def test_topology_properties():
    assert TOPO.regions == ("east", "west") and TOPO.active
    assert TOPO.weight_of == {"c2": 3} and TOPO.region_of == {"c1": "east"}
    assert not Topology(mode=ORDER).active and not Topology(subnets=TOPO.subnets).active
    with pytest.raises(ValueError):
        Topology(mode="nearest")


@pytest.mark.parametrize("family, prefix, address, expect", [
    (1, 24, bytes([10, 1, 2]), bytes([10, 1, 2, 0])),
    (1, 0, b"", bytes(4)),
    (2, 16, bytes([0xfd, 0]), bytes([0xfd]) + bytes(15)),
    (1, 24, bytes([10, 1]), None),  # wrong length
    (1, 33, bytes(5), None),
    (3, 8, b"\x01", None),
])
def test_ecs_address(family, prefix, address, expect):
    assert ecs_address(family=family, prefix=prefix, address=address) == expect


def test_clients_cache_is_bounded(monkeypatch):
    monkeypatch.setattr("fed_dns.server.topology.MAX_CLIENTS", 3)
    clients = Clients(TOPO)
    for i in range(10):
        assert clients.region(bytes([10, 1, 0, i])) == 2
    assert len(clients.known) <= 3
