"""Prometheus metrics of the daemon, read from plain counters at scrape time.

Nothing on a hot path touches prometheus_client. Every part keeps plain Python numbers (the
DNS server a dict of ints, the probers and watchers small stats objects); the app registers
a *source* per metric, a callable that reads them, and a scrape calls every source once:

    metrics = Metrics()
    metrics.add_source("dns_requests_total", lambda: server.stats.requests)
    metrics.add_source("leader", lambda: int(elector.is_leader))
    body = metrics.render()            # Prometheus text format, for GET /metrics

The metric names and labels are fixed in `FAMILIES` (operations.md, "Metrics"); the
`fed_dns_` prefix is added here. A source returns:

- for a metric without labels: a number;
- for a counter or gauge with labels: `Mapping[tuple[str, ...], number]`, label values in
  the family's order (a plain `str` key is accepted for a one-label family);
- for a histogram: `(counts, sum)` where `counts` maps each bucket's upper bound (with
  `math.inf` last) to the observations in that bucket alone (not cumulative), or a Mapping
  of label tuples to such pairs. `LocalHistogram` keeps exactly that for you.

Several sources of one metric are added together (e.g. UDP and TCP listeners). A source that
raises or returns the wrong shape is skipped and counted in
`fed_dns_metrics_source_errors_total{metric}`; the scrape still succeeds.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from fed_dns import __version__
from fed_dns.model import Health

log = logging.getLogger(__name__)

PREFIX = "fed_dns_"
DNS_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class Family:
    kind: str  # counter | gauge | histogram
    labels: tuple[str, ...]
    help: str


FAMILIES: dict[str, Family] = {
    "dns_requests_total": Family("counter", ("protocol", "type", "rcode"), "DNS requests answered, by protocol, question type and response code."),
    "dns_dropped_total": Family("counter", ("protocol", "reason"), "DNS packets dropped or refused without an answer (malformed, connection cap, ...)."),
    "dns_request_duration_seconds": Family("histogram", ("protocol",), "Time from a DNS request read to its answer sent; every request, answered or dropped (UDP: the requests of one recvmmsg batch each observed with the batch's read-to-sent time)."),
    "cluster_ready": Family("gauge", ("cluster",), "1 when the member cluster's API is ready, else 0."),
    "cluster_synced": Family("gauge", ("cluster",), "1 once the member's first full list is in."),
    "cluster_health_transitions_total": Family("counter", ("cluster",), "Health state changes of a member cluster."),
    "cluster_probes_total": Family("counter", ("cluster",), "Health probes sent to a member's API server."),
    "cluster_probe_failures_total": Family("counter", ("cluster",), "Health probes that failed."),
    "watch_events_total": Family("counter", ("cluster", "kind"), "Watch events received, by member and kind."),
    "watch_restarts_total": Family("counter", ("cluster", "kind"), "Watches restarted (errors, 410 Gone, inactivity)."),
    "published_services": Family("gauge", (), "Services published in the zone."),
    "published_records": Family("gauge", (), "Records (etcd keys) in the desired zone."),
    "etcd_writes_total": Family("counter", (), "etcd transactions written."),
    "etcd_errors_total": Family("counter", (), "etcd operations that failed."),
    "etcd_compactions_total": Family("counter", (), "Compactions of etcd's history this replica made (etcd.compaction_interval; one replica compacts per interval)."),
    "event_to_answer_lag_seconds": Family("histogram", (), "Time from a change in a member to the DNS table that answers it."),
    "failovers_total": Family("counter", (), "Cluster-level records replaced by a fallback CNAME."),
    "federated_replicas_desired": Family("gauge", ("workload", "cluster"), "Replicas a federated workload places in a member."),
    "federated_replicas_ready": Family("gauge", ("workload", "cluster"), "Ready replicas of a federated workload in a member."),
    "federated_reschedules_total": Family("counter", (), "Placements of federated workloads that moved replicas between members."),
    "federated_conflicts": Family("gauge", (), "(workload, member) pairs where an object fed-dns does not own holds the name."),
    "dns_tcp_closed_total": Family("counter", ("reason",), "TCP connections the server closed: idle (no query within the deadline), evicted (the cap was full), unread (answers left unread past dns.max_tcp_unsent)."),
    "leader": Family("gauge", (), "1 while this replica holds the leader lease, else 0."),
    "rejected_objects_total": Family("counter", ("reason",), "Objects not published because they failed validation, by reason code (cluster, namespace, service, hostname, port, protocol, address, name, duplicate; undecidable: a Service whose objects no API server would send, kept as last published); the objects themselves are logged."),
    "source_stale_seconds": Family("gauge", (), "Age of the record source (etcd) data while it is unreachable, 0 when live."),
    "gc_pause_seconds": Family("histogram", ("process", "generation"), "Collections of Python's cyclic garbage collector and how long each held the interpreter, by process (daemon, dns-worker-N) and generation: a long one stalls everything that process does."),
    "reconcile_runs_total": Family("counter", (), "Reconcile runs."),
    "reconcile_failures_total": Family("counter", (), "Reconcile runs that failed (and were retried)."),
}

Source = Callable[[], Any]


class LocalHistogram:
    """A histogram as plain numbers, cheap enough for any path: `observe()` is a bisect."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = LAG_BUCKETS) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def snapshot(self) -> tuple[dict[float, int], float]:
        return dict(zip((*self.bounds, math.inf), self.counts)), self.sum


