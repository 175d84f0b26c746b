"""The fed-dns config: schema, validation, and the members it defaults to.

    config = fed_dns.config.load("config/fed-dns.yaml")   # or parse(data, source=...)
    config.zone_settings(); config.cluster_specs(); config.health.period  # float seconds

Every problem is a `Problem(file, path, message, line)`; `ConfigError.problems` lists them all.
Stdlib, PyYAML, pydantic and fed_dns.model only (import-linter).
"""

from fed_dns.config.errors import ConfigError, Problem
from fed_dns.config.loader import load, parse
from fed_dns.config.schema import (
    ClusterSection,
    Config,
    DnsSection,
    EtcdSection,
    HealthSection,
    HttpSection,
    LeaderElectionSection,
    NamespacesSection,
    ReconcileSection,
    TlsSection,
    TopologySection,
    WatchSection,
)
from fed_dns.config.values import parse_duration, split_listen

__all__ = [
    "ClusterSection",
    "Config",
    "ConfigError",
    "DnsSection",
    "EtcdSection",
    "HealthSection",
    "HttpSection",
    "LeaderElectionSection",
    "NamespacesSection",
    "Problem",
    "ReconcileSection",
    "TlsSection",
    "TopologySection",
    "WatchSection",
    "load",
    "parse",
    "parse_duration",
    "split_listen",
]
