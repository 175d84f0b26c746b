"""Every bad input: the exact field path and what was expected, table-driven."""

from __future__ import annotations

import pytest

from fed_dns.config import ConfigError, parse

SRC = "config/x.yaml"
C1 = {"name": "c1", "region": "us-east"}

# (id, data, path, text the message must contain)
BAD = [
    ("zone-empty-label", {"zone": "a..b"}, "zone", "expected a DNS zone name"),
    ("zone-underscore", {"zone": "my_zone.com"}, "zone", "got 'my_zone.com'"),
    ("zone-root", {"zone": "."}, "zone", "expected a DNS zone name"),
    ("zone-long-label", {"zone": "a" * 64 + ".com"}, "zone", "expected a DNS zone name"),
    ("zone-not-string", {"zone": 5}, "zone", "expected a string, got 5"),
    ("owner-space", {"owner_id": "a b"}, "owner_id", "expected a non-empty owner id"),
    ("ttl-sub-second", {"ttl": "500ms"}, "ttl", "expected a whole number of seconds, at least 1s, got 0.5s"),
    ("ttl-zero", {"ttl": 0}, "ttl", "at least 1s"),
    ("ttl-malformed", {"ttl": "5 sec"}, "ttl", "expected a duration like '1s'"),
    ("ttl-past-32-bits", {"ttl": "4294967296s"}, "ttl", "expected a TTL of at most 2147483647s (RFC 2181)"),
    ("ttl-past-31-bits", {"ttl": 2**31}, "ttl", "at most 2147483647s"),
    ("duration-huge", {"health": {"period": 1e300}}, "health.period", "at most 30 days"),
    ("duration-years", {"watch": {"inactivity_timeout": "9999h"}}, "watch.inactivity_timeout",
     "expected a duration of at most 30 days (2592000s), got '9999h'"),
    ("max-txn-ops-zero", {"etcd": {"max_txn_ops": 0}}, "etcd.max_txn_ops", "expected a number >= 1"),
    ("write-concurrency-huge", {"etcd": {"write_concurrency": 1000}}, "etcd.write_concurrency",
     "expected a number <= 64"),
    ("tcp-unsent-tiny", {"dns": {"max_tcp_unsent": 100}}, "dns.max_tcp_unsent", "expected a number >= 4096"),
    ("reconcile-chunk-zero", {"reconcile": {"chunk": 0}}, "reconcile.chunk", "expected a number >= 1"),
    ("publish", {"publish": "lb"}, "publish",
     "expected one of 'auto', 'loadbalancer', 'clusterip' or 'endpoints', got 'lb'"),
    ("export", {"export": "some"}, "export", "expected one of 'annotated' or 'all', got 'some'"),
    ("all-unhealthy", {"all_unhealthy": "fail"}, "all_unhealthy", "expected one of 'serve-all' or 'empty'"),
    ("namespaces-not-list", {"namespaces": {"include": "x"}}, "namespaces.include", "expected a list, got 'x'"),
    ("namespace-pattern", {"namespaces": {"exclude": ["Kube_System"]}}, "namespaces.exclude[0]",
     "expected a namespace name or a pattern like 'team-*', got 'Kube_System'"),
    ("namespaces-unknown", {"namespaces": {"includes": ["a"]}}, "namespaces.includes",
     "unknown key (expected one of: include, exclude)"),
    ("clusters-not-list", {"clusters": {"c1": {}}}, "clusters", "expected a list, got a mapping"),
    ("cluster-not-mapping", {"clusters": ["c1"]}, "clusters[0]", "expected a mapping, got 'c1'"),
    ("cluster-name-missing", {"clusters": [{"region": "us"}]}, "clusters[0].name", "required key is missing"),
    ("cluster-name-bad", {"clusters": [C1, {"name": "Bad_Name"}]}, "clusters[1].name",
     "expected a lower-case DNS label (RFC 1123), got 'Bad_Name'"),
    ("cluster-name-long", {"clusters": [{"name": "a" * 64}]}, "clusters[0].name", "(64 characters, at most 63)"),
    ("cluster-name-yaml-bool", {"clusters": [{"name": False}]}, "clusters[0].name",
     "expected a string, got false (YAML reads unquoted yes/no/on/off/true/false as booleans: quote it)"),
    ("cluster-duplicate", {"clusters": [C1, {"name": "c2"}, {"name": "c1"}]}, "clusters[2].name",
     "expected a unique cluster name, got 'c1' again (as clusters[0].name)"),
    ("cluster-region", {"clusters": [{"name": "c1", "region": "US East"}]}, "clusters[0].region",
     "expected a lower-case DNS label (RFC 1123), got 'US East'"),
    ("cluster-zone-label", {"clusters": [{"name": "c1", "zone_label": "-a"}]}, "clusters[0].zone_label",
     "expected a lower-case DNS label"),
    ("cluster-weight-negative", {"clusters": [{"name": "c1", "weight": -1}]}, "clusters[0].weight",
     "expected a number >= 0, got -1"),
    ("cluster-weight-string", {"clusters": [{"name": "c1", "weight": "2"}]}, "clusters[0].weight",
     "expected an integer, got '2'"),
    ("cluster-weight-float", {"clusters": [{"name": "c1", "weight": 1.5}]}, "clusters[0].weight",
     "expected an integer, got 1.5"),
    ("cluster-context-empty", {"clusters": [{"name": "c1", "context": ""}]}, "clusters[0].context",
     "expected a non-empty string"),
    ("cluster-kubeconfig-empty", {"clusters": [{"name": "c1", "kubeconfig": " "}]}, "clusters[0].kubeconfig",
     "expected a file path"),
    ("cluster-unknown-key", {"clusters": [{"name": "c1", "nmae": "x"}]}, "clusters[0].nmae",
     "unknown key (expected one of: name, kubeconfig, context, region, zone_label, weight, labels)"),
    ("cluster-label-key", {"clusters": [{"name": "c1", "labels": {"bad key": "x"}}]}, "clusters[0].labels[bad key]",
     "expected a Kubernetes label key like 'tier' or 'example.com/tier', got 'bad key'"),
    ("cluster-label-value", {"clusters": [{"name": "c1", "labels": {"tier": "-gold"}}]}, "clusters[0].labels[tier]",
     "expected a Kubernetes label value"),
    ("health-negative", {"health": {"period": "-1s"}}, "health.period",
     "expected a duration that is not negative, got '-1s'"),
    ("health-negative-number", {"health": {"timeout": -2}}, "health.timeout", "not negative, got -2"),
    ("health-zero", {"health": {"period": 0}}, "health.period", "expected a duration greater than zero"),
    ("health-malformed", {"health": {"timeout": "abc"}}, "health.timeout",
     "expected a duration like '1s', '500ms', '2m' or a number of seconds, got 'abc'"),
    ("health-unit", {"health": {"period": "1d"}}, "health.period", "got '1d'"),
    ("health-bool-duration", {"health": {"period": True}}, "health.period", "got true"),
    ("health-nan", {"health": {"period": "nan"}}, "health.period", "got 'nan'"),
    ("health-threshold-zero", {"health": {"failure_threshold": 0}}, "health.failure_threshold",
     "expected a number >= 1, got 0"),
    ("health-unknown", {"health": {"probe_backends": True}}, "health.probe_backends", "unknown key"),
    ("dns-listen-ipv6-bare", {"dns": {"listen": "::1:53"}}, "dns.listen", "(put an IPv6 address in brackets)"),
    ("dns-listen-no-port", {"dns": {"listen": "127.0.0.1"}}, "dns.listen",
     "expected host:port like '127.0.0.1:5353' or '[::1]:5353', got '127.0.0.1'"),
    ("dns-listen-port-range", {"dns": {"listen": "127.0.0.1:70000"}}, "dns.listen", "got '127.0.0.1:70000'"),
    ("dns-listen-bad-v6", {"dns": {"listen": "[::g]:53"}}, "dns.listen", "(an IPv6 address in brackets)"),
    ("dns-listen-bad-v4", {"dns": {"listen": "300.1.1.1:53"}}, "dns.listen", "got '300.1.1.1:53'"),
    ("dns-listen-no-host", {"dns": {"listen": ":53"}}, "dns.listen", "got ':53'"),
    ("dns-workers-negative", {"dns": {"workers": -1}}, "dns.workers",
     "expected 'auto' or a whole number 0-64, got -1"),
    ("dns-workers-word", {"dns": {"workers": "many"}}, "dns.workers", "expected 'auto' or a whole number 0-64, got 'many'"),
    ("dns-workers-many", {"dns": {"workers": 65}}, "dns.workers", "got 65"),
    ("dns-workers-bool", {"dns": {"workers": True}}, "dns.workers", "got true"),
    ("dns-control-nice-negative", {"dns": {"control_nice": -5}}, "dns.control_nice",
     "expected a number >= 0, got -5"),
    ("dns-control-nice-big", {"dns": {"control_nice": 20}}, "dns.control_nice", "expected a number <= 19, got 20"),
    ("dns-control-nice-word", {"dns": {"control_nice": "low"}}, "dns.control_nice", "got 'low'"),
    ("dns-udp-small", {"dns": {"max_udp_size": 100}}, "dns.max_udp_size", "expected a number >= 512, got 100"),
    ("dns-udp-big", {"dns": {"max_udp_size": 70000}}, "dns.max_udp_size", "expected a number <= 65535"),
    ("dns-idle", {"dns": {"tcp_idle_timeout": "10x"}}, "dns.tcp_idle_timeout", "got '10x'"),
    ("http-listen", {"http": {"listen": "localhost"}}, "http.listen", "expected host:port"),
    ("etcd-endpoints-string", {"etcd": {"endpoints": 5}}, "etcd.endpoints", "expected a list, got 5"),
    ("etcd-endpoint-scheme", {"etcd": {"endpoints": ["127.0.0.1:2379"]}}, "etcd.endpoints[0]",
     "expected a URL like 'http://127.0.0.1:2379', got '127.0.0.1:2379'"),
    ("etcd-endpoint-path", {"etcd": {"endpoints": ["http://h:2379", "http://h:2379/v3"]}}, "etcd.endpoints[1]",
     "got 'http://h:2379/v3'"),
    ("etcd-endpoint-port", {"etcd": {"endpoints": ["http://h:99999"]}}, "etcd.endpoints[0]", "expected a URL"),
    ("etcd-prefix-relative", {"etcd": {"prefix": "skydns"}}, "etcd.prefix",
     "expected an etcd key prefix like '/skydns', got 'skydns'"),
    ("etcd-prefix-dotdot", {"etcd": {"prefix": "/a/../b"}}, "etcd.prefix", "got '/a/../b'"),
    ("etcd-prefix-root", {"etcd": {"prefix": "/"}}, "etcd.prefix", "got '/'"),
    ("etcd-timeout", {"etcd": {"timeout": "0s"}}, "etcd.timeout", "greater than zero"),
    ("etcd-tls-unknown", {"etcd": {"tls": {"ca": "x"}}}, "etcd.tls.ca",
     "unknown key (expected one of: ca_file, cert_file, key_file)"),
    ("etcd-cert-without-key", {"etcd": {"tls": {"cert_file": "c.pem"}}}, "etcd.tls.key_file",
     "expected a client key file to go with etcd.tls.cert_file"),
    ("etcd-key-without-cert", {"etcd": {"tls": {"key_file": "k.pem"}}}, "etcd.tls.cert_file",
     "expected a client certificate file to go with etcd.tls.key_file"),
    ("api-cert-without-key", {"api": {"cert_file": "c.pem"}}, "api.key_file",
     "expected the certificate's key file to go with api.cert_file"),
    ("api-key-without-cert", {"api": {"key_file": "k.pem"}}, "api.cert_file",
     "expected the key's certificate file to go with api.key_file"),
    ("etcd-user-without-password", {"etcd": {"username": "root"}}, "etcd.password",
     "expected a password to go with etcd.username"),
    ("etcd-password-without-user", {"etcd": {"password": "x"}}, "etcd.username",
     "expected a user name to go with etcd.password"),
    ("etcd-compaction-sub-second", {"etcd": {"compaction_interval": "500ms"}}, "etcd.compaction_interval",
     "expected 0 (off) or a duration of at least 1s, got 0.5s"),
    ("etcd-compaction-negative", {"etcd": {"compaction_interval": "-5m"}}, "etcd.compaction_interval",
     "got '-5m'"),
    ("leader-enabled", {"leader_election": {"enabled": "yes"}}, "leader_election.enabled",
     "expected true or false, got 'yes'"),
    ("leader-ttl", {"leader_election": {"lease_ttl": "500ms"}}, "leader_election.lease_ttl",
     "expected a duration of at least 1s, got 0.5s"),
    ("topology-mode", {"topology": {"mode": "nearest"}}, "topology.mode",
     "expected one of 'off', 'order' or 'local-first', got 'nearest'"),
    ("topology-mode-yaml-on", {"topology": {"mode": True}}, "topology.mode", "got true"),
    ("topology-cidr", {"topology": {"subnets": {"10.0.0.0/33": "us"}}}, "topology.subnets[10.0.0.0/33]",
     "expected a network in CIDR notation like '10.0.0.0/8' or 'fd00::/8', got '10.0.0.0/33'"),
    ("topology-host-bits", {"topology": {"subnets": {"10.0.0.1/8": "us"}}}, "topology.subnets[10.0.0.1/8]",
     "(host bits set)"),
    ("topology-cidr-junk", {"topology": {"subnets": {"office": "us"}}}, "topology.subnets[office]",
     "expected a network in CIDR notation"),
    ("topology-region", {"topology": {"subnets": {"10.0.0.0/8": "US"}}}, "topology.subnets[10.0.0.0/8]",
     "expected a lower-case DNS label (RFC 1123), got 'US'"),
    ("topology-unknown-region", {"clusters": [C1], "topology": {"subnets": {"fd00::/8": "eu-west"}}},
     "topology.subnets[fd00::/8]", "expected the region of a configured cluster (us-east), got 'eu-west'"),
    ("topology-ecs", {"topology": {"trust_ecs": 1}}, "topology.trust_ecs", "expected true or false, got 1"),
    ("watch-backoff", {"watch": {"backoff_max": "forever"}}, "watch.backoff_max", "got 'forever'"),
    ("unschedulable", {"unschedulable_after": "-5m"}, "unschedulable_after", "not negative, got '-5m'"),
    ("section-not-mapping", {"dns": "127.0.0.1:53"}, "dns", "expected a mapping, got '127.0.0.1:53'"),
    ("section-null", {"health": None}, "health", "expected a mapping, got null"),
    ("top-key-not-string", {1: "x"}, "[1]", "expected a key that is a string"),
    ("top-unknown", {"zones": "x"}, "zones", "unknown key (expected one of: zone, owner_id, ttl,"),
]


