#!/usr/bin/env python3
"""What the watch index keeps and costs per event (issue 8), in-process, no etcd, no sockets.

Run by hand; prints one JSON document:

    .venv/bin/python bench/watch_memory.py [--clusters 10] [--services 5000] [--endpoints 3]
        [--events 5000] [--repeats 5] [--repo DIR]   # DIR: another checkout to measure

The members' objects are what `fed-dns sim` serves for `scenario.seed_many` (the scale
bench's data: one exported Service and one EndpointSlice of `--endpoints` ready addresses
per Service), as watch-event JSON lines. Each phase runs in a fresh subprocess:

- index: every line goes through the watcher's path (`stream._event`: JSON decode and what
  the stream keeps of the object, then `ClusterObjects.apply`) into one index per member.
  `tracemalloc_mb`: bytes still allocated once the lines are gone (Python allocations,
  exact); `views_mb`: then the ServiceViews of every Service (what the rest of the daemon
  keeps, `publish: endpoints` as in scale.py), on top; `rss_mb`: the process's RSS growth
  for the indexes, in a run without tracemalloc (allocator slack included).
- cpu: one member of `--services` Services; `--events` EndpointSlice changes (a fresh
  address and one endpoint's readiness flipped) and Service changes (a new probe
  annotation), each the watcher's per-event work: decode + keep (the watch thread) and
  apply + view_of (the event loop). Microseconds per event, min and median of `--repeats`;
  the index is frozen out of the collector's sight first, as the daemon does (app/runtime.py).
- big_service: one Service with 20 slices x 100 endpoints, a change of one slice.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def member_lines(*, index: int, services: int, endpoints: int) -> list[tuple[str, bytes]]:
    """(kind, watch-event line) of every Service and EndpointSlice of member `index`."""
    from fed_dns.sim import scenario
    from fed_dns.sim.cluster import SimCluster

    sim = SimCluster(name=f"m{index}")
    scenario.seed_many(sim, index=index, services=services, endpoints=endpoints)
    return [(kind, json.dumps({"type": "ADDED", "object": obj}).encode())
            for kind in ("services", "endpointslices") for obj in sim.list(kind=kind)]


def build(lines: list[tuple[str, bytes]]):
    from fed_dns.watch import stream
    from fed_dns.watch.index import ClusterObjects

    objects = ClusterObjects()
    for kind, line in lines:
        type_, obj = stream._event(line, kind)
        objects.apply(kind=kind, type=type_, obj=obj)
    return objects


def views(objects, *, cluster: str) -> dict:
    from fed_dns.model import Publish
    from fed_dns.watch.parse import WatchOptions

    options = WatchOptions(publish=Publish.ENDPOINTS)
    return {key: objects.view_of(key=key, options=options, cluster=cluster) for key in list(objects.services)}


def phase_index(args) -> dict:
    import tracemalloc

    from fed_dns.sim import scenario  # noqa: F401 - imported before the baseline
    from fed_dns.sim.cluster import SimCluster  # noqa: F401
    from fed_dns.watch import index, parse, stream  # noqa: F401

    member_lines(index=0, services=1, endpoints=args.endpoints)  # first-use caches too
    traced = args.phase == "tracemalloc"
    gc.collect()
    if traced:
        tracemalloc.start()
    base_rss, base = rss_mb(), tracemalloc.get_traced_memory()[0] if traced else 0
    indexes, n_objects = [], 0
    for index in range(args.clusters):
        lines = member_lines(index=index, services=args.services, endpoints=args.endpoints)
        n_objects += len(lines)
        indexes.append(build(lines))
        del lines
    gc.collect()
    out = {"objects": n_objects, "rss_mb": round(rss_mb() - base_rss, 1)}
    if traced:
        index_bytes = tracemalloc.get_traced_memory()[0] - base
        kept = [views(objects, cluster=f"m{n}") for n, objects in enumerate(indexes)]
        gc.collect()
        views_bytes = tracemalloc.get_traced_memory()[0] - base - index_bytes
        assert sum(len(v) for v in kept) == args.clusters * args.services
        out = {"objects": n_objects, "tracemalloc_mb": round(index_bytes / 1e6, 1),
               "bytes_per_object": round(index_bytes / n_objects), "views_mb": round(views_bytes / 1e6, 1)}
    return out


def changed_slice(obj: dict, *, n: int) -> dict:
    """`obj` with its last address replaced and its first endpoint's readiness flipped."""
    endpoints = [dict(e, conditions=dict(e["conditions"])) for e in obj["endpoints"]]
    endpoints[-1]["addresses"] = [f"10.200.{n // 250 % 256}.{n % 250 + 1}"]
    endpoints[0]["conditions"]["ready"] = not endpoints[0]["conditions"]["ready"]
    meta = dict(obj["metadata"], resourceVersion=str(10_000_000 + n))
    return dict(obj, metadata=meta, endpoints=endpoints)


