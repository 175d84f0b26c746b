"""The per-Service rules render() and ZoneState share: publishes, service_part, serve_all,
emit (render.py) and plan_keys, stale, deepest_first (plan.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fed_dns.model import AllUnhealthy, Health, Record, ServiceKey, ServiceView, ZoneSettings
from fed_dns.records.codec import backend_id, decode, encode
from fed_dns.records.plan import Conflict, deepest_first, plan_keys, stale
from fed_dns.records.render import (NO_REJECTIONS, cluster_rejection, emit, layout, publishes, serve_all,
                                     service_part)
from tests.records.builders import BASE, MYSQL, OWNER, SETTINGS, backend, leaf, service, tcp, view

READY, UNREACHABLE, UNKNOWN = Health.READY, Health.UNREACHABLE, Health.UNKNOWN
LAYOUT = layout(SETTINGS)
ID7, ID8 = backend_id("10.0.0.7"), backend_id("10.0.0.8")


@pytest.mark.parametrize(
    ("health", "synced", "expected"),
    [(READY, True, True), (READY, False, False), (READY, None, False), (UNREACHABLE, None, True),
     (UNREACHABLE, False, True), (UNKNOWN, True, False), ("ready", True, True)],
    ids=["ready-synced", "ready-unsynced", "ready-no-view", "unreachable-no-view",
         "unreachable-unsynced", "unknown", "plain-string"],
)
def test_publishes(health, synced, expected):
    cluster_view = None if synced is None else view("c1", synced=synced)
    assert publishes(health=health, view=cluster_view) is expected


@pytest.mark.parametrize(("cluster", "kind"), [("c1", None), ("C1", "cluster"), ("a/b", "cluster")],
                         ids=["valid", "upper-case", "slash"])
def test_cluster_rejection(cluster, kind):
    rejection = cluster_rejection(cluster)
    assert (rejection and rejection.kind) == kind


@pytest.mark.parametrize(
    ("health", "ready", "probes", "valid", "healthy"),
    [
        (READY, True, {}, 2, 2),
        (READY, False, {}, 2, 0),
        (READY, True, {"10.0.0.7": False}, 2, 1),
        (UNREACHABLE, True, {}, 2, 0),
        (UNREACHABLE, True, {"10.0.0.8": True}, 2, 1),
    ],
    ids=["ready", "service-not-ready", "probe-failed", "unreachable", "unreachable-probe-passed"],
)
def test_service_part_sorts_backends_into_valid_and_healthy(health, ready, probes, valid, healthy):
    sv = service(MYSQL, backend("10.0.0.8"), backend("10.0.0.7"), backend("no way"), ready=ready)
    part = service_part(cluster="c1", view=sv, health=health, probes=probes)
    assert (len(part.valid), len(part.healthy)) == (valid, healthy)
    assert [leaf.host for leaf in part.valid] == ["10.0.0.7", "10.0.0.8"]
    assert [r.kind for r in part.rejected] == ["address"] and part.named


def test_service_part_of_a_badly_named_service_publishes_nothing():
    key = ServiceKey(namespace="ns", name="My_SQL")
    part = service_part(cluster="c1", view=ServiceView(key=key, backends=(backend("10.0.0.7"),)),
                        health=READY, probes={})
    assert not part.named and part.valid == ()
    assert [r.kind for r in part.rejected] == ["service"]
    assert emit(layout=LAYOUT, part=part, serve_all=True).records == ()


@pytest.mark.parametrize(
    ("mode", "kept", "healthy", "expected"),
    [(AllUnhealthy.SERVE_ALL, False, False, True), (AllUnhealthy.SERVE_ALL, True, False, False),
     (AllUnhealthy.SERVE_ALL, False, True, False), (AllUnhealthy.EMPTY, False, False, False)],
    ids=["fail-open", "kept-by-unknown-member", "something-healthy", "empty-mode"],
)
def test_serve_all(mode, kept, healthy, expected):
    lay = layout(ZoneSettings(zone="fed.example.com.", all_unhealthy=mode))
    assert serve_all(layout=lay, kept=kept, healthy=healthy) is expected


FALLBACK = Record(host="mysql.ns.fed.example.com", port=-1, ttl=5, owner=OWNER, cluster="c1")


@pytest.mark.parametrize(
    ("health", "mode", "records", "fallback"),
    [
        (READY, False, {f"{BASE}/ns/mysql/c1/{ID7}": leaf("10.0.0.7", 80, "c1"),
                        f"{BASE}/ns/mysql/_tcp/_http/c1/{ID7}": leaf("10.0.0.7", 80, "c1")}, None),
        (UNREACHABLE, False, {f"{BASE}/ns/mysql/c1": FALLBACK}, "mysql.ns.fed.example.com"),
        (UNREACHABLE, True, {f"{BASE}/ns/mysql/c1/{ID7}": leaf("10.0.0.7", 80, "c1"),
                             f"{BASE}/ns/mysql/_tcp/_http/c1/{ID7}": leaf("10.0.0.7", 80, "c1")}, None),
    ],
    ids=["healthy-leaves", "fallback", "serve-all-leaves"],
)
def test_emit(health, mode, records, fallback):
    part = service_part(cluster="c1", view=service(MYSQL, backend("10.0.0.7", tcp(80, "http"))),
                        health=health, probes={})
    out = emit(layout=LAYOUT, part=part, serve_all=mode)
    assert dict(out.records) == records and out.fallback == fallback and out.rejected == frozenset()


def test_emit_keeps_the_first_of_two_records_on_one_key():
    part = service_part(cluster="c1", view=service(MYSQL, backend("10.0.0.7", tcp(1)),
                                                   backend("10.0.0.7", tcp(2))), health=READY, probes={})
    out = emit(layout=LAYOUT, part=part, serve_all=False)
    assert [record.port for _, record in out.records] == [1]
    assert [r.kind for r in out.rejected] == ["duplicate"]


K7, K8 = f"{BASE}/ns/mysql/c1/{ID7}", f"{BASE}/ns/mysql/c2/{ID8}"
MINE7, MINE8 = encode(leaf("10.0.0.7", 0, "c1")), encode(leaf("10.0.0.8", 0, "c2"))
THEIRS = encode(Record(host="10.0.0.9", owner="external-dns"))


@pytest.mark.parametrize(
    ("desired", "held", "keep", "puts", "deletes", "conflicts"),
    [
        ({K7: MINE7}, {}, (), {K7: MINE7}, (), ()),
        ({K7: MINE7}, {K7: MINE7}, (), {}, (), ()),
        ({K7: MINE7}, {K7: MINE8}, (), {K7: MINE7}, (), ()),
        ({}, {K8: MINE8}, (), {}, (K8,), ()),
        ({}, {K8: MINE8}, ("c2",), {}, (), ()),
        ({}, {K8: THEIRS}, (), {}, (), ()),
        ({K7: MINE7}, {K7: THEIRS}, (), {}, (), (Conflict(key=K7, reason="owned by 'external-dns'"),)),
    ],
    ids=["create", "same", "update-owned", "delete-undesired", "keep-member", "foreign-untouched",
         "foreign-conflict"],
)
def test_plan_keys(desired, held, keep, puts, deletes, conflicts):
    out = plan_keys(desired=desired, current=held, held=held.items(), owner=OWNER, keep_clusters=keep)
    assert dict(out.changes.puts) == puts and out.changes.deletes == deletes and out.conflicts == conflicts


@pytest.mark.parametrize(
    ("value", "keep", "expected"),
    [(MINE8, (), True), (MINE8, ("c2",), False), (THEIRS, (), False), (b"{", (), False),
     (encode(Record(host="x", owner=OWNER)), ("c2",), True)],
    ids=["owned", "owned-by-kept-member", "foreign", "undecodable", "owned-no-cluster"],
)
def test_stale(value, keep, expected):
    assert stale(value, owner=OWNER, keep_clusters=keep) is expected


def test_deepest_first_puts_children_before_parents():
    keys = [f"{BASE}/a/b/c1", f"{BASE}/a/b/c1/x", f"{BASE}/a/b/_tcp/_h/c1/x", f"{BASE}/a/a/c1/x"]
    assert sorted(keys, key=deepest_first) == [
        f"{BASE}/a/b/_tcp/_h/c1/x", f"{BASE}/a/a/c1/x", f"{BASE}/a/b/c1/x", f"{BASE}/a/b/c1"]


def test_parts_without_rejections_share_one_empty_set():
    """A clean Service's part and records hold the one shared empty set: each empty
    frozenset is 216 bytes of its own, and 10 x 5,000 Services cached 100,000 of them."""
    svc = service(MYSQL, backend("10.0.0.7", tcp(3306)))
    part = service_part(cluster="c1", view=svc, health=READY, probes={})
    emitted = emit(layout=LAYOUT, part=part, serve_all=False)
    assert emitted.records and part.rejected == emitted.rejected == frozenset()
    assert part.rejected is emitted.rejected is NO_REJECTIONS
    bad = service_part(cluster="c1", view=service(MYSQL, backend("not an address")), health=READY, probes={})
    assert bad.rejected and bad.rejected is not NO_REJECTIONS


def reference_stale(value: bytes, *, owner: str, keep_clusters) -> bool:
    """stale() as it reads: decoded, ours, not of a kept cluster (no shortcut)."""
    try:
        record = decode(value)
    except ValueError:
        return False
    return record.owner == owner and record.cluster not in keep_clusters


@given(pairs=st.lists(st.tuples(st.sampled_from(["cluster", "Cluster", "clu\u017fter", "owner", "host"]),
                                st.one_of(st.sampled_from(["c1", "c2", "", OWNER, "other"]),
                                          st.integers(), st.none())), max_size=5),
       canonical=st.booleans(), keep=st.sampled_from([frozenset(), {"c1"}, {"c1", "c2"}, {""}]))
def test_stale_decides_as_the_decoded_record_does(pairs, canonical, keep):
    """The shortcut (a value that can only name kept clusters is not stale, undecoded) never
    decides otherwise than the record would."""
    body = ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs)
    value = ('{"cluster":"c1"' + ("," if body else "") + body + "}" if canonical else "{" + body + "}").encode()
    assert stale(value, owner=OWNER, keep_clusters=keep) is reference_stale(value, owner=OWNER, keep_clusters=keep)
