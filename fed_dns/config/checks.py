"""Checks that span several keys, run on the raw data so they report even when other keys fail."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fed_dns.config.errors import Problem
from fed_dns.config.values import is_label, shown


def _section(data: Mapping, key: str) -> Mapping:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def _clusters(data: Mapping, *, source: str) -> tuple[list[Problem], set[str] | None]:
    """Duplicate names, and the configured regions (None when no clusters are listed)."""
    clusters = data.get("clusters")
    if not isinstance(clusters, list) or not clusters:
        return [], None
    problems, first, regions = [], {}, set()
    for i, cluster in enumerate(c if isinstance(c, Mapping) else {} for c in clusters):
        name, region = cluster.get("name"), cluster.get("region")
        if isinstance(name, str) and name in first:
            problems.append(Problem(file=source, path=f"clusters[{i}].name", message=(
                f"expected a unique cluster name, got {shown(name)} again (as clusters[{first[name]}].name)")))
        elif isinstance(name, str):
            first[name] = i
        if isinstance(region, str):
            regions.add(region)
    return problems, regions


def _pairs(data: Mapping, *, source: str) -> list[Problem]:
    """Keys that only make sense together: a certificate and its key (etcd client, federation
    API server), a user and a password."""
    etcd = _section(data, "etcd")
    tls = _section(etcd, "tls")
    api = _section(data, "api")
    pairs = [(tls, "cert_file", "key_file", "etcd.tls", "a client key file"),
             (tls, "key_file", "cert_file", "etcd.tls", "a client certificate file"),
             (etcd, "username", "password", "etcd", "a password"),
             (etcd, "password", "username", "etcd", "a user name"),
             (api, "cert_file", "key_file", "api", "the certificate's key file"),
             (api, "key_file", "cert_file", "api", "the key's certificate file")]
    return [Problem(file=source, path=f"{where}.{missing}", message=f"expected {what} to go with {where}.{given}")
            for section, given, missing, where, what in pairs
            if section.get(given) is not None and section.get(missing) is None]


def _subnet_regions(data: Mapping, *, regions: set[str] | None, source: str) -> list[Problem]:
    subnets = _section(_section(data, "topology"), "subnets")
    if regions is None:
        return []
    known = ", ".join(sorted(regions)) if regions else "no cluster has a region"
    return [Problem(file=source, path=f"topology.subnets[{cidr}]",
                    message=f"expected the region of a configured cluster ({known}), got {shown(region)}")
            for cidr, region in subnets.items()
            if isinstance(region, str) and is_label(region) and region not in regions]


def cross_checks(data: Mapping[str, Any], *, source: str) -> list[Problem]:
    problems, regions = _clusters(data, source=source)
    return problems + _pairs(data, source=source) + _subnet_regions(data, regions=regions, source=source)