def changed_service(obj: dict, *, n: int) -> dict:
    annotations = dict(obj["metadata"].get("annotations") or {}, **{"fed-dns.io/probe": f"http:/p{n}"})
    meta = dict(obj["metadata"], annotations=annotations, resourceVersion=str(10_000_000 + n))
    return dict(obj, metadata=meta)


def per_event(objects, kind: str, lines: list[bytes], *, repeats: int) -> dict:
    """µs per event: decode + keep, apply + view_of of the Services it touches."""
    from fed_dns.model import Publish
    from fed_dns.watch import stream
    from fed_dns.watch.parse import WatchOptions

    options = WatchOptions(publish=Publish.ENDPOINTS)
    decode, index = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        events = [stream._event(line, kind) for line in lines]
        t1 = time.perf_counter()
        for type_, obj in events:
            for key in objects.apply(kind=kind, type=type_, obj=obj):
                objects.view_of(key=key, options=options, cluster="m0")
        t2 = time.perf_counter()
        decode.append((t1 - t0) / len(lines) * 1e6)
        index.append((t2 - t1) / len(lines) * 1e6)
    total = [a + b for a, b in zip(decode, index)]

    def summary(xs: list[float]) -> dict:
        return {"min": round(min(xs), 1), "median": round(statistics.median(xs), 1)}

    return {"events": len(lines), "decode_us": summary(decode), "apply_view_us": summary(index),
            "total_us": summary(total)}


def phase_cpu(args) -> dict:
    from fed_dns.sim import objects as sim_objects

    lines = member_lines(index=0, services=args.services, endpoints=args.endpoints)
    objects = build(lines)
    raw = {kind: [json.loads(line)["object"] for k, line in lines if k == kind]
           for kind in ("services", "endpointslices")}
    n = min(args.events, args.services)

    def modified(obj: dict) -> bytes:
        return json.dumps({"type": "MODIFIED", "object": obj}).encode()

    slices = [modified(changed_slice(raw["endpointslices"][i], n=i)) for i in range(n)]
    services = [modified(changed_service(raw["services"][i], n=i)) for i in range(n)]
    first = raw["services"][0]
    del raw, lines
    gc.collect()
    gc.freeze()  # as the daemon does after a big change (app/runtime.py): no full collections over the index
    out = {"slice_event": per_event(objects, "endpointslices", slices, repeats=args.repeats),
           "service_event": per_event(objects, "services", services, repeats=args.repeats)}

    big = build([("services", json.dumps({"type": "ADDED", "object": first}).encode())])
    name, namespace = first["metadata"]["name"], first["metadata"]["namespace"]
    group = [sim_objects.endpoint_slice(service=name, namespace=namespace, name=f"{name}-{s}",
                                        ports=[("http", 8080)],
                                        endpoints=[(f"10.{s}.{e // 250}.{e % 250 + 1}", True) for e in range(100)])
             for s in range(20)]
    for s in group:
        s["metadata"]["resourceVersion"] = "1"
        per_event(big, "endpointslices", [json.dumps({"type": "ADDED", "object": s}).encode()], repeats=1)
    flips = [modified(changed_slice(group[i % 20], n=i)) for i in range(200)]
    out["big_service_slice_event"] = per_event(big, "endpointslices", flips, repeats=args.repeats)
    return out


PHASES = {"tracemalloc": phase_index, "rss": phase_index, "cpu": phase_cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--services", type=int, default=5000)
    parser.add_argument("--endpoints", type=int, default=3)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--repo", default=str(REPO), help="source tree of fed_dns to measure")
    parser.add_argument("--phases", default="tracemalloc,rss,cpu", help="which of tracemalloc, rss, cpu")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        sys.path.insert(0, args.repo)
        import fed_dns

        assert Path(fed_dns.__file__).resolve().is_relative_to(Path(args.repo).resolve()), fed_dns.__file__
        print(json.dumps(PHASES[args.phase](args)))
        return
    result: dict = {"benchmark": "watch_memory", "repo": args.repo, "clusters": args.clusters,
                    "services": args.services, "endpoints": args.endpoints}
    for phase in args.phases.split(","):
        argv = [a for a in sys.argv[1:]] + ["--phase", phase]
        done = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True,
                              check=False, env=dict(os.environ, PYTHONPATH=args.repo))
        if done.returncode != 0:
            result[phase] = {"error": done.stderr[-2000:]}
            continue
        result[phase] = json.loads(done.stdout)
    result["python"] = sys.version.split()[0]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
