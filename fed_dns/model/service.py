"""What the watchers see in a member cluster, already reduced to what DNS publishes."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class Publish(enum.StrEnum):
    """Which addresses of a Service are published (naming.md, 'What is published')."""

    AUTO = "auto"
    LOADBALANCER = "loadbalancer"
    CLUSTERIP = "clusterip"
    ENDPOINTS = "endpoints"


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class ServiceKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Port:
    """A port of a Service or endpoint. `name` is empty for an unnamed port."""

    name: str
    port: int
    protocol: str = "TCP"  # TCP | UDP | SCTP, as Kubernetes spells it


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Backend:
    """One published target of a Service in one cluster.

    `address` is an IPv4/IPv6 address (an A/AAAA record) or a DNS name (a CNAME: an
    ExternalName or a load-balancer ingress hostname). `hostname` is the pod hostname of a
    headless Service's endpoint (it becomes the record's `<id>` and a name of its own).
    `ports` are the ports this target serves (Service ports for a ClusterIP or load balancer,
    endpoint ports for endpoints).
    """

    address: str
    hostname: str | None = None
    ports: tuple[Port, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceView:
    """An exported Service in one cluster.

    `backends` are the ready targets chosen by the publish mode. `ready` is the Service's
    health in that cluster: at least one ready endpoint (always True for ExternalName).
    `probe` is the data-plane probe annotation (`tcp`, `http:/path`) or None.
    """

    key: ServiceKey
    backends: tuple[Backend, ...] = ()
    ready: bool = True
    probe: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterView:
    """Everything one member publishes. Immutable by convention: replaced, never mutated.

    `synced` is True once the first full list of every watched kind is in. A view outlives
    a broken watch: it keeps the last known Services, which failover and serve-all need.
    """

    cluster: str
    synced: bool = False
    services: Mapping[ServiceKey, ServiceView] = field(default_factory=dict)
