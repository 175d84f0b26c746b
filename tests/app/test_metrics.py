"""The metrics registry: plain sources read at scrape time, valid Prometheus text out."""

from __future__ import annotations

import math
import types

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fed_dns import __version__
from fed_dns.app.metrics import FAMILIES, LocalHistogram, Metrics, daemon_metrics
from fed_dns.model import ClusterView, Health


def scrape(metrics: Metrics) -> dict[str, list]:
    """name -> samples, parsed back with prometheus_client's own parser."""
    return {f.name: f.samples for f in text_string_to_metric_families(metrics.render().decode())}


def value(samples, name, **labels):
    matches = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(matches) == 1, (name, labels, samples)
    return matches[0]


def test_names_follow_prometheus_conventions():
    for name, family in FAMILIES.items():
        assert name == name.lower() and " " not in name
        assert name.endswith("_total") == (family.kind == "counter"), name
        if family.kind == "histogram":
            assert name.endswith("_seconds"), name


def test_every_metric_operations_md_asks_for_is_declared():
    for name in ("dns_requests_total", "dns_request_duration_seconds", "cluster_ready",
                 "cluster_health_transitions_total", "watch_events_total", "watch_restarts_total",
                 "published_services", "published_records", "etcd_writes_total", "etcd_errors_total",
                 "event_to_answer_lag_seconds", "failovers_total", "federated_replicas_desired",
                 "federated_replicas_ready", "leader", "rejected_objects_total", "source_stale_seconds"):
        assert name in FAMILIES
    assert FAMILIES["dns_requests_total"].labels == ("protocol", "type", "rcode")


def test_values_come_from_plain_counters_at_scrape_time():
    metrics = Metrics()
    requests: dict[tuple[str, str, str], int] = {}
    metrics.add_source("dns_requests_total", lambda: requests)
    metrics.add_source("fed_dns_leader", lambda: 1)  # the prefix is optional
    metrics.add_source("cluster_ready", lambda: {"c1": 1, "c2": 0})
    requests[("udp", "A", "NOERROR")] = 41
    requests[("tcp", "SRV", "NXDOMAIN")] = 2
    families = scrape(metrics)
    samples = families["fed_dns_dns_requests"]
    assert value(samples, "fed_dns_dns_requests_total", protocol="udp", type="A", rcode="NOERROR") == 41
    assert value(samples, "fed_dns_dns_requests_total", protocol="tcp", type="SRV", rcode="NXDOMAIN") == 2
    requests[("udp", "A", "NOERROR")] += 1  # the hot path: a dict increment, nothing else
    assert value(scrape(metrics)["fed_dns_dns_requests"], "fed_dns_dns_requests_total",
                 protocol="udp", type="A", rcode="NOERROR") == 42
    assert value(families["fed_dns_leader"], "fed_dns_leader") == 1
    assert value(families["fed_dns_cluster_ready"], "fed_dns_cluster_ready", cluster="c2") == 0
    assert value(families["fed_dns_build_info"], "fed_dns_build_info", version=__version__) == 1
    assert any(name.startswith("process_") for name in families)  # the standard process metrics


def test_sources_of_one_metric_are_added_and_can_be_removed():
    metrics = Metrics(process=False)
    metrics.add_source("dns_requests_total", lambda: {("udp", "A", "NOERROR"): 3})
    remove = metrics.add_source("dns_requests_total", lambda: {("udp", "A", "NOERROR"): 4})
    samples = scrape(metrics)["fed_dns_dns_requests"]
    assert value(samples, "fed_dns_dns_requests_total", protocol="udp", type="A", rcode="NOERROR") == 7
    remove()
    samples = scrape(metrics)["fed_dns_dns_requests"]
    assert value(samples, "fed_dns_dns_requests_total", protocol="udp", type="A", rcode="NOERROR") == 3


def test_histograms_from_local_histograms():
    metrics = Metrics(process=False)
    udp, tcp = LocalHistogram((0.001, 0.01)), LocalHistogram((0.001, 0.01))
    for v in (0.0005, 0.001, 0.005, 2.0):
        udp.observe(v)
    tcp.observe(0.02)
    metrics.add_source("dns_request_duration_seconds", lambda: {("udp",): udp.snapshot(), ("tcp",): tcp.snapshot()})
    samples = scrape(metrics)["fed_dns_dns_request_duration_seconds"]
    name = "fed_dns_dns_request_duration_seconds"
    assert value(samples, name + "_bucket", protocol="udp", le="0.001") == 2  # le is inclusive
    assert value(samples, name + "_bucket", protocol="udp", le="0.01") == 3
    assert value(samples, name + "_bucket", protocol="udp", le="+Inf") == 4
    assert value(samples, name + "_count", protocol="udp") == 4
    assert math.isclose(value(samples, name + "_sum", protocol="udp"), 2.0065)
    assert value(samples, name + "_bucket", protocol="tcp", le="0.01") == 0
    assert value(samples, name + "_count", protocol="tcp") == 1


def test_an_unlabelled_histogram_is_a_pair():
    metrics = Metrics(process=False)
    lag = LocalHistogram()
    lag.observe(0.03)
    metrics.add_source("event_to_answer_lag_seconds", lag.snapshot)
    samples = scrape(metrics)["fed_dns_event_to_answer_lag_seconds"]
    assert value(samples, "fed_dns_event_to_answer_lag_seconds_count") == 1


