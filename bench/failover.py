#!/usr/bin/env python3
"""Failover benchmark (run by hand; prints JSON).

Per run: 3 member clusters as `fed-dns sim` processes, a real etcd, `fed-dns run` with the
default health settings (period 1 s, 3 failures, 2 successes). SIGKILL one member's API
server and time (a) until the built-in DNS server no longer answers its backends and (b)
until its keys are gone from etcd (replaced by the fallback CNAME). Also: event-to-answer lag
(an EndpointSlice readiness flip in a member -> the DNS answer changes), p50/p99.

    .venv/bin/python bench/failover.py [--runs 10] [--lag-samples 100]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402

from tests.e2e.harness import etcd_items  # noqa: E402
from tests.support import LOOPBACK, REPO, free_port, running_etcd, stop_process, wait_for  # noqa: E402

import dns.message  # noqa: E402
import dns.query  # noqa: E402


def start_sim(name: str, tmp: Path) -> tuple[subprocess.Popen, Path]:
    kubeconfig = tmp / f"{name}.kubeconfig"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "fed_dns.cli", "sim", "--name", name, "--listen",
                             f"{LOOPBACK}:{port}", "--kubeconfig", str(kubeconfig)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(kubeconfig.exists, timeout=20, what=f"sim {name}")
    return proc, kubeconfig


def seed(kubeconfig: Path, index: int, ready: bool = True) -> None:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        core, disc = client.CoreV1Api(api), client.DiscoveryV1Api(api)
        for call in (lambda: core.create_namespace({"metadata": {"name": "ns"}}),):
            try:
                call()
            except client.ApiException as exc:
                if exc.status != 409:
                    raise
        port = {"name": "mysql", "port": 3306, "protocol": "TCP"}
        svc = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "mysql", "namespace": "ns",
                            "annotations": {"fed-dns.io/export": "true",
                                            "fed-dns.io/publish": "endpoints"}},
               "spec": {"clusterIP": f"10.{100 + index}.0.10", "ports": [port]}}
        eps = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
               "metadata": {"name": "mysql-1", "namespace": "ns",
                            "labels": {"kubernetes.io/service-name": "mysql"}},
               "ports": [port],
               "endpoints": [{"addresses": [f"10.{index}.0.{n}"], "conditions": {"ready": ready}}
                             for n in (1, 2)]}
        try:
            core.create_namespaced_service("ns", svc)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
        try:
            disc.create_namespaced_endpoint_slice("ns", eps)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            disc.replace_namespaced_endpoint_slice("mysql-1", "ns", {
                **eps, "metadata": {**eps["metadata"], "resourceVersion": disc.read_namespaced_endpoint_slice(
                    "mysql-1", "ns").metadata.resource_version}})
    finally:
        api.close()


def addresses(port: int, name: str) -> set[str]:
    reply = dns.query.udp(dns.message.make_query(name, "A"), LOOPBACK, port=port, timeout=1)
    return {rr.to_text() for rrset in reply.answer if rrset.rdtype == 1 for rr in rrset}


def one_run(etcd_url: str, run: int, lag_samples: int) -> dict:
    zone = f"bench{run}.example.com."
    name = f"mysql.ns.{zone}"
    prefix = "/skydns/" + "/".join(reversed(zone.rstrip(".").split("."))) + "/ns/mysql/"
    with tempfile.TemporaryDirectory(prefix="fed-dns-bench-") as tmp_:
        tmp = Path(tmp_)
        sims = {}
        daemon = None
        try:
            for i, cname in enumerate(("c1", "c2", "c3"), start=1):
                sims[cname] = start_sim(cname, tmp)
                seed(sims[cname][1], i)
            dns_port, http_port = free_port(), free_port()
            cfg = {"zone": zone, "dns": {"listen": f"{LOOPBACK}:{dns_port}"},
                   "http": {"listen": f"{LOOPBACK}:{http_port}"},
                   "etcd": {"endpoints": [etcd_url]},
                   "api": {"listen": f"{LOOPBACK}:{free_port()}", "dir": str(tmp / "api")},
                   "clusters": [{"name": c, "kubeconfig": str(k), "context": c}
                                for c, (_, k) in sims.items()]}
            (tmp / "fed-dns.yaml").write_text(yaml.safe_dump(cfg))
            daemon = subprocess.Popen([sys.executable, "-m", "fed_dns.cli", "run", "--config",
                                       str(tmp / "fed-dns.yaml")], cwd=REPO,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      env=dict(os.environ, PYTHONUNBUFFERED="1"))
            everyone = {f"10.{i}.0.{n}" for i in (1, 2, 3) for n in (1, 2)}
            wait_for(lambda: addresses(dns_port, name) == everyone, timeout=30, what="all answers")
            wait_for(lambda: len(etcd_items(etcd_url, prefix)) == 12, timeout=10, what="etcd keys")
            lags = measure_lag(dns_port, name, sims["c1"][1], lag_samples) if lag_samples else []
            killed = time.monotonic()
            sims["c2"][0].send_signal(signal.SIGKILL)
            dns_gone = etcd_gone = None
            while dns_gone is None or etcd_gone is None:
                now = time.monotonic()
                if now - killed > 30:
                    raise RuntimeError("no failover within 30 s")
                if dns_gone is None and not any(a.startswith("10.2.") for a in addresses(dns_port, name)):
                    dns_gone = now - killed
                if etcd_gone is None and not any(k.startswith(prefix + "c2/") for k in etcd_items(etcd_url, prefix)):
                    etcd_gone = now - killed
                time.sleep(0.01)
            return {"dns_seconds": dns_gone, "etcd_seconds": etcd_gone, "lag_seconds": lags}
        finally:
            if daemon is not None:
                stop_process(daemon, timeout=15)
            for proc, _ in sims.values():
                stop_process(proc, sig=signal.SIGKILL)


def measure_lag(dns_port: int, name: str, kubeconfig: Path, samples: int) -> list[float]:
    """Flip c1's endpoints' readiness; time from the API write to the changed DNS answer."""
    out = []
    for n in range(samples):
        ready = n % 2 == 1
        start = time.monotonic()
        seed(kubeconfig, 1, ready=ready)
        want_c1 = ready
        while (("10.1.0.1" in addresses(dns_port, name)) != want_c1):
            if time.monotonic() - start > 10:
                raise RuntimeError("answer did not change within 10 s")
        out.append(time.monotonic() - start)
    seed(kubeconfig, 1, ready=True)
    return out


def summary(values: list[float]) -> dict:
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"min": round(values[0], 3), "median": round(statistics.median(values), 3),
            "p99": round(pick(0.99), 4), "max": round(values[-1], 3), "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--lag-samples", type=int, default=40, help="per run, first run only")
    args = parser.parse_args()
    results = []
    with running_etcd() as etcd:
        for run in range(args.runs):
            results.append(one_run(etcd.url, run, args.lag_samples if run == 0 else 0))
            print(f"run {run}: dns {results[-1]['dns_seconds']:.2f}s etcd {results[-1]['etcd_seconds']:.2f}s",
                  file=sys.stderr)
    lags = [x for r in results for x in r["lag_seconds"]]
    print(json.dumps({
        "benchmark": "failover",
        "health": {"period_s": 1.0, "failure_threshold": 3, "success_threshold": 2},
        "target_median_s": 4.0,
        "sigkill_to_dns_withdrawn_s": summary([r["dns_seconds"] for r in results]),
        "sigkill_to_etcd_withdrawn_s": summary([r["etcd_seconds"] for r in results]),
        "event_to_answer_lag_s (includes the API write)": summary(lags) if lags else None,
    }, indent=2))


if __name__ == "__main__":
    main()
