"""DNS under hostile TCP clients, minutes long (run by hand; prints JSON).

    .venv/bin/python bench/dns_abuse.py [--seconds 60] [--clients 50] [--repo PATH]

Starts a DNS server (`DnsServer`, the one `fed-dns serve` runs) in a child process on a free
loopback port, with a zone of 200 one-address names plus `wide` (200 addresses: a 3.3 kB
answer) and `big` (10,000 addresses), idle timeout 3 s, 100 connections at most; `--repo`
runs another checkout's server (e.g. the commit before, for a before/after). Then:

- `non_readers`: `--clients` connections pipelining queries for `wide` and never reading,
  each reconnecting as soon as the server closes it, for `--seconds`: the server's RSS every
  second, how many connections it closed, and a reading client's TCP answer time (every
  0.5 s) and failures meanwhile;
- `trickle`: one byte every 2 s: how long the connection stays open;
- `cap`: 100 silent connections fill the cap, then 20 newcomers each ask once: answered?;
- `big_name`: `big` over TCP (records, TC, bytes) and UDP; the server's CPU per query.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import dns.flags  # noqa: E402
import dns.message  # noqa: E402
import dns.query  # noqa: E402

from tests.support import LOOPBACK, free_port, stop_process, wait_for  # noqa: E402

ZONE = "fed.example.com."
IDLE = 3.0
CAP = 100

SERVER = r"""
import asyncio, ipaddress, json, sys
from fed_dns.server import table as table_mod
from fed_dns.server.dns import DnsServer
port, idle, cap = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
def key(rel):
    return "/skydns/com/example/fed/" + "/".join(reversed(rel.split(".")))
entries = {}
for i in range(200):
    entries[key(f"c1.n{i}.ns")] = json.dumps({"host": f"10.9.{i // 256}.{i % 256}"}).encode()
    entries[key(f"c{i}.wide.ns")] = json.dumps({"host": f"10.1.{i // 256}.{i % 256}"}).encode()
for i in range(10000):
    entries[key(f"c{i}.big.ns")] = json.dumps({"host": str(ipaddress.IPv4Address(0x0A100000 + i))}).encode()
table = table_mod.build(zone="fed.example.com.", entries=entries)
async def main():
    server = DnsServer(host="127.0.0.1", port=port, table=table, tcp_idle_timeout=idle,
                       max_tcp_connections=cap)
    await server.start()
    await asyncio.Event().wait()
