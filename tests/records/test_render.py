"""render(): views + health -> the desired zone (naming.md)."""

from __future__ import annotations

import pytest

from fed_dns.model import AllUnhealthy, Health, Port, Record, ServiceKey, ZoneSettings
from fed_dns.records.codec import backend_id
from fed_dns.records.render import render
from tests.records.builders import (
    BASE, MYSQL, OWNER, SETTINGS, answer, backend, leaf, service, tcp, view,
)

READY, UNREACHABLE, UNKNOWN = Health.READY, Health.UNREACHABLE, Health.UNKNOWN
PG = ServiceKey(namespace="db", name="pg")


def two_clusters():
    views = {
        "c1": view("c1", service(MYSQL, backend("10.1.0.7", tcp(3306, "mysql")),
                                 backend("10.1.0.8", tcp(3306, "mysql")))),
        "c2": view("c2", service(MYSQL, backend("10.2.0.9", tcp(3306, "mysql")))),
        "c3": view("c3", service(PG, backend("10.3.4.10", tcp(5432), hostname="pg-0"))),
    }
    return render(views=views, health={"c1": READY, "c2": READY, "c3": READY}, settings=SETTINGS)


@pytest.mark.parametrize(
    ("name", "hosts"),
    [
        ("mysql.ns.fed.example.com.", {"10.1.0.7", "10.1.0.8", "10.2.0.9"}),
        ("c1.mysql.ns.fed.example.com.", {"10.1.0.7", "10.1.0.8"}),
        ("c2.mysql.ns.fed.example.com.", {"10.2.0.9"}),
        ("pg-0.c3.pg.db.fed.example.com.", {"10.3.4.10"}),
        ("_mysql._tcp.mysql.ns.fed.example.com.", {"10.1.0.7", "10.1.0.8", "10.2.0.9"}),
        ("c2._mysql._tcp.mysql.ns.fed.example.com.", {"10.2.0.9"}),
    ],
    ids=["global-name", "cluster-name", "other-cluster-name", "headless-pod-name",
         "srv-named-port", "srv-cluster-child"],
)
def test_names_table(name, hosts):
    assert answer(two_clusters().zone.records, name) == hosts


def test_leaf_keys_and_values():
    records = two_clusters().zone.records
    ident = backend_id("10.2.0.9")
    assert records[f"{BASE}/ns/mysql/c2/{ident}"] == leaf("10.2.0.9", 3306, "c2")
    assert records[f"{BASE}/ns/mysql/_tcp/_mysql/c2/{ident}"] == leaf("10.2.0.9", 3306, "c2")
    assert records[f"{BASE}/db/pg/c3/pg-0"] == leaf("10.3.4.10", 5432, "c3")
    assert not any("/_tcp/" in key for key in records if "/db/pg/" in key)  # unnamed port
    assert list(records) == sorted(records)
    assert two_clusters() == two_clusters()


def test_settings_decide_prefix_ttl_and_owner():
    settings = ZoneSettings(zone="Fed.Example.COM", prefix="/dns", owner_id="me", ttl=30)
    out = render(views={"c1": view("c1", service(MYSQL, backend("10.1.0.7")))},
                 health={"c1": READY}, settings=settings)
    assert out.zone.records == {
        f"/dns/com/example/fed/ns/mysql/c1/{backend_id('10.1.0.7')}":
            Record(host="10.1.0.7", ttl=30, owner="me", cluster="c1")}


FALLBACK_C2 = Record(host="mysql.ns.fed.example.com", port=-1, ttl=5, owner=OWNER, cluster="c2")


@pytest.mark.parametrize(
    ("c2_service", "c2_health", "probes"),
    [
        (service(MYSQL, backend("10.2.0.9", tcp(3306, "mysql"))), UNREACHABLE, {}),
        (service(MYSQL, backend("10.2.0.9", tcp(3306, "mysql")), ready=False), READY, {}),
        (service(MYSQL), READY, {}),
        (service(MYSQL, backend("10.2.0.9")), READY, {("c2", MYSQL, "10.2.0.9"): False}),
        (service(MYSQL, backend("10.2.0.9")), UNREACHABLE, {("c2", MYSQL, "10.2.0.9"): False}),
    ],
    ids=["cluster-unreachable", "no-ready-endpoints", "no-backends", "probe-failed",
         "unreachable-and-probe-failed"],
)
def test_fallback_cname_instead_of_leaves(c2_service, c2_health, probes):
    views = {"c1": view("c1", service(MYSQL, backend("10.1.0.7"))), "c2": view("c2", c2_service)}
    records = render(views=views, health={"c1": READY, "c2": c2_health}, settings=SETTINGS,
                     probes=probes).zone.records
    assert records[f"{BASE}/ns/mysql/c2"] == FALLBACK_C2
    assert not [key for key in records if "/c2/" in key]  # no leaves, no SRV fallbacks
    assert answer(records, "mysql.ns.fed.example.com.") == {"10.1.0.7"}  # loop dropped
    assert answer(records, "c2.mysql.ns.fed.example.com.") == {
        "CNAME mysql.ns.fed.example.com", "10.1.0.7"}


