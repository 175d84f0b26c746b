"""The config schema: frozen pydantic models, unknown keys forbidden. Durations are float seconds.

Build a Config with `fed_dns.config.parse` or `load`: they also run the checks that span
several keys (checks.py) and turn pydantic's errors into readable problems.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from fed_dns.config import kubeconfig
from fed_dns.config.values import (
    AutoOrCount,
    Cidr,
    FilePath,
    KubeLabelKey,
    KubeLabelValue,
    Label,
    Listen,
    NamespacePattern,
    OffIsFalse,
    OffOrSecondOrMore,
    OwnerId,
    PositiveDuration,
    Prefix,
    SecondOrMore,
    Ttl,
    Url,
    Zone,
    normalize_zone,
    split_listen,
)
from fed_dns.model import AllUnhealthy, ClusterSpec, Publish, ZoneSettings

DEFAULT_ZONE = "fed.example.com."

Count = Annotated[int, Field(strict=True, ge=1)]
Weight = Annotated[int, Field(strict=True, ge=0)]
Flag = Annotated[bool, Field(strict=True)]
Text = Annotated[str, Field(min_length=1)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NamespacesSection(Section):
    """Which namespaces `export: all` publishes: include patterns minus exclude patterns."""

    include: tuple[NamespacePattern, ...] = ("*",)
    exclude: tuple[NamespacePattern, ...] = ("kube-system",)

    def selects(self, namespace: str) -> bool:
        def hit(patterns: tuple[str, ...]) -> bool:
            return any(fnmatch.fnmatchcase(namespace, p) for p in patterns)
        return hit(self.include) and not hit(self.exclude)


class ClusterSection(Section):
    """A member cluster. No kubeconfig: the default one; no context: its current context."""

    name: Label
    kubeconfig: FilePath | None = None
    context: Text | None = None
    region: Label | None = None
    zone_label: Label | None = None
    weight: Weight = 1
    labels: dict[KubeLabelKey, KubeLabelValue] = {}

    def spec(self) -> ClusterSpec:
        return ClusterSpec(name=self.name, kubeconfig=self.kubeconfig, context=self.context,
                           region=self.region, zone_label=self.zone_label, weight=self.weight,
                           labels=tuple(sorted(self.labels.items())))


class HealthSection(Section):
    period: PositiveDuration = 1.0
    timeout: PositiveDuration = 1.0
    failure_threshold: Count = 3
    success_threshold: Count = 2


class _Listener(Section):
    listen: Listen

    @property
    def host(self) -> str:
        """The host without IPv6 brackets."""
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]


def available_cpus() -> int:
    """CPUs this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


class DnsSection(_Listener):
    listen: Listen = "127.0.0.1:5353"
    # DNS processes apart from the daemon (0: the daemon's own loop answers); `auto`: one where
    # the daemon may run on two CPUs or more, so answers never wait on the control work.
    workers: AutoOrCount = "auto"
    # With workers: the daemon's own threads (watches, reconcile, etcd writes, API) this much
    # nicer than its DNS workers, so a query's worker gets a CPU before control work does.
    control_nice: Annotated[int, Field(strict=True, ge=0, le=19)] = 5
    tcp_idle_timeout: PositiveDuration = 10.0
    max_tcp_connections: Count = 1000
    max_udp_size: Annotated[int, Field(strict=True, ge=512, le=65535)] = 1232
    max_tcp_unsent: Annotated[int, Field(strict=True, ge=4096, le=64 * 2**20)] = 131072

    @property
    def worker_processes(self) -> int:
        """How many worker processes answer DNS (`workers` with `auto` resolved here)."""
        if self.workers != "auto":
            return self.workers
        return 1 if available_cpus() >= 2 else 0


class HttpSection(_Listener):
    listen: Listen = "127.0.0.1:9153"
    token_file: FilePath | None = None  # /status and /records need its bearer token

    def token(self) -> str | None:
        """The bearer token of `token_file` (first line), None when not set."""
        if self.token_file is None:
            return None
        with open(self.token_file, encoding="utf-8") as f:
            return f.readline().strip() or None


class ApiSection(_Listener):
    """The federation API (kubectl's endpoint): HTTPS with bearer tokens. Files not given
    are generated on first start in `dir` (a self-signed certificate, a token, mode 0600)."""

    enabled: Flag = True
    listen: Listen = "127.0.0.1:6443"
    dir: FilePath | None = None  # None: ~/.local/state/fed-dns/api
    cert_file: FilePath | None = None
    key_file: FilePath | None = None
    ca_file: FilePath | None = None
    token_file: FilePath | None = None


