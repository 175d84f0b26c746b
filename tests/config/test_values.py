"""Valid configs: defaults, normalisation, durations, conversions to model types."""

from __future__ import annotations

import ipaddress

import pytest

from fed_dns.config import Config, parse, parse_duration, split_listen
from fed_dns.model import AllUnhealthy, ClusterSpec, Publish, ZoneSettings


def test_defaults() -> None:
    config = parse({}, source="empty")
    assert config == Config()
    assert (config.zone, config.owner_id, config.ttl) == ("fed.example.com.", "fed-dns/fed.example.com.", 5)
    assert (config.publish, config.export, config.all_unhealthy) == (Publish.AUTO, "annotated", AllUnhealthy.SERVE_ALL)
    assert (config.namespaces.include, config.namespaces.exclude) == (("*",), ("kube-system",))
    assert config.clusters == ()
    assert (config.health.period, config.health.timeout) == (1.0, 1.0)
    assert (config.health.failure_threshold, config.health.success_threshold) == (3, 2)
    assert (config.dns.listen, config.dns.workers, config.dns.tcp_idle_timeout) == ("127.0.0.1:5353", "auto", 10.0)
    assert config.dns.control_nice == 5
    assert (config.dns.max_tcp_connections, config.dns.max_udp_size) == (1000, 1232)
    assert (config.etcd.endpoints, config.etcd.prefix, config.etcd.timeout) == ((), "/skydns", 5.0)
    assert not config.etcd.enabled and config.etcd.password is None
    assert config.etcd.compaction_interval == 300.0  # kube-apiserver's --etcd-compaction-interval
    assert config.http.listen == "127.0.0.1:9153"
    assert (config.leader_election.enabled, config.leader_election.lease_ttl) == (True, 5.0)
    assert (config.topology.mode, config.topology.subnets, config.topology.trust_ecs) == ("off", {}, False)
    assert (config.watch.inactivity_timeout, config.watch.backoff_max) == (60.0, 30.0)
    assert config.unschedulable_after == 60.0
    assert parse(None, source="empty file") == config


@pytest.mark.parametrize(("zone", "expected"), [
    ("Fed.Example.COM", "fed.example.com."),
    ("fed.example.com.", "fed.example.com."),
    (" local ", "local."),
    ("0-a.b-1.io", "0-a.b-1.io."),
])
def test_zone_normalised_and_owner_follows(zone: str, expected: str) -> None:
    config = parse({"zone": zone}, source="t")
    assert config.zone == expected
    assert config.owner_id == f"fed-dns/{expected}"
    assert parse({"zone": zone, "owner_id": "mine"}, source="t").owner_id == "mine"


@pytest.mark.parametrize(("text", "seconds"), [
    (1, 1.0), (1.5, 1.5), ("1s", 1.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0),
    ("1m30s", 90.0), ("10", 10.0), ("0.25", 0.25), ("1.5s", 1.5), ("250us", 0.00025), ("0", 0.0),
])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "-1s", "1d", "1 s", "1s2", "inf", "nan", "ms5", "--1"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_durations_in_sections_are_float_seconds() -> None:
    config = parse({"ttl": "1m", "health": {"period": "500ms", "timeout": 2},
                    "dns": {"tcp_idle_timeout": "1m30s"}, "unschedulable_after": "2m"}, source="t")
    assert (config.ttl, config.health.period, config.health.timeout) == (60, 0.5, 2.0)
    assert (config.dns.tcp_idle_timeout, config.unschedulable_after) == (90.0, 120.0)
    assert isinstance(config.ttl, int) and isinstance(config.health.timeout, float)


@pytest.mark.parametrize(("listen", "host", "port"), [
    ("127.0.0.1:5353", "127.0.0.1", 5353), ("[::1]:53", "::1", 53), ("0.0.0.0:0", "0.0.0.0", 0),
    ("localhost:8053", "localhost", 8053), ("[fd00::1]:65535", "fd00::1", 65535),
])
def test_listen_addresses(listen: str, host: str, port: int) -> None:
    config = parse({"dns": {"listen": listen}, "http": {"listen": listen}}, source="t")
    assert (config.dns.host, config.dns.port) == (host, port) == split_listen(listen)
    assert (config.http.host, config.http.port) == (host, port)