def test_probes_keep_passing_backends_of_an_unreachable_cluster():
    views = {"c1": view("c1", service(MYSQL, backend("10.1.0.7"))),
             "c2": view("c2", service(MYSQL, backend("10.2.0.8"), backend("10.2.0.9")))}
    probes = {("c2", MYSQL, "10.2.0.9"): True, ("c2", MYSQL, "10.2.0.8"): False}
    records = render(views=views, health={"c1": READY, "c2": UNREACHABLE}, settings=SETTINGS,
                     probes=probes).zone.records
    assert answer(records, "c2.mysql.ns.fed.example.com.") == {"10.2.0.9"}
    assert f"{BASE}/ns/mysql/c2" not in records


def test_failed_probe_withdraws_one_backend_of_a_ready_cluster():
    views = {"c1": view("c1", service(MYSQL, backend("10.1.0.7"), backend("10.1.0.8")))}
    records = render(views=views, health={"c1": READY}, settings=SETTINGS,
                     probes={("c1", MYSQL, "10.1.0.8"): False, ("c9", MYSQL, "10.1.0.7"): False}
                     ).zone.records
    assert answer(records, "mysql.ns.fed.example.com.") == {"10.1.0.7"}


@pytest.mark.parametrize(
    ("mode", "global_answer", "c2_answer"),
    [
        (AllUnhealthy.SERVE_ALL, {"10.1.0.7", "10.2.0.9"}, {"10.2.0.9"}),
        (AllUnhealthy.EMPTY, set(), set()),
    ],
    ids=["serve-all", "empty"],
)
def test_all_unhealthy(mode, global_answer, c2_answer):
    views = {"c1": view("c1", service(MYSQL, backend("10.1.0.7", tcp(3306, "mysql")), ready=False)),
             "c2": view("c2", service(MYSQL, backend("10.2.0.9", tcp(3306, "mysql"))))}
    settings = ZoneSettings(zone="fed.example.com.", all_unhealthy=mode)
    records = render(views=views, health={"c1": READY, "c2": UNREACHABLE},
                     settings=settings).zone.records
    assert answer(records, "mysql.ns.fed.example.com.") == global_answer
    assert answer(records, "c2.mysql.ns.fed.example.com.") == c2_answer
    fallbacks = {key for key, record in records.items() if record.port == -1}
    if mode is AllUnhealthy.SERVE_ALL:
        assert not fallbacks
        assert answer(records, "_mysql._tcp.mysql.ns.fed.example.com.") == global_answer
    else:
        assert fallbacks == {f"{BASE}/ns/mysql/c1", f"{BASE}/ns/mysql/c2"}
        assert len(records) == 2


def test_serve_all_does_not_fail_open_while_a_cluster_is_unknown():
    views = {"c1": view("c1", service(MYSQL, backend("10.1.0.7"), ready=False)),
             "c2": view("c2", service(MYSQL, backend("10.2.0.9")))}
    out = render(views=views, health={"c1": READY, "c2": UNKNOWN}, settings=SETTINGS)
    assert out.zone.records == {f"{BASE}/ns/mysql/c1": Record(
        host="mysql.ns.fed.example.com", port=-1, ttl=5, owner=OWNER, cluster="c1")}


