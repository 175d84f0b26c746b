"""`fed-dns check-config FILE`: 0 and a short summary when valid, 2 and every problem when not."""

from __future__ import annotations

import argparse
import sys

from fed_dns.config import Config, ConfigError, load


def main(args: argparse.Namespace) -> int:
    try:
        config = load(args.file)
    except ConfigError as exc:
        count = len(exc.problems)
        print(exc, file=sys.stderr)
        print(f"{args.file}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return 2
    problems = member_problems(config, file=args.file)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        count = len(problems)
        print(f"{args.file}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return 2
    print(f"{args.file}: OK")
    for line in summary(config):
        print(f"  {line}")
    return 0


def member_problems(config: Config, *, file: str) -> list[str]:
    """Every member's kubeconfig and context loaded as `run` would load them (no network):
    one line per member that cannot be used (never a credential). With no clusters listed
    and no kubeconfig here, nothing to load: the summary says so."""
    from fed_dns.watch.kubeconfig import KubeconfigError, load

    try:
        specs = config.cluster_specs()
    except ConfigError:
        return []  # no clusters listed and no usable kubeconfig here: said in the summary
    where = "clusters" if config.clusters else "kubeconfig context"
    problems = []
    for index, spec in enumerate(specs):
        try:
            client = load(spec)
        except KubeconfigError as exc:
            label = f"clusters[{index}]" if config.clusters else f"{where} {spec.name!r}"
            problems.append(f"{file}: {label}: {exc}")
            continue
        client.close()
    return problems


def summary(config: Config) -> list[str]:
    etcd = ", ".join(config.etcd.endpoints) or "none (records live only in the DNS table)"
    return [
        f"zone: {config.zone} (owner {config.owner_id}, ttl {config.ttl}s)",
        f"clusters: {_clusters(config)}",
        f"dns: {config.dns.listen}, http: {config.http.listen}",
        f"etcd: {etcd}",
    ]


def _clusters(config: Config) -> str:
    if config.clusters:
        return ", ".join(c.name + (f" ({c.region})" if c.region else "") for c in config.clusters)
    try:
        names = ", ".join(spec.name for spec in config.cluster_specs())
    except ConfigError as exc:
        first = exc.problems[0]
        return f"none listed: the kubeconfig contexts, not usable here ({first})"
    return f"none listed: the kubeconfig contexts: {names}"
