"""Benchmark of fed_dns.watch: N simulated members (one subprocess each) x S Services.

Run by hand (not in tests); prints one JSON document:

    .venv/bin/python bench/watch_sync.py [--clusters 10] [--services 2000] [--rate 500]

- full_sync_s: from starting the watchers until every member's view is synced and holds all
  its Services (targets: < 20 s for 10 x 2,000 x 3 endpoints).
- list_decode: one list of a member's Services, raw JSON (what the watcher does) against the
  client's model deserialisation.
- sustained: every member rewrites Services as fast as it can; events/s the watchers apply.
- latency at --rate events/s: the bench asks a member to change a Service's probe annotation
  and times until that member's published ClusterView shows it (pipe + API server + watch +
  view rebuild); p50/p99 in ms (target p99 < 50 ms at 500 events/s).
- rss_mb: the watcher process (the simulated members live in other processes).

`--sim NAME` is the member mode used internally: serve one SimCluster, print its url and
token, then take commands on stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

EXPORT = {"fed-dns.io/export": "true"}


# -- member process --------------------------------------------------------------------------

def _service(i: int, *, probe: str | None = None) -> dict:
    from fed_dns.sim import objects

    annotations = dict(EXPORT, **({"fed-dns.io/probe": probe} if probe else {}))
    return objects.service(name=f"svc-{i}", namespace=f"ns-{i % 20}", ports=[("http", 80)],
                           annotations=annotations)


def _slice(i: int) -> dict:
    from fed_dns.sim import objects

    base = f"10.{(i >> 8) & 255}.{i & 255}"
    return objects.endpoint_slice(service=f"svc-{i}", namespace=f"ns-{i % 20}", name=f"svc-{i}-a",
                                  endpoints=[(f"{base}.{n}", True, f"pod-{n}") for n in range(1, 4)],
                                  ports=[("http", 8080)])


async def serve_member(*, name: str, services: int) -> None:
    from fed_dns.sim.cluster import SimCluster

    sim = SimCluster(name=name, history_limit=200_000)
    for i in range(services):
        sim.apply(_service(i))
        sim.apply(_slice(i))
    await sim.start()
    print(json.dumps({"url": sim.url, "token": sim.token}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        words = line.decode().split()
        if words[0] == "probe":  # probe <i> <marker>: one Service event
            sim.apply(_service(int(words[1]), probe=words[2]))
        elif words[0] == "burst":  # burst <n>: n Service events as fast as possible
            for n in range(int(words[1])):
                sim.apply(_service(n % services, probe=f"burst-{n}"))
                if n % 50 == 49:
                    await asyncio.sleep(0)
            print("done", flush=True)
    await sim.close()


# -- watcher process -------------------------------------------------------------------------

class Member:
    def __init__(self, *, name: str, proc: asyncio.subprocess.Process, url: str, token: str) -> None:
        self.name, self.proc, self.url, self.token = name, proc, url, token
        self.view = None
        self.pending: dict = {}  # ServiceKey -> (marker, t_sent)
        self.latencies: list[float] = []

    def on_change(self, view, changed) -> None:
        self.view = view
        if self.pending:
            now = time.perf_counter()
            for key in changed & self.pending.keys():  # only what this flush changed
                marker, sent = self.pending[key]
                sv = view.services.get(key)
                if sv is not None and sv.probe == marker:
                    self.latencies.append(now - sent)
                    del self.pending[key]

    async def send(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()


async def start_members(*, clusters: int, services: int) -> list[Member]:
    async def one(n: int) -> Member:
        name = f"m{n}"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--sim", name, "--services", str(services),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        info = json.loads(await proc.stdout.readline())
        return Member(name=name, proc=proc, url=info["url"], token=info["token"])

    return list(await asyncio.gather(*(one(n) for n in range(clusters))))


def write_kubeconfig(member: Member, directory: Path) -> str:
    path = directory / f"{member.name}.kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": member.name,
        "clusters": [{"name": member.name, "cluster": {"server": member.url}}],
        "users": [{"name": member.name, "user": {"token": member.token}}],
        "contexts": [{"name": member.name, "context": {"cluster": member.name, "user": member.name}}]}))
    return str(path)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def list_decode(api_client) -> dict:
    import kubernetes.client

    api = kubernetes.client.CoreV1Api(api_client)
    t0 = time.perf_counter()
    raw = json.loads(api.list_service_for_all_namespaces(_preload_content=False).data)
    t1 = time.perf_counter()
    models = api.list_service_for_all_namespaces()
    t2 = time.perf_counter()
    assert len(raw["items"]) == len(models.items)
    return {"items": len(models.items), "raw_json_ms": round((t1 - t0) * 1000, 1),
            "client_models_ms": round((t2 - t1) * 1000, 1)}


class GcPauses:
    """Collector pauses in this process (a full collection over the views can stall the loop)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._start = 0.0
        gc.callbacks.append(self)

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._start))

    def summary(self) -> dict:
        gen2 = [p for g, p in self.pauses if g == 2]
        return {"collections": len(self.pauses), "gen2": len(gen2),
                "max_ms": round(max((p for _, p in self.pauses), default=0) * 1000, 1)}


