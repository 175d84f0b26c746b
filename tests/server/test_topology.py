"""Topology-aware and weighted answers over real sockets: the client's region from its source
address (127.0.0.2 -> east, 127.0.0.3 -> west) or a trusted ECS option; the answer set never
changes except for local-first while the client's region has backends."""

from __future__ import annotations

from collections import Counter

import dns.edns
import dns.message
import dns.query
import dns.rdatatype
import pytest

from fed_dns.server import mmsg
from fed_dns.server import table as table_mod
from fed_dns.server.topology import LOCAL_FIRST, ORDER, Topology
from fed_dns.server.udp import BATCH
from tests.server.conftest import ZONE, entries, running_server
from tests.server.test_udp_batch import _ipv6_loopback
from tests.support import LOOPBACK

EAST, WEST, NOWHERE = "127.0.0.2", "127.0.0.3", "127.0.0.4"
RECORDS = {
    "e1.web.ns": {"host": "10.0.0.1", "cluster": "c1", "port": 80},
    "e2.web.ns": {"host": "10.0.0.2", "cluster": "c1", "port": 80},
    "w1.web.ns": {"host": "10.0.1.1", "cluster": "c2", "port": 80},
    "x1.web.ns": {"host": "10.0.9.9", "port": 80},  # foreign: no cluster, no region
    "w1.db.ns": {"host": "10.0.1.5", "cluster": "c2"},
    "z1.db.ns": {"host": "10.0.2.5", "cluster": "c3"},
}
WEB = "web.ns." + ZONE
ALL = {"10.0.0.1", "10.0.0.2", "10.0.1.1", "10.0.9.9"}
EAST_SET, WEST_SET = {"10.0.0.1", "10.0.0.2"}, {"10.0.1.1"}
SUBNETS = ((EAST + "/32", "east"), (WEST + "/32", "west"), ("10.99.0.0/16", "east"))
CLUSTERS = (("c1", "east"), ("c2", "west"), ("c3", "south"))

LOOPS = [pytest.param(BATCH, id="mmsg", marks=pytest.mark.skipif(not mmsg.available(),
                                                                 reason="no mmsg")),
         pytest.param(0, id="recvfrom")]


def topo(mode: str, **kwargs) -> Topology:
    return Topology(mode=mode, subnets=SUBNETS, clusters=CLUSTERS, **kwargs)


def serve(topology: Topology, *, batch: int = BATCH, records=RECORDS):
    table = table_mod.build(zone=ZONE, entries=entries(records), topology=topology)
    return running_server(table, udp_batch=batch)


def ask(port: int, name: str = WEB, rdtype: str = "A", *, source: str = LOOPBACK,
        ecs: str | None = None, tcp: bool = False) -> dns.message.Message:
    options = [dns.edns.ECSOption(ecs, 24)] if ecs else []
    q = dns.message.make_query(name, rdtype, use_edns=0 if ecs else None, options=options)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(q, LOOPBACK, port=port, timeout=2, source=source)


def order(msg: dns.message.Message) -> list[str]:
    return [rd.address for rrset in msg.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset]


def firsts(port: int, n: int = 24, **kwargs) -> tuple[Counter, set[frozenset]]:
    """First addresses over n queries, and every answer set seen."""
    seen, sets = Counter(), set()
    for _ in range(n):
        got = order(ask(port, **kwargs))
        seen[got[0]] += 1
        sets.add(frozenset(got))
    return seen, sets


@pytest.mark.parametrize("batch", LOOPS)
def test_order_mode_puts_the_clients_region_first(batch):
    with serve(topo(ORDER), batch=batch) as srv:
        east, sets = firsts(srv.port, source=EAST)
        assert set(east) == EAST_SET and sets == {frozenset(ALL)}
        for _ in range(8):
            got = order(ask(srv.port, source=EAST))
            assert set(got[:2]) == EAST_SET and len(got) == 4
        west, sets = firsts(srv.port, source=WEST)
        assert set(west) == WEST_SET and sets == {frozenset(ALL)}
        plain, sets = firsts(srv.port, source=NOWHERE)  # no subnet: the plain rotation
        assert set(plain) == ALL and sets == {frozenset(ALL)}


@pytest.mark.parametrize("batch", LOOPS)
def test_local_first_answers_only_the_region_and_falls_back_to_all(batch):
    with serve(topo(LOCAL_FIRST), batch=batch) as srv:
        assert firsts(srv.port, source=EAST)[1] == {frozenset(EAST_SET)}
        assert firsts(srv.port, source=WEST)[1] == {frozenset(WEST_SET)}
        assert firsts(srv.port, source=NOWHERE)[1] == {frozenset(ALL)}
        db = "db.ns." + ZONE  # no east backend: east clients get the whole set
        assert firsts(srv.port, name=db, source=EAST)[1] == {frozenset({"10.0.1.5", "10.0.2.5"})}
        assert firsts(srv.port, name=db, source=WEST)[1] == {frozenset({"10.0.1.5"})}
        big = ask(srv.port, source=EAST, tcp=True)  # TCP: the peer's region too
        assert set(order(big)) == EAST_SET


