"""The zone table at full size: build, O(changed) updates, cache invalidation, RSS, and DNS
latency while a failover-sized update runs on the event loop. Prints JSON. Run by hand:

    .venv/bin/python bench/table_update.py [--clusters 10] [--services 5000] [--endpoints 3]
        [--switch 0.005,0.001,0.0005] [--qps 2000]

The zone is what records.render writes for `publish: endpoints` with one named port: per
Service and cluster, one leaf per endpoint and the same leaf again under `_tcp/_http` (SRV).
10 x 5,000 x 3 gives 300,000 keys. The failover delta is one cluster's leaves deleted and
one fallback CNAME per Service put (35,000 keys at full size).

Latency: a real DnsServer on loopback (its UDP thread answering from the table) and a client
process sending one query at a time (random Service names, A) at `--qps`; while it runs, the
event loop applies the failover delta (alternately forward and back) and swaps the table in.
Reported per `sys.setswitchinterval` value (set here only, in the bench process).

`--gc freeze`: the cyclic GC off during the full build and `gc.freeze()` after it (what an
application could do after its first load): a gen-2 collection then no longer scans the
~800,000 objects of the table, which otherwise stalls every thread (UDP included) for
about a second during a big update. `--gc off`: the cyclic GC off for the whole run (the
table holds no cycles; what the bound on latency is without any collection).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fed_dns.model import Record  # noqa: E402
from fed_dns.records.codec import backend_id, encode  # noqa: E402
from fed_dns.server import table as table_mod  # noqa: E402
from fed_dns.server import zone as zone_mod  # noqa: E402
from fed_dns.server.dns import DnsServer  # noqa: E402

ZONE = "fed.example.com."
BASE = "/skydns/com/example/fed"
OWNER = f"fed-dns/{ZONE}"
NAMESPACES = 10

CLIENT = r"""
import json, random, socket, struct, sys, time
port, seconds, qps, names = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
def wire(name):
    return b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0"
queries = [wire(n) + struct.pack("!HH", 1, 1) for n in names]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.1", port))
s.settimeout(1.0)
out, end, gap, qid = [], time.monotonic() + seconds, 1.0 / qps, 0
print("ready", flush=True)
while time.monotonic() < end:
    qid = (qid + 1) & 0xFFFF
    start = time.monotonic()
    s.send(struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + random.choice(queries))
    try:
        while struct.unpack("!H", s.recv(4096)[:2])[0] != qid:
            pass
        rtt = time.monotonic() - start
    except socket.timeout:
        rtt = None
    out.append((start, rtt))
    pause = start + gap - time.monotonic()
    if pause > 0:
        time.sleep(pause)
