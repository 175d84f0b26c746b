"""DNS throughput of `fed-dns serve` with dnsperf on loopback (run by hand; prints JSON).

    .venv/bin/python bench/dns_qps.py [--names 10000] [--seconds 10] [--clients 4]

Starts its own etcd (tests/support.py), writes a zone of N names (one A record each, under
the CoreDNS/SkyDNS layout), and for 1 and 2 workers runs dnsperf twice: flat out (peak
queries/s, losses) and at half that rate with per-query output (latency percentiles). The
same load then goes to a naive dnslib server (parse and build every answer per query) for
the ratio. dnsperf shares the machine's cores with the server: read the numbers as such.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import LOOPBACK, EtcdKV, free_port, running_etcd, stop_process, wait_for  # noqa: E402

ZONE = "fed.example.com."
PREFIX = "/skydns"
TXN_OPS = 100  # etcd's default --max-txn-ops is 128


def names(count: int) -> list[tuple[str, str, str]]:
    """(name, key, address) for svc0.ns.fed.example.com. ..."""
    out = []
    for i in range(count):
        addr = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        out.append((f"svc{i}.ns.{ZONE}", f"{PREFIX}/com/example/fed/ns/svc{i}/c1/{i:08x}", addr))
    return out


def load(etcd_url: str, zone: list[tuple[str, str, str]]) -> None:
    EtcdKV(etcd_url).put_all({key: json.dumps({"host": addr, "ttl": 5}).encode()
                              for _, key, addr in zone}, batch=TXN_OPS)


def ask_ok(port: int, name: str) -> bool:
    import dns.message
    import dns.query

    try:
        r = dns.query.udp(dns.message.make_query(name, "A"), LOOPBACK, port=port, timeout=0.5)
    except Exception:  # noqa: BLE001 - not up yet
        return False
    return bool(r.answer)


def dnsperf(*, port: int, datafile: Path, seconds: float, clients: int, threads: int,
            outstanding: int, max_qps: int | None = None, verbose: bool = False,
            passes: int | None = None) -> dict:
    cmd = ["dnsperf", "-s", LOOPBACK, "-p", str(port), "-d", str(datafile), "-c", str(clients),
           "-T", str(threads), "-q", str(outstanding), "-t", "2"]
    cmd += ["-n", str(passes)] if passes else ["-l", str(seconds)]
    if max_qps:
        cmd += ["-Q", str(max_qps)]
    if verbose:
        cmd += ["-v"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120).stdout
    return parse_dnsperf(out, verbose=verbose)


def parse_dnsperf(out: str, *, verbose: bool) -> dict:
    def num(pattern: str) -> float | None:
        m = re.search(pattern, out)
        return float(m.group(1)) if m else None
    result = {
        "sent": num(r"Queries sent:\s+(\d+)"),
        "completed": num(r"Queries completed:\s+(\d+)"),
        "lost": num(r"Queries lost:\s+(\d+)"),
        "qps": num(r"Queries per second:\s+([\d.]+)"),
        "avg_latency_ms": (num(r"Average Latency \(s\):\s+([\d.]+)") or 0) * 1000,
        "max_latency_ms": (num(r"Average Latency \(s\):.*max ([\d.]+)") or 0) * 1000,
    }
    if verbose:
        lat = sorted(float(m.group(1)) for m in re.finditer(r"^> \S+ .* ([\d.]+)$", out, re.M))
        if lat:
            pick = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 3)  # noqa: E731
            result.update(p50_ms=pick(0.50), p90_ms=pick(0.90), p99_ms=pick(0.99),
                          p999_ms=pick(0.999), samples=len(lat))
    return result


def start(cmd: list[str], *, port: int, probe: str) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: proc.poll() is None and ask_ok(port, probe), timeout=60,
                 what=f"DNS server on {port}")
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen) -> None:
    stop_process(proc, timeout=15)


def measure(*, label: str, cmd: list[str], port: int, datafile: Path, probe: str, args) -> dict:
    proc = start(cmd, port=port, probe=probe)
    try:
        common = dict(port=port, datafile=datafile, clients=args.clients, threads=args.threads,
                      outstanding=args.outstanding)
        dnsperf(seconds=60, passes=1, **common)  # warm up: every answer compiled once
        peak = dnsperf(seconds=args.seconds, **common)
        half = int((peak["qps"] or 2) / 2)
        quiet = dnsperf(seconds=args.latency_seconds, max_qps=half, **common)
        lat = dnsperf(seconds=args.latency_seconds, max_qps=half, verbose=True, **common)
    finally:
        stop(proc)
    # dnsperf has no percentiles: they come from its per-query (-v) output, whose printing
    # takes CPU from the same two cores; the quiet run's average is the cleaner number.
    return {"server": label, "peak": peak, "at_half_peak": quiet, "at_half_peak_verbose": lat}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--names", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--latency-seconds", type=float, default=5.0)
    p.add_argument("--clients", type=int, default=4, help="dnsperf -c")
    p.add_argument("--threads", type=int, default=1, help="dnsperf -T")
    p.add_argument("--outstanding", type=int, default=100, help="dnsperf -q")
    p.add_argument("--workers", default="1,2", help="worker counts to measure")
    p.add_argument("--no-naive", action="store_true")
    args = p.parse_args()
    if shutil.which("dnsperf") is None:
        print(json.dumps({"error": "dnsperf not found: apt-get install dnsperf"}))
        return 1
    zone = names(args.names)
    py = str(Path(sys.executable))
    results = []
    with running_etcd() as etcd, tempfile.TemporaryDirectory(prefix="fed-dns-bench-") as tmp:
        t0 = time.perf_counter()
        load(etcd.url, zone)
        load_s = time.perf_counter() - t0
        datafile = Path(tmp) / "queries.txt"
        datafile.write_text("".join(f"{name} A\n" for name, _, _ in zone))
        probe = zone[-1][0]
        for workers in (int(w) for w in args.workers.split(",")):
            port = free_port()
            cmd = [py, "-m", "fed_dns.cli", "--log-level", "warning", "serve", "--etcd", etcd.url,
                   "--zone", ZONE, "--listen", f"{LOOPBACK}:{port}", "--workers", str(workers)]
            results.append(measure(label=f"fed-dns serve, {workers} worker(s)", cmd=cmd,
                                   port=port, datafile=datafile, probe=probe, args=args))
        if not args.no_naive:
            port = free_port()
            cmd = [py, str(REPO / "bench" / "naive_dns.py"), "--etcd", etcd.url, "--zone", ZONE,
                   "--port", str(port)]
            results.append(measure(label="naive dnslib server", cmd=cmd, port=port,
                                   datafile=datafile, probe=probe, args=args))
    report = {"names": args.names, "etcd_load_seconds": round(load_s, 2),
              "cpus": os.cpu_count(), "dnsperf": {"clients": args.clients, "threads": args.threads,
                                                  "outstanding": args.outstanding},
              "results": results}
    fed1 = next((r for r in results if r["server"].startswith("fed-dns serve, 1")), None)
    naive = next((r for r in results if r["server"].startswith("naive")), None)
    if fed1 and naive and naive["peak"]["qps"]:
        report["ratio_1_worker_to_naive"] = round(fed1["peak"]["qps"] / naive["peak"]["qps"], 2)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
