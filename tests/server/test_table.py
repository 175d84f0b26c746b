"""The zone table: built from raw etcd keys, bad values dropped, incremental rebuilds that
answer exactly as a full build does."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fed_dns.server import resolve as rs
from fed_dns.server import table as table_mod
from fed_dns.server import zone as zone_mod
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


def test_one_change_in_a_10000_name_zone_is_cheap(monkeypatch):
    """A snapshot with one key more: only that key is decoded and applied (the rest is one
    comparison of raw bytes each), and every compiled answer but the changed name's is kept.
    Counted, not timed (a wall-clock bound failed on a slow machine under coverage)."""
    raw = {f"/skydns/com/example/fed/ns/svc{i}/c1/{i:08x}": f'{{"host":"10.0.{i >> 8 & 255}.{i & 255}"}}'.encode()
           for i in range(10_000)}
    table = table_mod.build(zone=ZONE, entries=raw)
    for i in range(100):  # warm some answers
        respond(table, _query(f"svc{i}.ns.{ZONE}"))
    kept = {i: table.cache.get(_qkey(f"svc{i}.ns.{ZONE}")) for i in range(100)}
    assert all(kept.values())
    raw = dict(raw)
    raw["/skydns/com/example/fed/ns/svc5/c2/new"] = b'{"host":"10.9.9.9"}'
    decoded, applied = _counting(monkeypatch, zone_mod, "decode"), _counting(monkeypatch, zone_mod._Delta, "put")
    new = table_mod.build(zone=ZONE, entries=raw, previous=table)
    assert (len(decoded), len(applied)) == (1, 1), (len(decoded), len(applied))
    assert all(new.cache.get(_qkey(f"svc{i}.ns.{ZONE}")) is kept[i] for i in range(100) if i != 5)
    assert new.cache.get(_qkey(f"svc5.ns.{ZONE}")) is None  # svc5's answer changed: compiled again
    got = [r[3] for r in new.answer(name=f"svc5.ns.{ZONE}", qtype=rs.T_A).answer]
    assert sorted(got) == ["10.0.0.5", "10.9.9.9"]


def _counting(monkeypatch, owner, name: str) -> list:
    """Calls of `owner.name` from now on (the test's end undoes it)."""
    calls: list = []
    real = getattr(owner, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def _qkey(name: str) -> bytes:
    """The compiled-answer cache's key of an A question (table.fast_key)."""
    import dns.name

    return table_mod.fast_key(dns.name.from_text(name).to_wire().lower(), rs.T_A)


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


# -- update: O(changed) deltas --------------------------------------------------------------

KEYS = [next(iter(entries({rel: {}}))) for rel in
        (*LEAVES, "a-b.ns", "c1.a-b.ns", "x.a-b.ns", "c1.A.ns", "alias.ns")]
KEYS += ["/skydns/org/example/other", "/skydns/com/example/fed"]  # foreign: not a name below
OPS = st.lists(st.tuples(st.sampled_from(KEYS), st.one_of(st.none(), VALUES)),
               min_size=1, max_size=8)


def _answers_with_cache(table) -> list:
    """Every answer twice: once compiled (maybe cached), once from the cache."""
    return [_all_answers(table), _all_answers(table)]


@settings(max_examples=200, deadline=None)
@given(start=OPS, steps=st.lists(st.tuples(OPS, st.booleans()), min_size=1, max_size=5))
def test_updates_answer_as_full_builds(start, steps):
    """Random put/delete deltas applied with `update` (the answer cache filled before each
    one, sometimes with a new serial) answer as a full build of the same entries."""
    _updates_answer_as_full_builds(start, steps)


@settings(max_examples=100, deadline=None)
@given(start=OPS, steps=st.lists(st.tuples(OPS, st.booleans()), min_size=1, max_size=5))
def test_updates_answer_as_full_builds_with_big_parents(start, steps):
    """The same with every parent of more than 2 children held in a Map, not a tuple."""
    small, zone_mod.SMALL = zone_mod.SMALL, 2
    try:
        _updates_answer_as_full_builds(start, steps)
    finally:
        zone_mod.SMALL = small


def _updates_answer_as_full_builds(start, steps) -> None:
    current = {k: _raw(v) for k, v in start if v is not None}
    table = table_mod.build(zone=ZONE, entries=dict(current), serial=1)
    for ops, new_serial in steps:
        _all_answers(table)  # fill the shared cache, so invalidation is exercised
        puts = {}
        deletes = set()
        for key, value in ops:
            if value is None:
                deletes.add(key)
                puts.pop(key, None)
                current.pop(key, None)
            else:
                puts[key] = _raw(value)
                deletes.discard(key)
                current[key] = puts[key]
        serial = table.serial + 1 if new_serial else table.serial
        table = table_mod.update(previous=table, puts=puts, deletes=deletes, serial=serial)
        fresh = table_mod.build(zone=ZONE, entries=dict(current), serial=serial)
        got, again = _answers_with_cache(table)
        assert got == again == _all_answers(fresh)
        assert (table.dropped, table.foreign, len(table)) == \
            (fresh.dropped, fresh.foreign, len(fresh))


@pytest.mark.parametrize(("start", "deletes", "puts"), [
    (["a-b.ns"], ["a-b.ns"], ["c1.a-b.ns"]),
    (["c1.a-b.ns", "x.a-b.ns"], ["c1.a-b.ns", "x.a-b.ns"], ["a-b.ns"]),
    (["c1.a.ns", "c2.a.ns"], ["c1.a.ns"], ["c1.a.ns"]),
    (["c1.a.ns", "x.c3.a.ns", "c1.b.ns"], ["c1.a.ns", "x.c3.a.ns"], ["x.c3.b.ns"]),
    (["x.c3.a.ns"], ["x.c3.a.ns"], ["c1.c3.a.ns"]),
], ids=["leaf-gone-child-new", "children-gone-parent-new", "leaf-gone-and-back",
        "subtree-emptied-beside-a-new-one", "sibling-replaces-the-last-leaf"])
def test_a_delta_that_empties_names_and_fills_them_answers_as_a_full_build(start, deletes, puts):
    """Names emptied in a delta leave their parents' lists once it is applied: one put in
    the same delta below, at or beside an emptied name must still find it where it is."""
    def keyed(rels):
        return entries({rel: {"host": "10.0.0.1"} for rel in rels})

    table = table_mod.build(zone=ZONE, entries=keyed(start), serial=1)
    _all_answers(table)
    current = {k: v for k, v in keyed(start).items() if k not in keyed(deletes)}
    current.update(keyed(puts))
    updated = table_mod.update(previous=table, puts=keyed(puts), deletes=list(keyed(deletes)), serial=1)
    fresh = table_mod.build(zone=ZONE, entries=current, serial=1)
    assert _all_answers(updated) == _all_answers(fresh)
    def tree(ix):  # each name's children, in any order, each once
        return {name: sorted(kids) for name, kids in ix.children.items()}

    assert tree(updated.index) == tree(fresh.index)


def test_update_of_a_key_in_both_puts_and_deletes_puts_it():
    key = next(iter(entries({"c1.svc.ns": {}})))
    table = table_mod.build(zone=ZONE, entries={})
    new = table_mod.update(previous=table, puts={key: b'{"host":"10.0.0.1"}'}, deletes=[key])
    assert [r[3] for r in new.answer(name=f"svc.ns.{ZONE}", qtype=rs.T_A).answer] == ["10.0.0.1"]


def test_reads_are_in_key_order_not_tree_order():
    """'-' sorts before '/': the key of `a-b/x` comes before `a/x` though label a < a-b."""
    records = {}
    for i in range(12):
        records[f"x.a{i}.svc.ns"] = {"host": f"10.0.{i}.1"}
        records[f"x.a{i}-b.svc.ns"] = {"host": f"10.0.{i}.2"}
        records[f"a{i}0.svc.ns"] = {"host": f"10.0.{i}.3"}
    raw = entries(records)
    table = table_mod.build(zone=ZONE, entries=raw)
    got = [table.index.key_of(s.name) for s in table.index.read(f"svc.ns.{ZONE}")]
    assert got == sorted(raw)
    got = [r[3] for r in table.answer(name=f"svc.ns.{ZONE}", qtype=rs.T_A).answer]
    assert got == [json.loads(raw[k])["host"] for k in sorted(raw)]


def test_a_read_is_bounded(monkeypatch):
    monkeypatch.setattr(zone_mod, "MAX_READ", 50)
    raw = entries({f"c{i}.svc.ns": {"host": f"10.0.{i >> 8}.{i & 255}"} for i in range(300)})
    table = table_mod.build(zone=ZONE, entries=raw)
    got = table.index.read(f"svc.ns.{ZONE}")
    keys = [table.index.key_of(s.name) for s in got]
    assert len(got) == 50 and keys == sorted(keys)
    assert len(table.index.read(f"c7.svc.ns.{ZONE}")) == 1


def _fill(table, names) -> None:
    for name in names:
        for qtype in (rs.T_A, rs.T_SRV, rs.T_TXT):
            table.entry(table_mod.wire_name(name), qtype)


def test_update_drops_only_the_answers_that_read_a_changed_name():
    raw = entries({f"c1.svc{i}.ns": {"host": f"10.0.0.{i}", "port": 80} for i in range(20)})
    table = table_mod.build(zone=ZONE, entries=raw, serial=1)
    names = [f"svc{i}.ns.{ZONE}" for i in range(20)] + [f"ns.{ZONE}"]
    _fill(table, names)
    before = dict(table.cache)
    key = next(iter(entries({"c2.svc3.ns": {}})))
    new = table_mod.update(previous=table, puts={key: b'{"host":"10.0.9.9"}'}, deletes=(),
                           serial=1)
    assert new.cache is table.cache  # one cache, shared
    gone = {k for k in before if k not in new.cache}
    assert {e.qname for e in (before[k] for k in gone)} == {f"svc3.ns.{ZONE}", f"ns.{ZONE}"}
    assert len(gone) == 6
    assert sorted(r[3] for r in new.answer(name=f"svc3.ns.{ZONE}", qtype=rs.T_A).answer) == \
        ["10.0.0.3", "10.0.9.9"]


def test_a_new_serial_drops_only_the_apex_answers():
    raw = entries({"c1.svc.ns": {"host": "10.0.0.1"}})
    table = table_mod.build(zone=ZONE, entries=raw, serial=1)
    soa = table_mod.wire_name(ZONE)
    table.entry(soa, rs.T_SOA)
    _fill(table, [f"svc.ns.{ZONE}"])
    new = table_mod.update(previous=table, puts={}, deletes=(), serial=2)
    assert new.entry(soa, rs.T_SOA).answer.answer[0][3][2] == 2
    nodata = new.entry(table_mod.wire_name(f"svc.ns.{ZONE}"), rs.T_TXT)
    assert nodata.answer.authority[0][3][2] == 1  # a cached negative answer keeps its serial


def test_a_superseded_table_answers_its_own_data_and_caches_nothing():
    key = next(iter(entries({"c1.svc.ns": {}})))
    name = table_mod.wire_name(f"svc.ns.{ZONE}")
    old = table_mod.build(zone=ZONE, entries={key: b'{"host":"10.0.0.1"}'})
    new = table_mod.update(previous=old, puts={key: b'{"host":"10.0.0.2"}'}, deletes=())
    assert new.entry(name, rs.T_A).answer.answer[0][3] == "10.0.0.2"
    assert old.entry(name, rs.T_A).answer.answer[0][3] == "10.0.0.1"
    assert new.cache[table_mod.fast_key(name, rs.T_A)].answer.answer[0][3] == "10.0.0.2"


def test_two_updates_of_one_table_do_not_share_a_cache():
    key = next(iter(entries({"c1.svc.ns": {}})))
    name = table_mod.wire_name(f"svc.ns.{ZONE}")
    base = table_mod.build(zone=ZONE, entries={key: b'{"host":"10.0.0.1"}'})
    one = table_mod.update(previous=base, puts={key: b'{"host":"10.0.0.2"}'}, deletes=())
    one.entry(name, rs.T_A)
    two = table_mod.update(previous=base, puts={}, deletes=(), serial=base.serial)
    assert two.cache is not one.cache
    assert two.entry(name, rs.T_A).answer.answer[0][3] == "10.0.0.1"


def test_an_answer_compiled_from_an_older_table_is_never_inserted():
    key = next(iter(entries({"c1.svc.ns": {}})))
    name = table_mod.wire_name(f"svc.ns.{ZONE}")
    old = table_mod.build(zone=ZONE, entries={key: b'{"host":"10.0.0.1"}'})
    stale = old.entry(name, rs.T_A)  # compiled before the update
    old.cache.clear()
    new = table_mod.update(previous=old, puts={key: b'{"host":"10.0.0.2"}'}, deletes=())
    old.answers.insert(old.generation, table_mod.fast_key(name, rs.T_A), stale)  # too late
    assert new.entry(name, rs.T_A).answer.answer[0][3] == "10.0.0.2"


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(table_mod, "MAX_CACHED", 10)
    raw = entries({f"c1.svc{i}.ns": {"host": f"10.0.0.{i}"} for i in range(30)})
    table = table_mod.build(zone=ZONE, entries=raw)
    sizes = []
    for i in range(30):
        table.entry(table_mod.wire_name(f"svc{i}.ns.{ZONE}"), rs.T_A)
        sizes.append(len(table.cache))
    assert max(sizes) == 10 and len(table.answers.readers) <= 10 + 4


def test_one_key_update_costs_far_less_than_the_zone():
    """update's cost follows the delta: one key in a 40,000-key zone against the full build."""
    raw = {f"/skydns/com/example/fed/ns/svc{i}/c{i % 10}/{i:08x}": f'{{"host":"10.0.{i >> 8 & 255}.{i & 255}"}}'.encode()
           for i in range(40_000)}
    start = time.perf_counter()
    table = table_mod.build(zone=ZONE, entries=raw)
    full = time.perf_counter() - start
    key = "/skydns/com/example/fed/ns/svc5/c2/new"
    start = time.perf_counter()
    for n in range(20):
        table = table_mod.update(previous=table, puts={key: f'{{"host":"10.9.9.{n}"}}'.encode()},
                                 deletes=())
    one = (time.perf_counter() - start) / 20
    assert one < full / 200, f"update {one * 1e3:.2f} ms, full build {full * 1e3:.0f} ms"
    assert len(table) == 40_001


_LABEL = st.text(alphabet="abcXYZ09-_*", min_size=1, max_size=6)


@given(zone=st.sampled_from([".", "example.org.", "fed.example.com."]),
       prefix=st.sampled_from(["/skydns", "/other/deep"]),
       labels=st.lists(_LABEL, min_size=1, max_size=5))
def test_key_of_is_name_of_inverted(zone, prefix, labels):
    """A Service keeps only its name; its key (for a reload's diff, for key order) is the
    name's labels reversed under the zone's key, exactly the key it was read from."""
    index = zone_mod.ZoneIndex(zone=zone, prefix=prefix)
    key = zone_mod._zone_key(zone, prefix) + "/".join(labels)
    name = index.name_of(key)
    assert name is not None and index.key_of(name) == key


def test_a_reload_diffs_against_the_keys_the_values_came_from():
    raw = entries({"x.svc.ns": {"host": "10.0.0.1"}, "Y.svc.ns": {"host": "10.0.0.2"}})
    index = table_mod.build(zone=ZONE, entries=raw).index
    assert dict(index.items()) == raw
    changed = {**raw, next(iter(raw)): b'{"host":"10.0.0.9"}'}
    assert zone_mod.diff(index, changed) == ({next(iter(raw)): b'{"host":"10.0.0.9"}'}, [])


def test_an_answer_compiled_while_an_untracked_update_runs_is_dropped(monkeypatch):
    """A table nothing has answered from yet is updated without finding the changed names
    (a DNS worker's first 300,000 keys). If the UDP thread compiles an answer from it while
    the update runs, the update drops every answer instead: none is served stale."""
    key = next(iter(entries({"c1.svc.ns": {}})))
    name = table_mod.wire_name(f"svc.ns.{ZONE}")
    old = table_mod.build(zone=ZONE, entries={key: b'{"host":"10.0.0.1"}'})
    assert not old.answers.readers
    apply = zone_mod.apply
    seen = []

    def racing(prev, **kwargs):
        seen.append(kwargs["track"])
        assert old.entry(name, rs.T_A).answer.answer[0][3] == "10.0.0.1"  # cached meanwhile
        return apply(prev, **kwargs)

    monkeypatch.setattr(zone_mod, "apply", racing)
    new = table_mod.update(previous=old, puts={key: b'{"host":"10.0.0.2"}'}, deletes=())
    assert seen == [False]
    assert new.entry(name, rs.T_A).answer.answer[0][3] == "10.0.0.2"
    newer = table_mod.update(previous=new, puts={key: b'{"host":"10.0.0.3"}'}, deletes=())
    assert seen == [False, True]  # `new` has answered: the names are found and dropped
    assert newer.entry(name, rs.T_A).answer.answer[0][3] == "10.0.0.3"


@pytest.mark.parametrize("track", [True, False])
def test_apply_finds_the_changed_names_only_when_asked(track):
    raw = entries({"c1.svc.ns": {"host": "10.0.0.1"}})
    ix, changed = zone_mod.apply(zone_mod.ZoneIndex(zone=ZONE), puts=raw, track=track)
    assert ix.decoded == 1
    assert changed == ({f"c1.svc.ns.{ZONE}", f"svc.ns.{ZONE}", f"ns.{ZONE}", ZONE} if track else None)
