"""The zone table: built from raw etcd keys, bad values dropped, incremental rebuilds that
answer exactly as a full build does."""

from __future__ import annotations

import json
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from fed_dns.server import resolve as rs
from fed_dns.server import table as table_mod
from fed_dns.server.respond import respond
from tests.server.conftest import ZONE, entries

TYPES = (rs.T_A, rs.T_AAAA, rs.T_SRV, rs.T_TXT, rs.T_CNAME, rs.T_MX, rs.T_NS, rs.T_SOA)


def test_foreign_and_undecodable_values_are_dropped_and_counted():
    raw = entries({"c1.svc.ns": {"host": "10.0.0.1"}})
    raw["/skydns/com/example/fed/ns/bad/x"] = b"{not json"
    raw["/skydns/com/example/fed/ns/bad/y"] = b'{"port": "80"}'
    raw["/skydns/org/example/other"] = b'{"host":"10.9.9.9"}'
    raw["/elsewhere/com/example/fed/x"] = b'{"host":"10.9.9.9"}'
    table = table_mod.build(zone=ZONE, entries=raw)
    assert table.dropped == 2 and table.foreign == 2 and len(table) == 1
    assert table.answer(name=f"bad.ns.{ZONE}", qtype=rs.T_A).rcode == rs.NXDOMAIN
    assert [r[3] for r in table.answer(name=f"ns.{ZONE}", qtype=rs.T_A).answer] == ["10.0.0.1"]


def test_prefix_with_several_components():
    raw = {"/a/b/com/example/fed/ns/svc/c1": b'{"host":"10.0.0.1"}'}
    table = table_mod.build(zone=ZONE, entries=raw, prefix="/a/b")
    assert table.answer(name=f"svc.ns.{ZONE}", qtype=rs.T_A).answer[0][3] == "10.0.0.1"


def test_a_name_with_children_reads_only_the_children():
    """CoreDNS reads `<key>/` first and the key itself only when nothing is below."""
    table = table_mod.build(zone=ZONE, entries=entries({
        "svc.ns": {"host": "10.0.0.9"}, "c1.svc.ns": {"host": "10.0.0.1"}}))
    assert [r[3] for r in table.answer(name=f"svc.ns.{ZONE}", qtype=rs.T_A).answer] == ["10.0.0.1"]


def test_group_limits_the_set():
    table = table_mod.build(zone=ZONE, entries=entries({
        "a.svc.ns": {"host": "10.0.0.1", "group": "g1"},
        "b.svc.ns": {"host": "10.0.0.2", "group": "g1"},
        "x.c.svc.ns": {"host": "10.0.0.3", "group": "g2"},
        "y.c.svc.ns": {"host": "10.0.0.4"}}))
    got = [r[3] for r in table.answer(name=f"svc.ns.{ZONE}", qtype=rs.T_A).answer]
    assert got == ["10.0.0.1", "10.0.0.2", "10.0.0.4"]


# -- incremental rebuilds -----------------------------------------------------------------

LEAVES = [f"{leaf}.{svc}.ns" for svc in ("a", "b", "alias") for leaf in ("c1", "c2", "x.c3")]
VALUES = st.one_of(
    st.builds(lambda i: {"host": f"10.0.0.{i}", "port": 80}, st.integers(1, 4)),
    st.builds(lambda i: {"host": f"fd00::{i}"}, st.integers(1, 3)),
    st.sampled_from([{"host": f"a.ns.{ZONE}"}, {"host": f"b.ns.{ZONE}", "port": -1},
                     {"text": "hi"}, {"host": "10.0.0.7", "mail": True}, "not json"]),
)
CHANGES = st.lists(st.tuples(st.sampled_from(LEAVES), st.one_of(st.none(), VALUES)),
                   min_size=1, max_size=6)


def _raw(value) -> bytes:
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


def _all_answers(table) -> list:
    names = [f"{n}.{ZONE}" for n in ("ns", "a.ns", "b.ns", "alias.ns", *LEAVES, "nope.ns")] + [ZONE]
    out = []
    for name in names:
        for qtype in TYPES:
            ans = table.answer(name=name, qtype=qtype)
            out.append((name, qtype, ans.rcode, ans.answer, ans.additional))
            wire = table.entry(table_mod.wire_name(name), qtype)
            out.append(None if wire is None else (wire.answer.answer, wire.answer.rcode))
    return out


@settings(max_examples=150, deadline=None)
@given(start=CHANGES, steps=st.lists(CHANGES, min_size=1, max_size=4))
def test_incremental_builds_answer_as_full_builds(start, steps):
    current: dict[str, bytes] = {}

    def apply(changes):
        for rel, value in changes:
            key = next(iter(entries({rel: {}})))
            if value is None:
                current.pop(key, None)
            else:
                current[key] = _raw(value)

    apply(start)
    table = table_mod.build(zone=ZONE, entries=dict(current), serial=1)
    _all_answers(table)  # fill the compiled-answer cache, so the carry-over is exercised
    for changes in steps:
        apply(changes)
        table = table_mod.build(zone=ZONE, entries=dict(current), previous=table, serial=1)
        fresh = table_mod.build(zone=ZONE, entries=dict(current), serial=1)
        assert _all_answers(table) == _all_answers(fresh)
        assert (table.dropped, len(table)) == (fresh.dropped, len(fresh))


def test_one_change_in_a_10000_name_zone_is_cheap():
    raw = {f"/skydns/com/example/fed/ns/svc{i}/c1/{i:08x}": f'{{"host":"10.0.{i >> 8 & 255}.{i & 255}"}}'.encode()
           for i in range(10_000)}
    table = table_mod.build(zone=ZONE, entries=raw)
    for i in range(100):  # warm some answers
        respond(table, _query(f"svc{i}.ns.{ZONE}"))
    raw = dict(raw)
    raw["/skydns/com/example/fed/ns/svc5/c2/new"] = b'{"host":"10.9.9.9"}'
    start = time.perf_counter()
    new = table_mod.build(zone=ZONE, entries=raw, previous=table)
    took = time.perf_counter() - start
    assert took < 0.1, f"{took * 1000:.1f} ms"
    assert len(new.cache) >= 99  # every answer but svc5's kept
    got = [r[3] for r in new.answer(name=f"svc5.ns.{ZONE}", qtype=rs.T_A).answer]
    assert sorted(got) == ["10.0.0.5", "10.9.9.9"]


def _query(name: str) -> bytes:
    import dns.message

    return dns.message.make_query(name, "A").to_wire()


def test_before_the_first_load_in_zone_questions_get_servfail():
    import dns.message

    loading = table_mod.loading(zone=ZONE)
    for name, rcode in ((f"svc.ns.{ZONE}", rs.SERVFAIL), (ZONE, rs.SERVFAIL), ("example.org.", rs.REFUSED)):
        out = respond(loading, dns.message.make_query(name, "A").to_wire())
        assert out.rcode == rcode
    loaded = table_mod.build(zone=ZONE, entries=entries({"c1.svc.ns": {"host": "10.0.0.1"}}),
                             previous=loading)
    assert not loaded.loading and respond(loaded, _query(f"svc.ns.{ZONE}")).rcode == rs.NOERROR
