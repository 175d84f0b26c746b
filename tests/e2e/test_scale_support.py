"""The pure parts of the scale harness: when a change counts as in etcd, percentiles, addresses."""

from __future__ import annotations

import pytest

from tests.e2e.scale_observers import Change, reached, unique_address
from tests.e2e.scale_support import percentiles


def change(at: float, n: int, address: str, member: int = 0) -> Change:
    return Change(at=at, member=member, n=n, address=address)


@pytest.mark.parametrize(("changes", "seen", "expected"), [
    pytest.param([change(1, 0, "a")], {"a": 1.5}, [1.5], id="seen"),
    pytest.param([change(1, 0, "a")], {}, [None], id="never"),
    pytest.param([change(1, 0, "a"), change(2, 0, "b")], {"b": 2.5}, [2.5, 2.5], id="superseded-by-a-later-one"),
    pytest.param([change(1, 0, "a"), change(2, 0, "b")], {"a": 3.0, "b": 2.5}, [2.5, 2.5], id="the-earliest-wins"),
    pytest.param([change(1, 0, "a"), change(2, 1, "b")], {"b": 2.5}, [None, 2.5], id="another-service-does-not-count"),
    pytest.param([change(1, 0, "a"), change(2, 0, "b", member=1)], {"b": 2.5}, [None, 2.5],
                 id="the-same-service-of-another-member-does-not-count"),
    pytest.param([change(1, 0, "a"), change(2, 0, "b"), change(3, 0, "c")], {"a": 1.2, "c": 3.1}, [1.2, 3.1, 3.1],
                 id="an-earlier-one-seen-first"),
])
def test_reached(changes, seen, expected):
    assert reached(changes, seen, key=lambda c: c.address) == expected


def test_percentiles():
    assert percentiles([]) is None
    assert percentiles([0.001 * i for i in range(1, 101)], scale=1000, digits=1) == {
        "n": 100, "p50": 50.5, "p99": 100.0, "max": 100.0}


def test_unique_addresses_are_distinct_and_never_seeded():
    addresses = [unique_address(i) for i in range(200_000)]
    assert len(set(addresses)) == len(addresses)
    assert all(200 <= int(a.split(".")[1]) < 250 for a in addresses)  # seeded: 10.<member + 1>.