@pytest.mark.parametrize(
    ("health", "synced"),
    [({"c2": UNKNOWN}, True), ({"c2": READY}, False), ({}, True)],
    ids=["unknown", "ready-but-not-synced", "no-health-yet"],
)
def test_clusters_of_unknown_state_are_kept_not_published(health, synced):
    views = {"c1": view("c1", service(MYSQL, backend("10.1.0.7"))),
             "c2": view("c2", service(MYSQL, backend("10.2.0.9")), synced=synced)}
    out = render(views=views, health={"c1": READY, **health}, settings=SETTINGS)
    assert out.zone.keep_clusters == {"c2"}
    assert not [key for key in out.zone.records if "/c2" in key]
    assert answer(out.zone.records, "mysql.ns.fed.example.com.") == {"10.1.0.7"}


def test_ready_cluster_without_a_view_is_kept():
    out = render(views={}, health={"c1": READY, "c2": UNREACHABLE}, settings=SETTINGS)
    assert out.zone.keep_clusters == {"c1"} and out.zone.records == {}


def test_headless_dual_stack_pod_gets_one_key_per_address():
    views = {"c1": view("c1", service(PG, backend("10.1.4.10", tcp(5432, "pg"), hostname="pg-0"),
                                      backend("FD00::A", tcp(5432, "pg"), hostname="pg-0"),
                                      backend("10.1.4.11", tcp(5432, "pg"), hostname="pg-1")))}
    records = render(views=views, health={"c1": READY}, settings=SETTINGS).zone.records
    assert answer(records, "pg-0.c1.pg.db.fed.example.com.") == {"10.1.4.10", "fd00::a"}
    assert records[f"{BASE}/db/pg/c1/pg-1"] == leaf("10.1.4.11", 5432, "c1")
    assert f"{BASE}/db/pg/c1/pg-0/{backend_id('fd00::a')}" in records
    assert answer(records, "pg-0.c1._pg._tcp.pg.db.fed.example.com.") == {"10.1.4.10", "fd00::a"}


def test_named_ports_each_get_an_srv_subtree():
    api = ServiceKey(namespace="web", name="api")
    ports = (tcp(8080, "http"), tcp(9090, "metrics"), tcp(7000), Port(name="dns", port=53, protocol="UDP"))
    views = {"c1": view("c1", service(api, backend("10.1.2.3", *ports)))}
    records = render(views=views, health={"c1": READY}, settings=SETTINGS).zone.records
    ident = backend_id("10.1.2.3")
    assert {key: record.port for key, record in records.items()} == {
        f"{BASE}/web/api/c1/{ident}": 8080,
        f"{BASE}/web/api/_tcp/_http/c1/{ident}": 8080,
        f"{BASE}/web/api/_tcp/_metrics/c1/{ident}": 9090,
        f"{BASE}/web/api/_udp/_dns/c1/{ident}": 53,
    }


@pytest.mark.parametrize(
    ("address", "host"),
    [("db.example.org", "db.example.org"), ("DB.Example.ORG.", "db.example.org"),
     ("a1b2-123.us-east-1.elb.amazonaws.com", "a1b2-123.us-east-1.elb.amazonaws.com")],
    ids=["externalname", "externalname-fqdn-mixed-case", "lb-ingress-hostname"],
)
def test_dns_name_backends_are_cnames(address, host):
    views = {"c1": view("c1", service(MYSQL, backend(address, tcp(3306, "mysql"))))}
    records = render(views=views, health={"c1": READY}, settings=SETTINGS).zone.records
    ident = backend_id(host)
    assert records == {f"{BASE}/ns/mysql/c1/{ident}": leaf(host, 3306, "c1"),
                       f"{BASE}/ns/mysql/_tcp/_mysql/c1/{ident}": leaf(host, 3306, "c1")}
    assert answer(records, "mysql.ns.fed.example.com.") == {f"CNAME {host}"}


def test_same_backend_twice_is_one_key_and_ipv6_is_canonical():
    views = {"c1": view("c1", service(MYSQL, backend("fd00:0::9"), backend("FD00::9")))}
    records = render(views=views, health={"c1": READY}, settings=SETTINGS).zone.records
    assert records == {f"{BASE}/ns/mysql/c1/{backend_id('fd00::9')}": leaf("fd00::9", 0, "c1")}


def test_plain_strings_from_config_work_as_enums():
    views = {"c1": view("c1", service(MYSQL, backend("10.1.0.7"), ready=False))}
    settings = ZoneSettings(zone="fed.example.com.", all_unhealthy="empty")
    out = render(views=views, health={"c1": "ready"}, settings=settings)
    assert list(out.zone.records) == [f"{BASE}/ns/mysql/c1"]