class Metrics:
    """The daemon's registry: `add_source()`, then `render()` (or `registry` for tools)."""

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry()
        self._sources: dict[str, list[Source]] = {}
        self.source_errors: dict[str, int] = {}
        self.registry.register(_SourceCollector(self))
        if process:
            ProcessCollector(registry=self.registry)

    def add_source(self, name: str, fn: Source) -> Callable[[], None]:
        """Read metric `name` (with or without the prefix) from `fn` at scrape time.

        Returns a function that removes the source again.
        """
        name = name.removeprefix(PREFIX)
        if name not in FAMILIES:
            raise KeyError(f"unknown metric {name!r}; known: {', '.join(sorted(FAMILIES))}")
        self._sources.setdefault(name, []).append(fn)
        return lambda: self._sources[name].remove(fn)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def _read(self, name: str, family: Family) -> dict[tuple[str, ...], Any] | None:
        total: dict[tuple[str, ...], Any] | None = None
        for fn in list(self._sources.get(name, ())):
            try:
                values = _normalize(fn(), family)
            except Exception as exc:  # noqa: BLE001 - a broken source never breaks a scrape
                self.source_errors[name] = self.source_errors.get(name, 0) + 1
                if self.source_errors[name] == 1:
                    log.warning("metric source for %s failed: %s: %s", name, type(exc).__name__, exc)
                continue
            total = _add(total or {}, values, family)
        return total


def _normalize(value: Any, family: Family) -> dict[tuple[str, ...], Any]:
    histogram = family.kind == "histogram"
    if not family.labels and not isinstance(value, Mapping):
        value = {(): value}
    if not isinstance(value, Mapping):
        raise TypeError(f"wants a Mapping of label tuples, got {type(value).__name__}")
    out: dict[tuple[str, ...], Any] = {}
    for labels, v in value.items():
        labels = (labels,) if isinstance(labels, str) else tuple(str(x) for x in labels)
        if len(labels) != len(family.labels):
            raise ValueError(f"wants labels {family.labels}, got {labels}")
        if histogram:
            counts, total = v
            out[labels] = ({float(b): int(c) for b, c in counts.items()}, float(total))
        else:
            out[labels] = float(v)
    return out


def _add(into: dict, values: dict, family: Family) -> dict:
    for labels, v in values.items():
        if family.kind != "histogram":
            into[labels] = into.get(labels, 0.0) + v
            continue
        counts, total = into.get(labels, ({}, 0.0))
        merged = dict(counts)
        for bound, c in v[0].items():
            merged[bound] = merged.get(bound, 0) + c
        into[labels] = (merged, total + v[1])
    return into


def _family(name: str, family: Family) -> Metric:
    full = PREFIX + name
    if family.kind == "counter":
        return CounterMetricFamily(full, family.help, labels=family.labels)
    if family.kind == "gauge":
        return GaugeMetricFamily(full, family.help, labels=family.labels)
    return HistogramMetricFamily(full, family.help, labels=family.labels)


class _SourceCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self):
        yield GaugeMetricFamily(PREFIX + "build_info", "")
        yield CounterMetricFamily(PREFIX + "metrics_source_errors", "", labels=("metric",))
        for name, family in FAMILIES.items():
            yield _family(name, family)

    def collect(self):
        info = GaugeMetricFamily(PREFIX + "build_info", "fed-dns version (always 1).", labels=("version",))
        info.add_metric((__version__,), 1)
        yield info
        for name, family in FAMILIES.items():
            values = self._metrics._read(name, family)
            if values is None:
                continue
            metric = _family(name, family)
            for labels, value in sorted(values.items()):
                if family.kind == "histogram":
                    counts, total = value
                    cumulative, buckets = 0, []
                    for bound in sorted(counts):
                        cumulative += counts[bound]
                        buckets.append(("+Inf" if bound == math.inf else repr(bound), cumulative))
                    if not buckets or buckets[-1][0] != "+Inf":
                        buckets.append(("+Inf", cumulative))
                    metric.add_metric(labels, buckets, total)
                else:
                    metric.add_metric(labels, value)
            yield metric
        errors = CounterMetricFamily(PREFIX + "metrics_source_errors",
                                     "Metric sources that failed at scrape time.", labels=("metric",))
        for name, count in sorted(self._metrics.source_errors.items()):
            errors.add_metric((name,), count)
        yield errors


