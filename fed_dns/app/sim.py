"""`fed-dns sim`: one simulated member cluster (Kubernetes API) until SIGINT or SIGTERM.

    fed-dns sim --name c1 --listen 127.0.0.1:6443 --kubeconfig /tmp/c1.kubeconfig

Writes a kubeconfig whose context is the cluster's name, prints the URL and the kubeconfig
path (never the token), and exits 0 on a signal. Exit 2 for a bad --name or --listen, 1 when
the address cannot be bound.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def parse_listen(text: str) -> tuple[str, int]:
    """"host:port" or "[v6]:port" -> (host, port); ValueError with the reason."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"port must be a number from 0 to 65535, got {port!r}")
    return host, int(port)


def _usage(message: str) -> int:
    print(f"fed-dns sim: {message}", file=sys.stderr)
    return 2


def main(args) -> int:
    if not _LABEL.match(args.name or ""):
        return _usage(f"--name {args.name!r} is not a cluster name (a lower-case RFC 1123 "
                      "label: a-z, 0-9 and '-', at most 63 characters)")
    try:
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        return _usage(f"--listen: {exc}")
    return asyncio.run(_serve(name=args.name, host=host, port=port,
                              kubeconfig=args.kubeconfig, token=args.token))


async def _serve(*, name: str, host: str, port: int, kubeconfig: str, token: str | None) -> int:
    from fed_dns.sim.cluster import SimCluster

    # TLS, because kubectl sends a kubeconfig's token only over https.
    cluster = SimCluster(name=name, token=token, use_tls=True)
    try:
        await cluster.start(host=host, port=port)
    except OSError as exc:
        print(f"fed-dns sim: cannot listen on {host}:{port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            path = cluster.write_kubeconfig(kubeconfig)
        except OSError as exc:
            print(f"fed-dns sim: cannot write the kubeconfig {kubeconfig}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"cluster {name} serving the Kubernetes API at {cluster.url}", flush=True)
        print(f"kubeconfig: {path} (context {name})", flush=True)
        await stop.wait()
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await cluster.close()