@pytest.mark.parametrize("trust", [True, False])
def test_ecs_picks_the_region_only_when_trusted(trust):
    with serve(topo(ORDER, trust_ecs=trust)) as srv:
        msg = ask(srv.port, source=WEST, ecs="10.99.1.0")  # ECS says east, the source west
        seen = set(order(msg)[:2] if trust else order(msg)[:1])
        assert seen == (EAST_SET if trust else WEST_SET)
        assert set(order(msg)) == ALL
        echoed = [o for o in msg.options if isinstance(o, dns.edns.ECSOption)]
        assert bool(echoed) == trust
        if trust:
            assert echoed[0].address == "10.99.1.0" and echoed[0].scopelen == 24
        out, _ = firsts(srv.port, source=EAST, ecs="192.0.2.0")  # ECS in no subnet
        assert set(out) == (ALL if trust else EAST_SET)


def test_srv_answers_put_the_region_first():
    with serve(topo(LOCAL_FIRST)) as srv:
        for source, local in ((EAST, {"e1.web.ns.", "e2.web.ns."}), (WEST, {"w1.web.ns."})):
            msg = ask(srv.port, rdtype="SRV", source=source)
            targets = [rd.target.to_text().removesuffix(ZONE) for rrset in msg.answer for rd in rrset]
            assert len(targets) == 4 and set(targets[:len(local)]) == local


@pytest.mark.parametrize("batch", LOOPS)
def test_weights_bias_the_first_answer(batch):
    topology = Topology(weights=(("c1", 6), ("c2", 2), ("c9", 0)))
    records = {**RECORDS, "z9.web.ns": {"host": "10.0.7.7", "cluster": "c9"}}
    with serve(topology, batch=batch, records=records) as srv:
        seen, sets = firsts(srv.port, n=240)
        assert sets == {frozenset(ALL | {"10.0.7.7"})}  # the set is unchanged
        assert "10.0.7.7" not in seen  # weight 0: never first, still answered
        by_cluster = Counter({"10.0.0.1": "c1", "10.0.0.2": "c1", "10.0.1.1": "c2",
                              "10.0.9.9": "x"}[a] for a in seen.elements())
        # per period of 9 orders: 6 led by c1, 2 by c2, 1 by the record without a cluster
        for cluster, share in (("c1", 6), ("c2", 2), ("x", 1)):
            assert abs(by_cluster[cluster] - 240 * share / 9) <= 6, by_cluster


def test_incremental_builds_keep_region_answers_current():
    topology = topo(LOCAL_FIRST)
    table = table_mod.build(zone=ZONE, entries=entries(RECORDS), topology=topology)
    with running_server(table) as srv:
        assert firsts(srv.port, source=EAST)[1] == {frozenset(EAST_SET)}
        more = {**RECORDS, "e3.web.ns": {"host": "10.0.0.3", "cluster": "c1"}}
        srv.swap(table_mod.build(zone=ZONE, entries=entries(more), previous=table,
                                 topology=topology))
        assert firsts(srv.port, source=EAST)[1] == {frozenset(EAST_SET | {"10.0.0.3"})}
        gone = {k: v for k, v in more.items() if not k.startswith("e")}
        srv.swap(table_mod.build(zone=ZONE, entries=entries(gone), topology=topology,
                                 previous=srv.server.table))
        assert firsts(srv.port, source=EAST)[1] == {frozenset({"10.0.1.1", "10.0.9.9"})}


def test_topology_off_compiles_as_before():
    plain = table_mod.build(zone=ZONE, entries=entries(RECORDS))
    off = table_mod.build(zone=ZONE, entries=entries(RECORDS), topology=Topology(
        subnets=SUBNETS, clusters=CLUSTERS, weights=(("c1", 1),)))
    key = b"\x03web\x02ns\x03fed\x07example\x03com\x00"
    assert plain.entry(key, 1).tails == off.entry(key, 1).tails
    assert off.entry(key, 1).regions is None and len(off.caches) == 1


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
@pytest.mark.parametrize("batch", LOOPS)
def test_ipv6_clients_have_regions_too(batch):
    topology = Topology(mode=LOCAL_FIRST, subnets=(("::1/128", "west"),), clusters=CLUSTERS)
    table = table_mod.build(zone=ZONE, entries=entries(RECORDS), topology=topology)
    with running_server(table, host="::1", udp_batch=batch) as srv:
        q = dns.message.make_query(WEB, "A")
        for _ in range(4):
            assert set(order(dns.query.udp(q, "::1", port=srv.port, timeout=2))) == WEST_SET


def test_update_keeps_the_region_caches_true():
    """Region answers cached before an update are dropped with the plain ones they came from."""
    table = table_mod.build(zone=ZONE, entries=entries(RECORDS), topology=topo(ORDER))
    web, db = table_mod.wire_name(WEB), table_mod.wire_name("db.ns." + ZONE)
    east = table.topology.regions.index("east") + 1
    first = [r[3] for r in table.entry(web, 1, east).answer.answer]
    kept = table.entry(db, 1, east)
    key = next(iter(entries({"e3.web.ns": {}})))
    new = table_mod.update(previous=table, puts={key: b'{"host":"10.0.0.3","cluster":"c1"}'},
                           deletes=())
    got = [r[3] for r in new.entry(web, 1, east).answer.answer]
    assert set(got) == set(first) | {"10.0.0.3"} and set(got[:3]) == EAST_SET | {"10.0.0.3"}
    assert new.caches[east].get(table_mod.fast_key(db, 1)) is kept