@pytest.mark.parametrize("bad", [
    pytest.param(lambda: 1 / 0, id="raises"),
    pytest.param(lambda: {("udp",): 1}, id="wrong-label-count"),
    pytest.param(lambda: 5, id="number-for-labelled"),
    pytest.param(lambda: {("udp", "A", "NOERROR"): "many"}, id="not-a-number"),
])
def test_a_broken_source_is_counted_and_never_breaks_the_scrape(bad):
    metrics = Metrics(process=False)
    metrics.add_source("dns_requests_total", bad)
    metrics.add_source("dns_requests_total", lambda: {("udp", "A", "NOERROR"): 1})
    metrics.add_source("leader", lambda: 0)
    families = scrape(metrics)
    assert value(families["fed_dns_metrics_source_errors"], "fed_dns_metrics_source_errors_total",
                 metric="dns_requests_total") == 1
    assert value(families["fed_dns_dns_requests"], "fed_dns_dns_requests_total",
                 protocol="udp", type="A", rcode="NOERROR") == 1
    assert value(families["fed_dns_leader"], "fed_dns_leader") == 0


def test_unknown_metric_names_are_refused():
    with pytest.raises(KeyError, match="unknown metric"):
        Metrics(process=False).add_source("dns_requests", lambda: {})


def test_daemon_wiring_reads_members_and_reconcile_stats():
    prober = types.SimpleNamespace(counters=types.SimpleNamespace(probes=10, failures=3))
    member = lambda health, prober=None: types.SimpleNamespace(  # noqa: E731
        health=health, view=ClusterView(cluster="x", synced=True), transitions=2, prober=prober,
        watcher=types.SimpleNamespace(stats=types.SimpleNamespace(events={"services": 7}, restarts={})))
    stats = types.SimpleNamespace(published_services=4, published_records=9, failovers=1,
                                  rejected={"bad-label": 2}, runs=5, failures=0, writes=3)
    placements = [{"namespace": "default", "name": "tomcat", "clusters": [
        {"cluster": "c1", "desired": 2, "ready": 1}, {"cluster": "c2", "desired": 2, "ready": 2}]}]
    replicas = types.SimpleNamespace(placements=lambda: placements,
                                     stats=types.SimpleNamespace(reschedules=3, conflicts=1))
    daemon = types.SimpleNamespace(members={"c1": member(Health.READY, prober), "c2": member(Health.UNREACHABLE)},
                                   reconciler=types.SimpleNamespace(stats=stats), etcd=None,
                                   replicas=replicas,
                                   dns=types.SimpleNamespace(stats=types.SimpleNamespace(
                                       requests={("udp", "A", "NOERROR"): 8}, dropped={("udp", "malformed"): 1},
                                       durations={("udp",): ({0.001: 8, math.inf: 0}, 0.004)},
                                       tcp_idle_closed=4, tcp_evicted=5, tcp_unread_closed=6)))
    families = scrape(daemon_metrics(daemon))
    assert value(families["fed_dns_cluster_ready"], "fed_dns_cluster_ready", cluster="c1") == 1
    assert value(families["fed_dns_cluster_ready"], "fed_dns_cluster_ready", cluster="c2") == 0
    assert value(families["fed_dns_cluster_probe_failures"], "fed_dns_cluster_probe_failures_total", cluster="c1") == 3
    assert [s.labels for s in families["fed_dns_cluster_probes"]] == [{"cluster": "c1"}]  # c2 has no prober
    assert value(families["fed_dns_watch_events"], "fed_dns_watch_events_total", cluster="c2", kind="services") == 7
    assert value(families["fed_dns_published_records"], "fed_dns_published_records") == 9
    assert value(families["fed_dns_rejected_objects"], "fed_dns_rejected_objects_total", reason="bad-label") == 2
    assert value(families["fed_dns_dns_requests"], "fed_dns_dns_requests_total",
                 protocol="udp", type="A", rcode="NOERROR") == 8
    assert value(families["fed_dns_dns_dropped"], "fed_dns_dns_dropped_total", protocol="udp", reason="malformed") == 1
    assert value(families["fed_dns_dns_request_duration_seconds"], "fed_dns_dns_request_duration_seconds_count",
                 protocol="udp") == 8
    assert "fed_dns_leader" not in families or not families["fed_dns_leader"]  # no etcd: no leader sample
    assert value(families["fed_dns_federated_replicas_desired"], "fed_dns_federated_replicas_desired",
                 workload="default/tomcat", cluster="c2") == 2
    assert value(families["fed_dns_federated_replicas_ready"], "fed_dns_federated_replicas_ready",
                 workload="default/tomcat", cluster="c1") == 1
    assert value(families["fed_dns_federated_reschedules"], "fed_dns_federated_reschedules_total") == 3
    assert value(families["fed_dns_federated_conflicts"], "fed_dns_federated_conflicts") == 1
    assert value(families["fed_dns_dns_tcp_closed"], "fed_dns_dns_tcp_closed_total", reason="unread") == 6
    assert not families.get("fed_dns_metrics_source_errors")


def test_gc_pauses_are_observed_per_generation_and_scraped_for_the_daemon():
    import gc

    from fed_dns.app import runtime

    pauses = runtime.gc_runtime()
    assert runtime.gc_runtime() is pauses  # one callback per process
    before = pauses.snapshot()[("2",)]
    gc.collect(2)
    gc.collect(0)
    after = pauses.snapshot()
    assert sum(after[("2",)][0].values()) == sum(before[0].values()) + 1
    assert after[("2",)][1] > before[1]  # a full collection takes some time
    assert sum(after[("0",)][0].values()) >= 1
    daemon = types.SimpleNamespace(members={}, reconciler=types.SimpleNamespace(stats=types.SimpleNamespace(
        published_services=0, published_records=0, failovers=0, rejected={}, runs=0, failures=0, writes=0)),
        etcd=None, dns=None)
    families = scrape(daemon_metrics(daemon))
    assert value(families["fed_dns_gc_pause_seconds"], "fed_dns_gc_pause_seconds_count",
                 process="daemon", generation="2") >= 1
