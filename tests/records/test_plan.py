"""plan.calculate / plan.diff: the owner-safe write set from etcd's contents to the desired zone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fed_dns.model import Changes, DesiredZone, Health, Record, ZoneSettings
from fed_dns.records.codec import decode, encode
from fed_dns.records.plan import Conflict, calculate, diff
from fed_dns.records.render import render
from tests.records.builders import BASE, MYSQL, OWNER, SETTINGS, backend, service, view

K1 = f"{BASE}/ns/mysql/c1/aaaa"
K2 = f"{BASE}/ns/mysql/c2/bbbb"
FALLBACK = f"{BASE}/ns/mysql/c2"
ALIAS = f"{BASE}/ns/alias/x"
OTHER_ZONE = "/skydns/org/example/ns/mysql/c1/aaaa"


def rec(host: str, cluster: str = "c1", owner: str = OWNER) -> Record:
    return Record(host=host, ttl=5, owner=owner, cluster=cluster)


def raw(host: str, cluster: str = "c1", owner: str = OWNER) -> bytes:
    return encode(rec(host, cluster, owner))


def desired(records: dict[str, Record], keep: frozenset[str] = frozenset()) -> DesiredZone:
    return DesiredZone(settings=SETTINGS, records=records, keep_clusters=keep)


@pytest.mark.parametrize(
    ("current", "want", "keep", "puts", "deletes", "conflicts"),
    [
        ({}, {K1: rec("10.0.0.1")}, set(), {K1: raw("10.0.0.1")}, (), ()),
        ({K1: raw("10.0.0.1")}, {K1: rec("10.0.0.1")}, set(), {}, (), ()),
        ({K1: raw("10.0.0.1")}, {K1: rec("10.0.0.2")}, set(), {K1: raw("10.0.0.2")}, (), ()),
        ({K1: b'{"ttl":5,"host":"10.0.0.1","owner":"fed-dns/fed.example.com.","cluster":"c1"}'},
         {K1: rec("10.0.0.1")}, set(), {K1: raw("10.0.0.1")}, (), ()),
        ({K1: raw("10.0.0.1"), K2: raw("10.0.0.2", "c2")}, {K1: rec("10.0.0.1")}, set(), {}, (K2,), ()),
        ({K2: raw("10.0.0.2", "c2")}, {}, {"c2"}, {}, (), ()),
        ({K2: raw("10.0.0.2", "c2"), FALLBACK: raw("mysql.ns.fed.example.com", "c2")}, {}, {"c1"},
         {}, (K2, FALLBACK), ()),
        ({ALIAS: b'{"host":"mysql.ns.fed.example.com","ttl":5}'}, {}, set(), {}, (), ()),
        ({K1: raw("10.0.0.1", owner="fed-dns/other.")}, {}, set(), {}, (), ()),
        ({K1: b"not json"}, {}, set(), {}, (), ()),
        ({OTHER_ZONE: raw("10.0.0.1")}, {}, set(), {}, (), ()),
        ({K1: raw("10.9.9.9", owner="external-dns")}, {K1: rec("10.0.0.1")}, set(), {}, (),
         (Conflict(key=K1, reason="owned by 'external-dns'"),)),
        ({K1: b'{"host":"10.9.9.9"}'}, {K1: rec("10.0.0.1")}, set(), {}, (),
         (Conflict(key=K1, reason="no owner"),)),
        ({K1: b'{"port":"x"}'}, {K1: rec("10.0.0.1")}, set(), {}, (),
         (Conflict(key=K1, reason="value does not decode: field 'port': expected an integer, got a string"),)),
    ],
    ids=["create", "unchanged-is-no-op", "update-owned", "rewrite-unsorted-owned-bytes",
         "delete-stale-owned", "keep-unknown-cluster", "delete-leaves-and-fallback-of-others",
         "foreign-alias-untouched", "other-federation-untouched", "undecodable-untouched",
         "other-zone-untouched", "foreign-owner-conflict", "ownerless-conflict",
         "undecodable-conflict"],
)
def test_calculate(current, want, keep, puts, deletes, conflicts):
    plan = diff(current=current, desired=desired(want, frozenset(keep)))
    assert plan.changes == Changes(puts=puts, deletes=deletes)
    assert plan.conflicts == conflicts
    assert calculate(current=current, desired=desired(want, frozenset(keep))) == plan.changes
    assert bool(plan.changes) == bool(puts or deletes)


def test_deletes_deepest_first_and_puts_sorted():
    current = {FALLBACK: raw("mysql.ns.fed.example.com", "c2"), K2: raw("1.1.1.1", "c2"),
               f"{BASE}/ns/mysql/_tcp/_x/c2/bbbb": raw("1.1.1.1", "c2"), f"{BASE}/a/b/c1/x": raw("1.1.1.2")}
    changes = calculate(current=current, desired=desired({K2: rec("2.2.2.2", "c2"), K1: rec("1.1.1.1")}))
    assert changes.deletes == (f"{BASE}/ns/mysql/_tcp/_x/c2/bbbb", f"{BASE}/a/b/c1/x", FALLBACK)
    assert list(changes.puts) == [K1, K2]


def test_desired_keys_outside_the_zone_are_refused():
    with pytest.raises(ValueError, match="outside the zone"):
        calculate(current={}, desired=desired({OTHER_ZONE: rec("10.0.0.1")}))


def test_default_owner_id_is_derived_from_the_zone():
    settings = ZoneSettings(zone="Fed.Example.com", owner_id="")
    current = {K1: raw("10.0.0.1"), K2: raw("10.0.0.2", owner="")}
    changes = calculate(current=current, desired=DesiredZone(settings=settings))
    assert changes.deletes == (K1,)  # an empty owner never matches, whatever the settings say


def test_render_then_plan_is_a_fixed_point():
    views = {"c1": view("c1", service(MYSQL, backend("10.1.0.7"))),
             "c2": view("c2", service(MYSQL, backend("10.2.0.9")))}
    first = render(views=views, health={"c1": Health.READY, "c2": Health.READY}, settings=SETTINGS).zone
    etcd = {ALIAS: b'{"host":"mysql.ns.fed.example.com","ttl":5}', K1: raw("10.0.0.1")}
    apply(etcd, calculate(current=etcd, desired=first))
    assert calculate(current=etcd, desired=first) == Changes()
    failed = render(views=views, health={"c1": Health.READY, "c2": Health.UNREACHABLE}, settings=SETTINGS).zone
    changes = calculate(current=etcd, desired=failed)
    assert list(changes.puts) == [FALLBACK] and len(changes.deletes) == 1
    apply(etcd, changes)
    assert {k for k in etcd if k != ALIAS} == set(failed.records)
    assert ALIAS in etcd


def owned(value: bytes) -> bool:
    try:
        return decode(value).owner == OWNER
    except ValueError:
        return False


def apply(etcd: dict[str, bytes], changes: Changes) -> None:
    etcd.update(changes.puts)
    for key in changes.deletes:
        del etcd[key]


KEYS = st.sampled_from([K1, K2, FALLBACK, ALIAS, OTHER_ZONE, f"{BASE}/ns/x/c3/y"])
VALUES = st.one_of(
    st.builds(raw, st.sampled_from(["1.1.1.1", "2.2.2.2"]), st.sampled_from(["c1", "c2", "c3"]),
              st.sampled_from([OWNER, "other", ""])),
    st.binary(max_size=8),
)


@given(current=st.dictionaries(KEYS, VALUES), want=st.dictionaries(
    KEYS.filter(lambda k: k != OTHER_ZONE), st.builds(rec, st.sampled_from(["1.1.1.1", "3.3.3.3"]),
                                                      st.sampled_from(["c1", "c2"]))),
       keep=st.frozensets(st.sampled_from(["c1", "c2", "c3"])))
def test_only_owned_keys_are_ever_touched(current, want, keep):
    plan = diff(current=current, desired=desired(want, keep))
    touched = set(plan.changes.puts) | set(plan.changes.deletes)
    for key in touched & set(current):
        assert owned(current[key]) and key.startswith(BASE + "/")
    assert not [k for k in plan.changes.deletes if decode(current[k]).cluster in keep]
    conflicted = {c.key for c in plan.conflicts}
    assert not conflicted & touched
    etcd = dict(current)
    apply(etcd, plan.changes)
    for key, record in want.items():
        assert etcd[key] == encode(record) or key in conflicted
    assert calculate(current=etcd, desired=desired(want, keep)) == Changes()


@pytest.mark.parametrize(("value", "keep", "deleted"), [
    pytest.param(encode(rec("10.0.0.1", cluster="gone")), set(), True, id="ours-of-a-cluster-not-kept"),
    pytest.param(encode(rec("10.0.0.1", cluster="c1")), {"c1"}, False, id="ours-of-a-kept-cluster"),
    pytest.param(encode(rec("10.0.0.1", cluster="gone", owner="someone-else")), set(), False, id="not-ours"),
])
def test_keys_holding_one_value_are_decided_alike_and_read_once(monkeypatch, value, keep, deleted):
    """A leaf and its SRV key hold the same value: both go or both stay, and the value is
    read once (a restart's first pass reads every held key of the zone)."""
    from fed_dns.records import plan

    reads = []
    real = plan.stale
    monkeypatch.setattr(plan, "stale", lambda got, **kw: reads.append(got) or real(got, **kw))
    held = [(f"{BASE}/ns/mysql/x/a", value), (f"{BASE}/ns/mysql/_tcp/_http/x/a", bytes(value)),
            (f"{BASE}/ns/mysql/x/b", encode(rec("10.0.0.2", cluster="gone")))]
    got = plan.plan_keys(desired={}, current={}, held=held, owner=OWNER, keep_clusters=keep)
    expected = {key for key, _ in held[:2]} if deleted else set()
    assert set(got.changes.deletes) - {held[2][0]} == expected
    assert (held[2][0] in got.changes.deletes) is ("gone" not in keep)
    assert len(reads) == 2  # two distinct values, three keys