def test_yaml_off_is_the_off_mode() -> None:
    assert parse({"topology": {"mode": False}}, source="t").topology.mode == "off"


def test_topology_networks_most_specific_first() -> None:
    config = parse({"clusters": [{"name": "a", "region": "r1"}, {"name": "b", "region": "r2"}],
                    "topology": {"mode": "local-first", "trust_ecs": True,
                                 "subnets": {"10.0.0.0/8": "r1", "10.1.0.0/16": "r2", "fd00::/8": "r2"}}},
                   source="t")
    assert config.topology.networks() == (
        (ipaddress.ip_network("10.1.0.0/16"), "r2"), (ipaddress.ip_network("10.0.0.0/8"), "r1"),
        (ipaddress.ip_network("fd00::/8"), "r2"))


def test_namespaces_selects() -> None:
    config = parse({"namespaces": {"include": ["team-*", "shop"], "exclude": ["team-x"]}}, source="t")
    assert [config.namespaces.selects(ns) for ns in ("team-a", "shop", "team-x", "other")] == [
        True, True, False, False]
    assert not parse({}, source="t").namespaces.selects("kube-system")


def test_zone_settings() -> None:
    config = parse({"zone": "Fed.Test", "ttl": 7, "all_unhealthy": "empty", "etcd": {"prefix": "/dns/"}},
                   source="t")
    assert config.zone_settings() == ZoneSettings(zone="fed.test.", prefix="/dns", owner_id="fed-dns/fed.test.",
                                                  ttl=7, all_unhealthy=AllUnhealthy.EMPTY)


def test_cluster_specs_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    config = parse({"clusters": [
        {"name": "c1", "kubeconfig": "~/.kube/one", "context": "ctx-1", "region": "us-east",
         "zone_label": "us-east-1a", "weight": 0},
        {"name": "c2"},
    ]}, source="t")
    assert config.cluster_specs() == (
        ClusterSpec(name="c1", kubeconfig="/home/someone/.kube/one", context="ctx-1", region="us-east",
                    zone_label="us-east-1a", weight=0),
        ClusterSpec(name="c2"),
    )


def test_etcd_section() -> None:
    config = parse({"etcd": {"endpoints": ["http://127.0.0.1:2379/", "https://[::1]:2379"],
                             "tls": {"ca_file": "ca.pem", "cert_file": "c.pem", "key_file": "k.pem"},
                             "username": "root", "password": "hunter2-secret"}}, source="t")
    assert config.etcd.endpoints == ("http://127.0.0.1:2379", "https://[::1]:2379")
    assert config.etcd.enabled
    assert config.etcd.password.get_secret_value() == "hunter2-secret"
    assert "hunter2" not in repr(config) and "hunter2" not in str(config.model_dump())


def test_config_is_frozen() -> None:
    config = parse({}, source="t")
    with pytest.raises(ValueError):
        config.zone = "other."  # type: ignore[misc]


def test_cluster_labels_reach_the_spec_with_topology_labels() -> None:
    config = parse({"clusters": [{"name": "c1", "region": "us-east", "zone_label": "a1",
                                  "labels": {"tier": "gold", "example.com/team": "db"}}]}, source="t")
    spec = config.cluster_specs()[0]
    assert spec.labels == (("example.com/team", "db"), ("tier", "gold"))
    assert spec.label_map() == {"example.com/team": "db", "tier": "gold",
                                "topology.kubernetes.io/region": "us-east", "region": "us-east",
                                "topology.kubernetes.io/zone": "a1", "zone": "a1"}


@pytest.mark.parametrize(("workers", "cpus", "processes"), [
    ("auto", 1, 0), ("auto", 2, 1), ("auto", 16, 1), (0, 16, 0), (1, 1, 1), (3, 2, 3),
], ids=["auto-one-cpu", "auto-two", "auto-many", "zero", "one-on-one-cpu", "three"])
def test_dns_worker_processes(monkeypatch, workers, cpus, processes):
    """`auto`: a worker process answers where the daemon may use two CPUs (answers never wait
    on the control work), the daemon itself on one; a number is taken as it is."""
    from fed_dns.config import schema

    monkeypatch.setattr(schema, "available_cpus", lambda: cpus)
    assert parse({"dns": {"workers": workers}}).dns.worker_processes == processes
