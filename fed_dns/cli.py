"""Command line: argparse -> the command's module in fed_dns.app. No logic lives here.

Each command is implemented by `fed_dns.app.<module>.main(args) -> int`; exit status 0 is
success, 1 a runtime failure, 2 bad usage or bad config (operations.md).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from fed_dns import __version__

DEFAULT_CONFIG = "config/fed-dns.yaml"


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default=None, metavar="FILE",
                   help=f"config file (default: $FED_DNS_CONFIG, else {DEFAULT_CONFIG} if present)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fed-dns",
        description="Cross-cluster DNS service discovery for Kubernetes federations.",
    )
    parser.add_argument("--log-format", choices=["text", "json"], default="text",
                        help="log line format (default: text)")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"], help="default: info")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("run", help="the daemon: watch members, health, failover, DNS, etcd records")
    _add_config(p)
    p.set_defaults(module="run")

    p = sub.add_parser("serve", help="DNS only, from the zone's etcd records (scale-out DNS tier)")
    p.add_argument("--etcd", required=True, metavar="URL",
                   help="etcd endpoint(s), comma separated, e.g. http://127.0.0.1:2379")
    p.add_argument("--zone", required=True, help="the federation zone, e.g. fed.example.com.")
    p.add_argument("--listen", default="127.0.0.1:5353", metavar="HOST:PORT",
                   help="UDP and TCP listen address (default: 127.0.0.1:5353)")
    p.add_argument("--prefix", default="/skydns", help="etcd path prefix (default: /skydns)")
    p.add_argument("--workers", type=int, default=1, help="DNS worker processes (SO_REUSEPORT)")
    p.add_argument("--http", default=None, metavar="HOST:PORT",
                   help="metrics/health listener (default: none)")
    p.add_argument("--config", "-c", default=None, metavar="FILE",
                   help="a fed-dns config to take the answer order from: its topology section "
                        "and the clusters' regions and weights (default: plain rotation)")
    p.set_defaults(module="serve")

    p = sub.add_parser("demo", help="simulated member clusters + the daemon, no Kubernetes or etcd")
    p.add_argument("--clusters", type=int, default=3, help="number of simulated clusters (default 3)")
    p.add_argument("--listen", default="127.0.0.1:5353", metavar="HOST:PORT",
                   help="DNS listen address (default: 127.0.0.1:5353)")
    p.add_argument("--http", default="127.0.0.1:9153", metavar="HOST:PORT",
                   help="metrics/status listener (default: 127.0.0.1:9153)")
    p.add_argument("--etcd", default=None, metavar="URL", help="also write records to this etcd")
    p.add_argument("--api", default="127.0.0.1:6443", metavar="HOST:PORT",
                   help="federation API listen address (default: 127.0.0.1:6443)")
    p.add_argument("--workdir", default=None, metavar="DIR",
                   help="where the kubeconfigs go (federation.kubeconfig, <cluster>.kubeconfig); "
                        "default: a new temporary directory, removed at the end")
    p.add_argument("--kill", default=None, metavar="CLUSTER", help="kill this cluster after --after s")
    p.add_argument("--join-after", type=float, default=None, metavar="SECONDS",
                   help="start one more simulated cluster after this long and join it through "
                        "the federation API (a Karmada Cluster + Secret): it gets replicas and "
                        "answers in DNS")
    p.add_argument("--after", type=float, default=10.0, metavar="SECONDS",
                   help="when to kill (default 10)")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="stop after this long (default: run until Ctrl-C)")
    p.set_defaults(module="demo")

    p = sub.add_parser("check-config", help="validate a config; print every problem with its path")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(module="check_config")

    for name, text in (("status", "clusters, health, Services, leader, etcd state"),
                       ("records", "published names and their targets")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--url", default="http://127.0.0.1:9153",
                       help="the running daemon's HTTP endpoint (default: http://127.0.0.1:9153)")
        p.add_argument("--etcd", default=None, metavar="URL",
                       help="read from etcd instead of the daemon (records)")
        p.add_argument("--zone", default=None, help="zone, with --etcd")
        p.add_argument("--prefix", default="/skydns", help="etcd path prefix, with --etcd")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.add_argument("--token-file", default=None, metavar="FILE",
                       help="bearer token for a daemon whose http.token_file is set")
        p.set_defaults(module=name)

    p = sub.add_parser("kubeconfig", help="print a kubeconfig for the federation API "
                       "(context `federation`; use with kubectl)")
    _add_config(p)
    p.add_argument("--output", "-o", default=None, metavar="FILE",
                   help="write it to FILE, mode 0600 from its creation (kubectl reads a "
                        "kubeconfig more than once: a file, not a pipe)")
    p.set_defaults(module="kubeconfig_cmd")

    p = sub.add_parser("sim", help="run one simulated member cluster (Kubernetes API) until stopped")
    p.add_argument("--name", required=True, help="cluster name (also the kubeconfig context)")
    p.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT")
    p.add_argument("--kubeconfig", required=True, metavar="FILE", help="where to write its kubeconfig")
    p.add_argument("--token", default=None, help="bearer token (default: random)")
    p.set_defaults(module="sim")

    p = sub.add_parser("version", help="print the version")
    p.set_defaults(module=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.module is None:
        print(f"fed-dns {__version__}")
        return 0
    try:
        command = importlib.import_module(f"fed_dns.app.{args.module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"fed_dns.app.{args.module}":
            raise
        print(f"fed-dns {args.command}: not implemented yet", file=sys.stderr)
        return 1
    try:
        return int(command.main(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
