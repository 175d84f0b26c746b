"""Benchmark of fed_dns.records.incremental against the full render + plan. Pure CPU, no etcd.

Run by hand (not in tests); prints one JSON document:

    .venv/bin/python bench/render_incremental.py [--clusters 10] [--services 5000] [--endpoints 3]

Every member holds the same Services, each with `--endpoints` ready endpoints serving one
named port (so each backend has a plain and an SRV key): 10 x 5,000 x 3 is ~300,000 keys.

- full: one `render.render` + `plan.calculate` against an empty store and against the store
  that already holds the zone (what every change cost before);
- start: `ZoneState.load_current(store)` + `step()` of everything;
- one_service: one Service's endpoints changed in one member, then stepped;
- member_unreachable / member_back: one member's health flips, stepped until clean (the
  failover and its return), and the echo of the writes stepped;
- chunked: `mark_all()` then `step(limit=500)` until clean: seconds per step;
- memory_mb: what the state holds (tracemalloc, the store's own bytes included).

What is alive after the start and after each failover is frozen out of the collector's
sight, as the daemon does (`settle`).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import tracemalloc

from fed_dns.model import Backend, ClusterView, Health, Port, ServiceKey, ServiceView, ZoneSettings
from fed_dns.records import plan, render
from fed_dns.records.incremental import Step, ZoneState

SETTINGS = ZoneSettings(zone="fed.example.com.")


def views(clusters: int, services: int, endpoints: int) -> dict[str, ClusterView]:
    out = {}
    for c in range(clusters):
        name = f"c{c}"
        mapping = {}
        for s in range(services):
            key = ServiceKey(namespace=f"ns{s % 50}", name=f"svc{s}")
            backends = tuple(Backend(address=f"10.{c * 10 + e}.{s // 250}.{s % 250 + 1}",
                                     ports=(Port(name="http", port=8080),)) for e in range(endpoints))
            mapping[key] = ServiceView(key=key, backends=backends)
        out[name] = ClusterView(cluster=name, synced=True, services=mapping)
    return out


def settle() -> None:
    """As the daemon after a big change (app/runtime.Freezer): what is alive now is frozen,
    so a later step is not timed with a full collection of the 300,000-key state in it
    (which made one member's failover read 0.46 s or 0.24 s, by luck)."""
    gc.collect()
    gc.freeze()


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, round(time.perf_counter() - start, 4)


def echo(state: ZoneState, store: dict[str, bytes], step: Step) -> None:
    """As the daemon's leader: the step's plan assumed written, then etcd's echo of it."""
    state.assume(puts=step.changes.puts, deletes=step.changes.deletes)
    for key in step.changes.deletes:
        store.pop(key, None)
    store.update(step.changes.puts)
    state.update_current(puts=step.changes.puts, deletes=step.changes.deletes)


def cost(step: Step, seconds: float) -> dict:
    return {"seconds": seconds, "services": len(step.services), "rendered_parts": step.rendered,
            "encoded": step.encoded, "puts": len(step.changes.puts), "deletes": len(step.changes.deletes),
            "table_delta": len(step.table_puts) + len(step.table_deletes)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--services", type=int, default=5000)
    parser.add_argument("--endpoints", type=int, default=3)
    args = parser.parse_args()
    report: dict = {"clusters": args.clusters, "services": args.services, "endpoints": args.endpoints}

    member_views = views(args.clusters, args.services, args.endpoints)
    health = dict.fromkeys(member_views, Health.READY)

    def full(current):
        zone = render.render(views=member_views, health=health, settings=SETTINGS).zone
        return zone, plan.calculate(current=current, desired=zone)

    (zone, changes), empty_s = timed(lambda: full({}))
    store = dict(changes.puts)
    _, steady_s = timed(lambda: full(store))
    report["keys"] = len(store)
    report["full"] = {"against_empty_store_s": empty_s, "against_full_store_s": steady_s}
    del zone, changes
    gc.collect()

    state = started(member_views, health)
    _, load_s = timed(lambda: state.load_current(store))
    step, step_s = timed(lambda: state.step())
    report["start"] = {"load_current_s": load_s, **cost(step, step_s)}
    settle()

    # one Service changed in one member
    target = ServiceKey(namespace="ns7", name="svc7")
    services = member_views["c0"].services
    old = services[target]
    services[target] = ServiceView(key=target, backends=(*old.backends[1:], Backend(
        address="10.200.0.1", ports=(Port(name="http", port=8080),))))
    state.set_view(member_views["c0"], changed=[target])
    step, seconds = timed(lambda: state.step())
    report["one_service"] = cost(step, seconds)
    echo(state, store, step)
    step, seconds = timed(lambda: state.step())
    report["one_service_echo"] = cost(step, seconds)

    for label, value in (("member_unreachable", Health.UNREACHABLE), ("member_back", Health.READY)):
        state.set_health("c3", value)
        step, seconds = timed(lambda: state.step())
        report[label] = {**cost(step, seconds), "failovers": len(step.failovers)}
        echo(state, store, step)
        step, seconds = timed(lambda: state.step())
        report[label + "_echo"] = cost(step, seconds)
        settle()

    state.mark_all()
    times = []
    while state.dirty:
        step, seconds = timed(lambda: state.step(limit=500))
        times.append(seconds)
    report["chunked_500"] = {"steps": len(times), "mean_s": round(statistics.mean(times), 4),
                             "max_s": max(times), "total_s": round(sum(times), 3)}
    del state
    report["memory_mb"] = memory(member_views, health, store)
    print(json.dumps(report, indent=2))


def started(member_views: dict[str, ClusterView], health: dict[str, Health]) -> ZoneState:
    state = ZoneState(settings=SETTINGS)
    for view in member_views.values():
        state.set_view(view, changed=())
    for cluster, value in health.items():
        state.set_health(cluster, value)
    return state


def memory(member_views: dict[str, ClusterView], health: dict[str, Health],
           store: dict[str, bytes]) -> float:
    """MiB a state holds once started, the store's keys and values included (fresh copies, as
    an etcd read would give it); the views are the watchers' and not counted."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    state = started(member_views, health)
    state.load_current({key.encode().decode(): bytes(bytearray(value)) for key, value in store.items()})
    state.step()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return round(held / 2**20, 1)


if __name__ == "__main__":
    main()