async def until(predicate, *, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("benchmark condition not reached")
        await asyncio.sleep(0.005)


async def bench(*, clusters: int, services: int, rate: int, seconds: float, burst: int) -> dict:
    from fed_dns.model import ClusterSpec, ServiceKey
    from fed_dns.watch.cluster import ClusterWatcher
    from fed_dns.watch.kubeconfig import load
    from fed_dns.watch.parse import WatchOptions

    t_start = time.perf_counter()
    members = await start_members(clusters=clusters, services=services)
    out: dict = {"clusters": clusters, "services_per_cluster": services, "endpoints_per_service": 3,
                 "members_ready_s": round(time.perf_counter() - t_start, 2)}
    tmp = Path(tempfile.mkdtemp(prefix="fed-dns-bench-"))
    clients, watchers, tasks = [], [], []
    try:
        for m in members:
            spec = ClusterSpec(name=m.name, kubeconfig=write_kubeconfig(m, tmp))
            clients.append(load(spec))
            watchers.append(ClusterWatcher(spec=spec, api_client=clients[-1], options=WatchOptions(),
                                           on_change=m.on_change))
        rss_before = rss_mb()
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(w.run()) for w in watchers]
        await until(lambda: all(m.view is not None and m.view.synced and len(m.view.services) == services
                                for m in members), timeout=300)
        out["full_sync_s"] = round(time.perf_counter() - t0, 2)
        out["rss_mb_before_sync"] = round(rss_before, 1)
        out["rss_mb_after_sync"] = round(rss_mb(), 1)
        out["list_decode"] = await asyncio.to_thread(list_decode, clients[0])

        # sustained: every member rewrites `burst` Services as fast as it can
        def applied() -> int:
            return sum(w.stats.events.get("services", 0) for w in watchers)

        base = applied()
        t0 = time.perf_counter()
        for m in members:
            await m.send(f"burst {burst}")
        await until(lambda: applied() - base >= burst * clusters, timeout=600)
        elapsed = time.perf_counter() - t0
        out["sustained"] = {"events": burst * clusters, "seconds": round(elapsed, 2),
                            "events_per_s": round(burst * clusters / elapsed)}
        for m in members:  # their "done" lines
            await m.proc.stdout.readline()

        # latency at a steady rate, spread over the members
        await asyncio.sleep(0.5)
        pauses = GcPauses()
        interval, sent, seq = 1.0 / rate, 0, 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            due = int((time.perf_counter() - t0) * rate)
            while sent < due:
                m = members[sent % clusters]
                i = random.randrange(services)
                key = ServiceKey(namespace=f"ns-{i % 20}", name=f"svc-{i}")
                if key not in m.pending:
                    seq += 1
                    m.pending[key] = (f"tcp-{seq}", time.perf_counter())
                    await m.send(f"probe {i} tcp-{seq}")
                sent += 1
            await asyncio.sleep(interval / 2)
        await until(lambda: not any(m.pending for m in members), timeout=30)
        lat = sorted(x for m in members for x in m.latencies)
        out["latency"] = {"rate_per_s": rate, "seconds": seconds, "events": len(lat),
                          "p50_ms": round(statistics.median(lat) * 1000, 2),
                          "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 2),
                          "max_ms": round(lat[-1] * 1000, 2), "gc_pauses": pauses.summary()}
        out["rss_mb_end"] = round(rss_mb(), 1)
        out["watch_restarts"] = sum(sum(w.stats.restarts.values()) for w in watchers)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in clients:
            c.close()
        for m in members:
            m.proc.stdin.close()
            try:
                await asyncio.wait_for(m.proc.wait(), 10)
            except TimeoutError:
                m.proc.kill()
                await m.proc.wait()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=500, help="events/s for the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    parser.add_argument("--burst", type=int, default=2000, help="events per member, sustained run")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--sim", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sim:
        asyncio.run(serve_member(name=args.sim, services=args.services))
        return
    if args.uvloop:
        import uvloop
        uvloop.install()
    result = asyncio.run(bench(clusters=args.clusters, services=args.services, rate=args.rate,
                               seconds=args.seconds, burst=args.burst))
    result["python"] = sys.version.split()[0]
    result["cpus"] = os.cpu_count()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
