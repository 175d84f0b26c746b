"""Frozen dataclasses that flow between fed-dns packages. Stdlib only, no asyncio."""

from fed_dns.model.cluster import ClusterSpec, Health
from fed_dns.model.records import AllUnhealthy, Changes, DesiredZone, Record, ZoneSettings
from fed_dns.model.service import Backend, ClusterView, Port, Publish, ServiceKey, ServiceView

__all__ = [
    "AllUnhealthy",
    "Backend",
    "Changes",
    "ClusterSpec",
    "ClusterView",
    "DesiredZone",
    "Health",
    "Port",
    "Publish",
    "Record",
    "ServiceKey",
    "ServiceView",
    "ZoneSettings",
]