json.dump(out, sys.stdout)
"""


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def address(c: int, s: int, e: int) -> str:
    n = s * 8 + e
    return f"10.{c}.{n >> 8 & 255}.{n & 255}" if n < 65536 else f"10.{100 + c}.{n >> 8 & 255}.{n & 255}"


def service(s: int) -> tuple[str, str]:
    return f"ns{s % NAMESPACES}", f"svc{s}"


def zone(*, clusters: int, services: int, endpoints: int) -> dict[str, bytes]:
    out = {}
    for c in range(clusters):
        for s in range(services):
            ns, svc = service(s)
            for e in range(endpoints):
                host = address(c, s, e)
                value = encode(Record(host=host, port=8080, ttl=5, owner=OWNER, cluster=f"c{c}"))
                ident = backend_id(host)
                out[f"{BASE}/{ns}/{svc}/c{c}/{ident}"] = value
                out[f"{BASE}/{ns}/{svc}/_tcp/_http/c{c}/{ident}"] = value
    return out


def failover(entries: dict[str, bytes], *, cluster: int, services: int) -> tuple[dict, list]:
    """One cluster withdrawn: its leaves deleted, one fallback CNAME per Service."""
    deletes = [k for k in entries if f"/c{cluster}/" in k]
    puts = {}
    for s in range(services):
        ns, svc = service(s)
        puts[f"{BASE}/{ns}/{svc}/c{cluster}"] = encode(Record(
            host=f"{svc}.{ns}.{ZONE[:-1]}", port=-1, ttl=5, owner=OWNER, cluster=f"c{cluster}"))
    return puts, deletes


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, (time.perf_counter() - start) * 1000


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    values = sorted(values)
    pick = lambda q: round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 3)  # noqa: E731
    return {"n": len(values), "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": pick(1.0)}


def warm(table, names: list[str]) -> float:
    start = time.perf_counter()
    for name in names:
        table.entry(table_mod.wire_name(name), 1)
    return (time.perf_counter() - start) * 1000


async def latency_during_update(*, table, forward, back, names, switch: list[float],
                                qps: float) -> list[dict]:
    server = DnsServer(host="127.0.0.1", port=0, table=table)
    await server.start()
    results = []
    try:
        for i, interval in enumerate(switch):
            sys.setswitchinterval(interval)
            puts, deletes = forward if i % 2 == 0 else back
            client = subprocess.Popen(
                [sys.executable, "-c", CLIENT, str(server.port), "4", str(qps), *names],
                stdout=subprocess.PIPE, text=True)
            assert client.stdout.readline().strip() == "ready"
            await asyncio.sleep(1.5)  # baseline
            start = time.monotonic()
            new = table_mod.update(previous=server.table, puts=puts, deletes=deletes)
            server.swap(new)
            end = time.monotonic()
            out, _ = await asyncio.to_thread(client.communicate)
            samples = json.loads(out)
            base = [r for t, r in samples if t < start - 0.1 and r is not None]
            during = [r for t, r in samples if start <= t <= end and r is not None]
            after = [r for t, r in samples if end < t <= end + 1.0 and r is not None]
            results.append({
                "switchinterval_s": interval, "update_ms": round((end - start) * 1000, 1),
                "baseline": percentiles(base), "during_update": percentiles(during),
                "second_after_swap": percentiles(after),
                "lost": sum(1 for _, r in samples if r is None)})
    finally:
        sys.setswitchinterval(0.005)
        await server.close()
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clusters", type=int, default=10)
    ap.add_argument("--services", type=int, default=5000)
    ap.add_argument("--endpoints", type=int, default=3)
    ap.add_argument("--switch", default="0.005,0.005,0.001,0.001,0.0005,0.0005")  # s
    ap.add_argument("--qps", type=float, default=2000)
    ap.add_argument("--gc", choices=("default", "freeze", "off"), default="default")
    args = ap.parse_args()
    report: dict = {"clusters": args.clusters, "services": args.services,
                    "endpoints": args.endpoints, "gc": args.gc}
    rss0 = rss_mb()
    entries = zone(clusters=args.clusters, services=args.services, endpoints=args.endpoints)
    rss1 = rss_mb()
    if args.gc in ("freeze", "off"):
        gc.disable()
    table, report["full_build_ms"] = timed(table_mod.build, zone=ZONE, entries=entries, serial=1)
    report["gc_tracked_objects"] = len(gc.get_objects())
    if args.gc == "freeze":
        gc.freeze()
        gc.enable()
    rss2 = rss_mb()
    report["keys"] = len(entries)
    report["rss_mb"] = {"raw_entries": round(rss1 - rss0, 1), "table": round(rss2 - rss1, 1)}
    names = [f"{service(s)[1]}.{service(s)[0]}.{ZONE}" for s in range(args.services)]
    report["warm_ms"] = {"services_A": round(warm(table, names), 1)}
    report["cached_answers"] = len(table.cache)
    report["rss_mb"]["after_warm"] = round(rss_mb() - rss1, 1)

    rng = random.Random(1)
    keys = list(entries)
    for n in (1, 100):
        runs = []
        for _ in range(20):
            chosen = rng.sample(keys, n)
            puts = {k: entries[k].replace(b'"port":8080', b'"port":8081') for k in chosen}
            table, ms = timed(table_mod.update, previous=table, puts=puts, deletes=(), serial=1)
            runs.append(ms)
        report[f"update_{n}_keys_ms"] = {"median": round(sorted(runs)[len(runs) // 2], 3),
                                         "max": round(max(runs), 3)}

    puts, deletes = failover(entries, cluster=3, services=args.services)
    back_puts = {k: entries[k] for k in deletes}
    back = (back_puts, list(puts))
    report["failover_delta_keys"] = len(puts) + len(deletes)
    warm(table, names)
    cached = len(table.cache)
    (ix, changed), apply_ms = timed(zone_mod.apply, table.index, puts=puts, deletes=deletes)
    report["failover_index_apply_ms"] = round(apply_ms, 1)
    report["failover_changed_names"] = len(changed)
    dropped, ms = timed(table.answers.advance, changed)  # what update does after apply
    report["failover_invalidation_ms"] = round(ms, 1)
    report["failover_invalidated_answers"] = dropped
    new = table_mod.ZoneTable(ix=ix, serial=1, topology=table.topology, answers=table.answers)
    assert len(new.cache) == cached - dropped
    warm(new, names)
    table, ms = timed(table_mod.update, previous=new, puts=back[0], deletes=back[1], serial=1)
    report["failover_back_update_ms"] = round(ms, 1)
    warm(table, names)
    new, ms = timed(table_mod.update, previous=table, puts=puts, deletes=deletes, serial=1)
    report["failover_update_ms"] = round(ms, 1)
    table, _ = timed(table_mod.update, previous=new, puts=back[0], deletes=back[1], serial=1)
    warm(table, names)
    report["rss_mb"]["total_process"] = round(rss_mb(), 1)

    switch = [float(x) for x in args.switch.split(",") if x]
    sample = rng.sample(names, min(500, len(names)))
    report["dns_latency_during_failover_update"] = asyncio.run(latency_during_update(
        table=table, forward=(puts, deletes), back=back, names=sample, switch=switch,
        qps=args.qps))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