asyncio.run(main())
"""


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def frame(name: str, rdtype: str = "A") -> bytes:
    wire = dns.message.make_query(name, rdtype).to_wire()
    return struct.pack("!H", len(wire)) + wire


def connect(port: int, *, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5)
    s.connect((LOOPBACK, port))
    return s


def tcp_ask(port: int, name: str, *, timeout: float = 2.0) -> dns.message.Message:
    return dns.query.tcp(dns.message.make_query(name, "A"), LOOPBACK, port=port, timeout=timeout)


def non_readers(port: int, pid: int, *, clients: int, seconds: float) -> dict:
    """`clients` threads, each connecting, pipelining queries and reading nothing; when the
    server closes it, it connects again at once (a sustained attack, not one wave)."""
    blob = frame(f"wide.ns.{ZONE}") * 2000
    stop = threading.Event()
    closed_at: list[float] = []
    refused = [0]
    start = time.monotonic()

    def flood() -> None:
        while not stop.is_set():
            try:
                s = connect(port, rcvbuf=4096)
            except OSError:
                refused[0] += 1
                time.sleep(0.1)
                continue
            with s:
                s.settimeout(0.5)
                while not stop.is_set():
                    try:
                        s.sendall(blob)
                    except TimeoutError:
                        continue
                    except OSError:
                        closed_at.append(time.monotonic() - start)
                        break

    threads = [threading.Thread(target=flood, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    rss, probe_ms, probe_failures = [], [], 0
    next_sample = time.monotonic()
    while time.monotonic() - start < seconds:
        t0 = time.monotonic()
        try:
            tcp_ask(port, f"n1.ns.{ZONE}")
            probe_ms.append((time.monotonic() - t0) * 1000)
        except Exception:  # noqa: BLE001 - a refused or timed-out probe is the measurement
            probe_failures += 1
        if time.monotonic() >= next_sample:
            rss.append(rss_mb(pid))
            next_sample += 1.0
        time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(timeout=5)
    probe_ms.sort()
    return {"clients": clients, "refused_at_connect": refused[0],
            "closed_by_server": len(closed_at),
            "closed_in_first_second": sum(1 for t in closed_at if t < 1.0),
            "rss_mb_per_second": rss, "rss_mb_max": max(rss) if rss else None,
            "probe_answers": len(probe_ms), "probe_failures": probe_failures,
            "probe_p50_ms": round(probe_ms[len(probe_ms) // 2], 2) if probe_ms else None,
            "probe_p90_ms": round(probe_ms[int(len(probe_ms) * 0.9)], 2) if probe_ms else None,
            "probe_max_ms": round(probe_ms[-1], 2) if probe_ms else None}


def trickle(port: int, *, limit: float) -> dict:
    data = frame(f"{'x' * 60}.n1.ns.{ZONE}")
    s = connect(port)
    start = time.monotonic()
    sent = 0
    try:
        while sent < len(data) and time.monotonic() - start < limit:
            s.sendall(data[sent:sent + 1])
            sent += 1
            s.settimeout(2.0)  # one byte every 2 s; a close shows up as EOF meanwhile
            try:
                if s.recv(1) == b"":
                    break
            except TimeoutError:
                continue
    except OSError:
        pass
    finally:
        s.close()
    return {"idle_timeout_s": IDLE, "open_for_s": round(time.monotonic() - start, 2),
            "bytes_sent": sent, "frame_bytes": len(data)}


def cap(port: int) -> dict:
    silent = [connect(port) for _ in range(CAP)]
    answered, failed = 0, 0
    newcomers = []
    for _ in range(20):
        try:
            s = connect(port)
            newcomers.append(s)
            s.sendall(frame(f"n2.ns.{ZONE}"))
            s.settimeout(2)
            answered += len(s.recv(4096)) > 2
        except OSError:
            failed += 1
    readable, _, _ = select.select(silent, [], [], 0.5)  # closed ones: EOF (before the idle timeout)
    evicted = len(readable)
    for s in silent:
        s.close()
    for s in newcomers:
        s.close()
    return {"cap": CAP, "newcomers": 20, "answered": answered, "failed": failed,
            "silent_closed_within_0.5s": evicted}


def big_name(port: int, pid: int) -> dict:
    out = {}
    r = dns.query.tcp(dns.message.make_query(f"big.ns.{ZONE}", "A"), LOOPBACK, port=port, timeout=30)
    out["tcp"] = {"records": sum(len(x) for x in r.answer), "tc": bool(r.flags & dns.flags.TC),
                  "bytes": len(r.to_wire())}
    q = dns.message.make_query(f"big.ns.{ZONE}", "A", use_edns=0, payload=1232)
    r = dns.query.udp(q, LOOPBACK, port=port, timeout=30)
    out["udp"] = {"records": sum(len(x) for x in r.answer), "tc": bool(r.flags & dns.flags.TC)}
    for proto in ("udp", "tcp"):
        n = 200 if proto == "udp" else 50
        c0, t0 = cpu_seconds(pid), time.monotonic()
        for _ in range(n):
            if proto == "udp":
                dns.query.udp(q, LOOPBACK, port=port, timeout=30)
            else:
                dns.query.tcp(dns.message.make_query(f"big.ns.{ZONE}", "A"), LOOPBACK, port=port,
                              timeout=30)
        out[proto]["server_cpu_ms_per_query"] = round((cpu_seconds(pid) - c0) / n * 1000, 3)
        out[proto]["wall_ms_per_query"] = round((time.monotonic() - t0) / n * 1000, 3)
    small = dns.message.make_query(f"n3.ns.{ZONE}", "A", use_edns=0, payload=1232)
    c0 = cpu_seconds(pid)
    for _ in range(200):
        dns.query.udp(small, LOOPBACK, port=port, timeout=5)
    out["small_udp_server_cpu_ms_per_query"] = round((cpu_seconds(pid) - c0) / 200 * 1000, 3)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--repo", default=str(REPO), help="the checkout whose server runs")
    p.add_argument("--skip", default="", help="comma-separated parts to skip")
    args = p.parse_args()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": args.repo}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(IDLE), str(CAP)],
                            cwd=args.repo, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    skip = set(args.skip.split(","))
    try:
        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode()[-2000:])
            try:
                return bool(tcp_ask(port, f"n0.ns.{ZONE}", timeout=0.5).answer)
            except Exception:  # noqa: BLE001 - not up yet
                return False
        wait_for(up, timeout=120, interval=0.2, what="the DNS server")
        tcp_ask(port, f"wide.ns.{ZONE}")
        result = {"repo": args.repo, "rss_mb_at_start": rss_mb(proc.pid)}
        if "non_readers" not in skip:
            result["non_readers"] = non_readers(port, proc.pid, clients=args.clients,
                                                seconds=args.seconds)
        if "trickle" not in skip:
            result["trickle"] = trickle(port, limit=min(args.seconds, 30))
        if "cap" not in skip:
            result["cap"] = cap(port)
        if "big_name" not in skip:
            result["big_name"] = big_name(port, proc.pid)
        result["rss_mb_at_end"] = rss_mb(proc.pid)
    finally:
        stop_process(proc, timeout=10)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
