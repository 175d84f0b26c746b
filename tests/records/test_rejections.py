"""Hostile or invalid names are rejected, never published, and never escape their prefix."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fed_dns.model import Health, Port, ServiceKey
from fed_dns.records.names import check_label
from fed_dns.records.render import Rejection, render
from tests.records.builders import BASE, MYSQL, SETTINGS, answer, backend, service, tcp, view

HOSTILE = ["../x", "a/b", "*", "x" * 64, "MySQL", "", "ünï", "_tcp", "a.b", "-a", "..", "a\nb"]
HOSTILE_IDS = ["dotdot-slash", "slash", "wildcard", "64-bytes", "upper", "empty", "unicode",
               "underscore", "dot", "leading-hyphen", "dotdot", "newline"]


def rendered(*views, health=None):
    views = {v.cluster: v for v in views}
    return render(views=views, health=health or dict.fromkeys(views, Health.READY),
                  settings=SETTINGS)


@pytest.mark.parametrize("bad", HOSTILE, ids=HOSTILE_IDS)
@pytest.mark.parametrize("where", ["namespace", "service", "cluster", "hostname"])
def test_hostile_label_is_rejected_and_the_rest_published(bad, where):
    good = ServiceKey(namespace="ns", name="ok")
    if where == "cluster":
        out = rendered(view("c1", service(good, backend("10.1.0.1"))),
                       view(bad, service(good, backend("10.9.0.1"))))
        expected = Rejection(cluster=bad, kind="cluster", name=bad, reason=check_label(bad))
    elif where == "hostname":
        out = rendered(view("c1", service(good, backend("10.1.0.1"), backend("10.9.0.1", hostname=bad))))
        expected = Rejection(cluster="c1", kind="hostname", name=bad, reason=check_label(bad))
    else:
        hostile = ServiceKey(**{"namespace": "ns", "name": "ok", where if where == "namespace" else "name": bad})
        out = rendered(view("c1", service(good, backend("10.1.0.1")), service(hostile, backend("10.9.0.1"))))
        expected = Rejection(cluster="c1", kind=where, name=str(hostile), reason=check_label(bad))
    assert expected in out.rejected
    assert answer(out.zone.records, "ok.ns.fed.example.com.") == (
        {"10.1.0.1", "10.9.0.1"} if where == "hostname" else {"10.1.0.1"})
    for key in out.zone.records:
        assert key.startswith(BASE + "/")
        assert all(check_label(seg.removeprefix("_")) is None for seg in key[len(BASE) + 1:].split("/"))


@pytest.mark.parametrize(
    ("port", "kind"),
    [(Port(name="HTTP", port=80), "port"), (Port(name="a/b", port=80), "port"),
     (Port(name="http", port=80, protocol="T/CP"), "protocol")],
    ids=["upper-case-port-name", "slash-port-name", "bad-protocol"],
)
def test_bad_port_name_is_rejected_but_the_service_published(port, kind):
    out = rendered(view("c1", service(MYSQL, backend("10.1.0.7", port, tcp(3306, "mysql")))))
    assert [r.kind for r in out.rejected] == [kind]
    assert answer(out.zone.records, "mysql.ns.fed.example.com.") == {"10.1.0.7"}
    assert answer(out.zone.records, "_mysql._tcp.mysql.ns.fed.example.com.") == {"10.1.0.7"}
    assert all("/_" + port.name.lower() not in key for key in out.zone.records)


@pytest.mark.parametrize("address", ["not a name", "a..b", "fe80::1%eth0", "*.example.org", ""],
                         ids=["space", "empty-label", "scoped-ipv6", "wildcard", "empty"])
def test_unusable_addresses_are_rejected_and_the_cluster_falls_back(address):
    out = rendered(view("c1", service(MYSQL, backend(address))))
    assert [r.kind for r in out.rejected] == ["address"]
    assert list(out.zone.records) == [f"{BASE}/ns/mysql/c1"]


def test_names_longer_than_253_bytes_are_rejected():
    key = ServiceKey(namespace="n" * 63, name="s" * 63)
    hostname = "h" * 60  # h.c1._port._tcp.s.n.fed.example.com > 253 only below the SRV subtree
    out = rendered(view("c1", service(key, backend("10.1.0.1", tcp(80, "p" * 40), hostname=hostname))))
    assert {r.kind for r in out.rejected} == {"name"}
    assert list(out.zone.records) == [f"{BASE}/{'n' * 63}/{'s' * 63}/c1/{hostname}"]


def test_two_addresses_on_one_key_keep_the_first_and_say_so():
    out = rendered(view("c1", service(MYSQL, backend("10.1.0.8", hostname="pg-0"),
                                      backend("10.1.0.7", hostname="pg-0"))))
    # one hostname, two addresses: each gets its own key below the hostname, no clash
    assert answer(out.zone.records, "pg-0.c1.mysql.ns.fed.example.com.") == {"10.1.0.7", "10.1.0.8"}
    out = rendered(view("c1", service(MYSQL, backend("10.1.0.7", tcp(1)), backend("10.1.0.7", tcp(2)))))
    assert [r.kind for r in out.rejected] == ["duplicate"]
    assert [r.port for r in out.zone.records.values()] == [1]


@given(namespace=st.text(max_size=70), name=st.text(max_size=70), cluster=st.text(max_size=70),
       hostname=st.none() | st.text(max_size=70), port=st.text(max_size=20))
def test_nothing_escapes_its_prefix(namespace, name, cluster, hostname, port):
    key = ServiceKey(namespace=namespace, name=name)
    out = rendered(view(cluster, service(key, backend("10.0.0.1", tcp(80, port), hostname=hostname))))
    for k in out.zone.records:
        assert k.startswith(f"{BASE}/{namespace}/{name}/")
        segments = k[len(BASE) + 1:].split("/")
        assert all(check_label(s.removeprefix("_")) is None for s in segments)
    if out.zone.records:
        assert check_label(namespace) is None and check_label(name) is None
        assert check_label(cluster) is None