def daemon_metrics(daemon: Any) -> Metrics:
    """The `fed-dns run` wiring: sources reading the daemon's plain stats at scrape time.

    Parts the daemon does not have (no etcd, no DNS server yet) simply give no samples.
    """
    metrics = Metrics()
    members = lambda: daemon.members.items()  # noqa: E731 - read at scrape time
    rec = lambda: daemon.reconciler.stats  # noqa: E731
    per_member = {
        "cluster_ready": lambda m: int(m.health == Health.READY),
        "cluster_synced": lambda m: int(bool(m.view.synced)),
        "cluster_health_transitions_total": lambda m: m.transitions,
        "cluster_probes_total": lambda m: m.prober.counters.probes,
        "cluster_probe_failures_total": lambda m: m.prober.counters.failures,
    }
    for name, read in per_member.items():
        metrics.add_source(name, lambda read=read: _each(members(), read))
    for name, attr in (("watch_events_total", "events"), ("watch_restarts_total", "restarts")):
        metrics.add_source(name, lambda attr=attr: {
            (cluster, kind): n for cluster, m in members()
            for kind, n in (getattr(getattr(m.watcher, "stats", None), attr, None) or {}).items()})
    metrics.add_source("published_services", lambda: rec().published_services)
    metrics.add_source("published_records", lambda: rec().published_records)
    metrics.add_source("failovers_total", lambda: rec().failovers)
    metrics.add_source("rejected_objects_total", lambda: dict(rec().rejected))
    metrics.add_source("reconcile_runs_total", lambda: rec().runs)
    metrics.add_source("reconcile_failures_total", lambda: rec().failures)
    metrics.add_source("etcd_writes_total", lambda: rec().writes if daemon.etcd is not None else {})
    compactor = lambda: None if daemon.etcd is None else getattr(daemon.etcd, "compactor", None)  # noqa: E731
    metrics.add_source("etcd_compactions_total",
                       lambda: {} if compactor() is None else compactor().compactions)
    lag = getattr(daemon.reconciler.stats, "lag", None)
    if isinstance(lag, LocalHistogram):
        metrics.add_source("event_to_answer_lag_seconds", lag.snapshot)
    metrics.add_source("leader", lambda: {} if daemon.etcd is None else int(
        daemon.etcd.leader is None or bool(daemon.etcd.leader.is_leader)))
    metrics.add_source("source_stale_seconds", lambda: {} if daemon.etcd is None
                       else float(daemon.etcd.mirror.stale_seconds))
    replicas = lambda: getattr(daemon, "replicas", None)  # noqa: E731
    for metric, field in (("federated_replicas_desired", "desired"), ("federated_replicas_ready", "ready")):
        metrics.add_source(metric, lambda field=field: {} if replicas() is None else {
            (f"{p['namespace']}/{p['name']}", row["cluster"]): row[field]
            for p in replicas().placements() for row in p["clusters"]})
    metrics.add_source("federated_reschedules_total",
                       lambda: {} if replicas() is None else replicas().stats.reschedules)
    metrics.add_source("federated_conflicts",
                       lambda: {} if replicas() is None else replicas().stats.conflicts)
    from fed_dns.app.workers import tcp_closed

    dns_stats = lambda: getattr(daemon.dns, "stats", None)  # noqa: E731 - None with DNS workers
    metrics.add_source("dns_tcp_closed_total", lambda: {} if dns_stats() is None else tcp_closed(dns_stats()))
    metrics.add_source("dns_requests_total", lambda: getattr(dns_stats(), "requests", None) or {})
    metrics.add_source("dns_dropped_total", lambda: getattr(dns_stats(), "dropped", None) or {})
    metrics.add_source("dns_request_duration_seconds", lambda: getattr(dns_stats(), "durations", None) or {})
    from fed_dns.app import runtime

    pauses = runtime.gc_runtime()
    metrics.add_source("gc_pause_seconds", lambda: {("daemon", *g): v for (g,), v in pauses.snapshot().items()})
    pool = getattr(daemon, "workers", None)  # the DNS worker processes (started before HTTP)
    for index in pool.indices if pool is not None else ():
        for metric, kind in (("dns_requests_total", "requests"), ("dns_dropped_total", "dropped"),
                             ("dns_request_duration_seconds", "durations"),
                             ("dns_tcp_closed_total", "tcp_closed")):
            metrics.add_source(metric, lambda i=index, k=kind: pool.counters(i, k))
        metrics.add_source("gc_pause_seconds", lambda i=index: {
            (f"dns-worker-{i}", *g): v for g, v in pool.counters(i, "gc").items()})
    return metrics


def _each(members, read) -> dict[tuple[str], float]:
    out = {}
    for name, member in members:
        try:
            out[(name,)] = read(member)
        except AttributeError:  # that part (a prober) is not there
            continue
    return out