class TlsSection(Section):
    ca_file: FilePath | None = None
    cert_file: FilePath | None = None
    key_file: FilePath | None = None


class EtcdSection(Section):
    """No endpoints: records live only in the DNS table (operations.md)."""

    endpoints: tuple[Url, ...] = ()
    prefix: Prefix = "/skydns"
    tls: TlsSection = TlsSection()
    username: Text | None = None
    password: SecretStr | None = None
    timeout: PositiveDuration = 5.0
    max_txn_ops: Annotated[int, Field(strict=True, ge=1, le=100_000)] = 128
    write_concurrency: Annotated[int, Field(strict=True, ge=1, le=64)] = 4
    # etcd's history trimmed this often (kube-apiserver's --etcd-compaction-interval); 0: off
    compaction_interval: OffOrSecondOrMore = 300.0

    @property
    def enabled(self) -> bool:
        return bool(self.endpoints)


class LeaderElectionSection(Section):
    enabled: Flag = True
    lease_ttl: SecondOrMore = 5.0


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TopologySection(Section):
    """Client subnet -> region, for topology-aware answer order (answers.md)."""

    mode: Annotated[Literal["off", "order", "local-first"], OffIsFalse] = "off"
    subnets: dict[Cidr, Label] = {}
    trust_ecs: Flag = False

    def networks(self) -> tuple[tuple[Network, str], ...]:
        """(network, region), most specific first: the first that contains a client wins."""
        pairs = [(ipaddress.ip_network(cidr), region) for cidr, region in self.subnets.items()]
        return tuple(sorted(pairs, key=lambda p: (p[0].version, -p[0].prefixlen, str(p[0]))))


class ReconcileSection(Section):
    """How the reconcile loop paces itself (cost follows the change; see README)."""

    chunk: Annotated[int, Field(strict=True, ge=1, le=100_000)] = 20
    slice: PositiveDuration = 0.02
    resync_period: PositiveDuration = 300.0


class WatchSection(Section):
    inactivity_timeout: PositiveDuration = 60.0
    backoff_max: PositiveDuration = 30.0
    sync_grace: PositiveDuration = 30.0


class Config(Section):
    """The whole config file. Every key has a default; no clusters means kubeconfig contexts."""

    zone: Zone = DEFAULT_ZONE
    owner_id: OwnerId = "fed-dns/" + DEFAULT_ZONE
    ttl: Ttl = 5
    publish: Publish = Publish.AUTO
    export: Literal["annotated", "all"] = "annotated"
    namespaces: NamespacesSection = NamespacesSection()
    all_unhealthy: AllUnhealthy = AllUnhealthy.SERVE_ALL
    clusters: tuple[ClusterSection, ...] = ()
    health: HealthSection = HealthSection()
    dns: DnsSection = DnsSection()
    etcd: EtcdSection = EtcdSection()
    http: HttpSection = HttpSection()
    api: ApiSection = ApiSection()
    leader_election: LeaderElectionSection = LeaderElectionSection()
    topology: TopologySection = TopologySection()
    watch: WatchSection = WatchSection()
    reconcile: ReconcileSection = ReconcileSection()
    unschedulable_after: PositiveDuration = 60.0

    @model_validator(mode="before")
    @classmethod
    def _owner_from_zone(cls, data: Any) -> Any:
        """owner_id defaults to fed-dns/<zone> of the (normalised) zone."""
        if isinstance(data, Mapping) and "owner_id" not in data and isinstance(data.get("zone"), str):
            try:
                return {**data, "owner_id": "fed-dns/" + normalize_zone(data["zone"])}
            except ValueError:
                return data
        return data

    def zone_settings(self) -> ZoneSettings:
        return ZoneSettings(zone=self.zone, prefix=self.etcd.prefix, owner_id=self.owner_id,
                            ttl=self.ttl, all_unhealthy=self.all_unhealthy)

    def cluster_specs(self, *, environ: Mapping[str, str] | None = None) -> tuple[ClusterSpec, ...]:
        """The members: the configured clusters, else every context of the current kubeconfig.

        Raises ConfigError when the kubeconfig is missing, unreadable, has no contexts or a
        context whose name is not a DNS label.
        """
        if self.clusters:
            return tuple(c.spec() for c in self.clusters)
        return kubeconfig.context_specs(environ=os.environ if environ is None else environ)


__all__ = [
    "ClusterSection", "Config", "DnsSection", "EtcdSection", "HealthSection",
    "HttpSection", "LeaderElectionSection", "NamespacesSection", "ReconcileSection", "TlsSection", "TopologySection",
    "WatchSection",
]