@pytest.mark.parametrize(("data", "path", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_names_field_and_expectation(data: dict, path: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(data, source=SRC)
    lines = str(caught.value).splitlines()
    assert any(line.startswith(f"{SRC}: {path}: ") and expected in line for line in lines), lines
    assert [p.path for p in caught.value.problems] == [path]


def test_example_line_format() -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"clusters": [{"name": "c1"}, {"name": "Bad_Name"}]}, source=SRC)
    assert str(caught.value) == \
        "config/x.yaml: clusters[1].name: expected a lower-case DNS label (RFC 1123), got 'Bad_Name'"


def test_every_problem_is_reported_at_once() -> None:
    data = {"zone": "a..b", "ttl": "x", "clusters": [{"name": "c1"}, {"name": "c1", "weight": -1}],
            "dns": {"listen": "nope"}, "etcd": {"username": "u"}, "bogus": 1}
    with pytest.raises(ConfigError) as caught:
        parse(data, source=SRC)
    assert sorted(p.path for p in caught.value.problems) == sorted(
        ["zone", "ttl", "clusters[1].weight", "clusters[1].name", "dns.listen", "etcd.password", "bogus"])


@pytest.mark.parametrize("data", [[1, 2], "zone: x", 5], ids=["list", "string", "number"])
def test_top_level_must_be_a_mapping(data: object) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(data, source=SRC)
    (problem,) = caught.value.problems
    assert problem.path == ""
    assert str(problem).startswith(f"{SRC}: expected a mapping of config keys at the top level")


SECRETS = [
    ("password-wrong-type", {"etcd": {"password": 12345678}}, "etcd.password"),
    ("password-list", {"etcd": {"username": "u", "password": ["hunter2-secret"]}}, "etcd.password"),
    ("unknown-key-value", {"etcd": {"passwd": "hunter2-secret"}}, "etcd.passwd"),
    ("url-credentials", {"etcd": {"endpoints": ["http://root:hunter2-secret@h:2379"]}}, "etcd.endpoints[0]"),
]


@pytest.mark.parametrize(("data", "path"), [s[1:] for s in SECRETS], ids=[s[0] for s in SECRETS])
def test_secrets_never_in_messages(data: dict, path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(data, source=SRC)
    text = str(caught.value)
    assert path in [p.path for p in caught.value.problems]
    assert "hunter2" not in text and "12345678" not in text
