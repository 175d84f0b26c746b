"""Federated replicas moving when a member dies and returns (run by hand; prints JSON).

    .venv/bin/python bench/reschedule.py [--runs 10] [--workloads 200] [--clusters 5]

In one process, on loopback: simulated members (SimCluster), the federation API (memory
store), a real health prober per member (period 0.1 s, 2 failures declare it unreachable,
1 success ready) and the ReplicaLoop (tests/e2e/replicas_harness.py).

- `failover`: `--runs` times: the seed workload (4 replicas, weights 1:1, rebalance) on
  c1 + c2; c2 killed: seconds from the kill and from the declaration to c1's spec.replicas
  being 4 (min/median/max); revived: seconds to 2 + 2 again (`failback`).
- `round`: `--workloads` plain Deployments (one replica per member) over `--clusters`
  members; one member killed: seconds from the declaration until every workload's
  survivors carry its replica, and the loop's own time for that run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fed_dns.model import Health  # noqa: E402
from tests.e2e.replicas_harness import Federation, declared  # noqa: E402
from tests.e2e.test_replicas import tomcat  # noqa: E402

POLL = 0.002


async def wait(predicate, *, timeout: float) -> float:
    """Poll until true; the monotonic time it was first seen true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(POLL)
    return time.monotonic()


def spread(values: list[float]) -> dict:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "max": round(max(values), 3), "runs": len(values)}


async def failover(runs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        fed = Federation(Path(tmp))
        await fed.start()
        try:
            await fed.create(tomcat())
            at = lambda want: lambda: fed.spec_replicas("Deployment", "tomcat") == want  # noqa: E731
            await wait(at({"c1": 2, "c2": 2}), timeout=10)
            from_kill, from_declared, failback = [], [], []
            for _ in range(runs):
                killed = time.monotonic()
                fed.members["c2"].kill()
                done = await wait(lambda: fed.spec_replicas("Deployment", "tomcat").get("c1")
                                  == 4, timeout=10)
                when = declared(fed, "c2", Health.UNREACHABLE, after=killed)
                from_kill.append(done - killed)
                from_declared.append(done - when)
                revived = time.monotonic()
                await fed.members["c2"].revive()
                done = await wait(at({"c1": 2, "c2": 2}), timeout=10)
                failback.append(done - revived)
            return {"kill_to_survivors": spread(from_kill),
                    "declared_to_survivors": spread(from_declared),
                    "revive_to_spread": spread(failback)}
        finally:
            await fed.close()


async def round_time(workloads: int, clusters: int) -> dict:
    names = tuple(f"c{i + 1}" for i in range(clusters))
    with tempfile.TemporaryDirectory() as tmp:
        fed = Federation(Path(tmp))
        await fed.start(clusters=names)
        try:
            started = time.monotonic()
            for i in range(workloads):
                obj = tomcat(replicas=clusters)
                obj["metadata"] = {"name": f"w{i}", "namespace": "default"}
                await fed.create(obj)
            stores = [m.store for m in fed.members.values()]

            from fed_dns.sim.kinds import DEPLOYMENT

            def placed_everywhere() -> bool:
                return all(s.count(DEPLOYMENT) == workloads for s in stores)

            await wait(placed_everywhere, timeout=120)
            initial = time.monotonic() - started
            await asyncio.sleep(1.0)  # statuses settle
            victim = names[-1]
            runs_before = fed.loop.stats.runs
            killed = time.monotonic()
            fed.members[victim].kill()
            survivors = [fed.members[n] for n in names[:-1]]

            def moved() -> bool:
                total = 0
                for m in survivors:
                    for stored in m.store.list(DEPLOYMENT)[0]:
                        total += stored.obj["spec"].get("replicas", 1)
                return total == workloads * clusters

            done = await wait(moved, timeout=60)
            await wait(lambda: fed.loop.stats.runs > runs_before, timeout=10)
            when = declared(fed, victim, Health.UNREACHABLE, after=killed)
            return {"workloads": workloads, "clusters": clusters,
                    "initial_propagation_seconds": round(initial, 3),
                    "declared_to_all_moved_seconds": round(done - when, 3),
                    "kill_to_all_moved_seconds": round(done - killed, 3),
                    "loop_runs": fed.loop.stats.runs - runs_before,
                    "loop_run_seconds": round(fed.loop.stats.last_run_seconds, 3),
                    "writes": fed.loop.stats.writes}
        finally:
            await fed.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--workloads", type=int, default=200)
    parser.add_argument("--clusters", type=int, default=5)
    args = parser.parse_args()
    out = {"failover": await failover(args.runs),
           "round": await round_time(args.workloads, args.clusters)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
