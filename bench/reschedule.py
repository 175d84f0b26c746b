"""Federated replicas moving when a member dies and returns (run by hand; prints JSON).

    .venv/bin/python bench/reschedule.py [--runs 10] [--default-runs 5] [--workloads 200]
        [--clusters 5] [--takeover-runs 10] [--lease-ttl 5]

In one process, on loopback: simulated members (SimCluster), the federation API (memory
store), a real health prober per member (period 0.1 s, 2 failures declare it unreachable,
1 success ready) and the ReplicaLoop (tests/e2e/replicas_harness.py).

- `failover`: `--runs` times: the seed scenario (federation.md's ReplicaSet: 4 replicas,
  weights 1:1, rebalance) on c1 + c2, members that run pods; c2's API server stopped:
  seconds from the kill and from the declaration to c1's spec.replicas being 4
  (min/median/max); revived: seconds to 2 + 2 again (`revive_to_spread`), c1 scaled down
  only as c2's pods are ready (they kept running: a control-plane partition).
- `failover_default_health`: the same with the default health settings (period 1 s,
  timeout 1 s, 3 failures declare it unreachable, 2 successes ready): the time from the
  kill a user sees (`--default-runs` runs).
- `takeover`: `--takeover-runs` times: two `fed-dns run` on one real etcd (leader election
  with `--lease-ttl`, default 5 s as in the config), c1 + c2 simulated members, the tomcat
  Deployment at 2 + 2; the leader SIGKILLed (no resign: its lease must expire) and the
  federated Deployment scaled at once through the survivor's API (kubectl scale): seconds
  from the kill until the survivor leads (`kill_to_leader`) and until the members carry the
  new spread (`kill_to_written`, a write only the new leader can make); the killed one is
  started again (a follower) for the next run.
- `round`: `--workloads` plain Deployments (one replica per member) over `--clusters`
  members (controller-free: spec.replicas is what is measured; pods would only add the
  simulated kubelets' work to this one process); one member killed: seconds from the
  declaration until every workload's survivors carry its replica, and the loop's own time
  for that run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fed_dns.model import Health  # noqa: E402
from tests.e2e.replicas_harness import Federation, declared  # noqa: E402
from tests.e2e.test_replicas import member_ready, seed_replica_set, tomcat  # noqa: E402

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


async def failover(runs: int, *, default_health: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        fed = Federation(Path(tmp))
        await fed.start(pods=True, default_health=default_health)
        try:
            obj = seed_replica_set()
            obj["metadata"]["namespace"] = "default"
            await fed.create(obj)

            def at(want: dict):
                return lambda: fed.spec_replicas("ReplicaSet", "tomcat") == want

            def ready(c1: int, c2: int):
                return lambda: (member_ready(fed, "c1"), member_ready(fed, "c2")) == (c1, c2)

            await wait(at({"c1": 2, "c2": 2}), timeout=30)
            from_kill, from_declared, failback = [], [], []
            for _ in range(runs):
                await wait(ready(2, 2), timeout=30)
                killed = time.monotonic()
                fed.members["c2"].kill("stop")
                done = await wait(lambda: fed.spec_replicas("ReplicaSet", "tomcat").get("c1")
                                  == 4, timeout=30)
                when = declared(fed, "c2", Health.UNREACHABLE, after=killed)
                from_kill.append(done - killed)
                from_declared.append(done - when)
                await wait(ready(4, 2), timeout=30)
                revived = time.monotonic()
                await fed.members["c2"].revive()
                done = await wait(at({"c1": 2, "c2": 2}), timeout=30)
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


def takeover(runs: int, *, lease_ttl: float) -> dict:
    """Two daemons on one etcd: SIGKILL the leader, time the survivor's takeover and its
    first write to the members (see the module's docstring)."""
    from tests.e2e.harness import SimThread
    from tests.e2e.test_daemon_replicas import (
        TOMCAT, daemon, kubeconfig_of, kubectl, leader_of, member_replicas)
    from tests.support import running_etcd, wait_for

    with tempfile.TemporaryDirectory() as tmp, running_etcd() as etcd:
        tmp = Path(tmp)
        sims = SimThread()
        pair = []
        try:
            for name in ("c1", "c2"):
                sims.add(name, use_tls=True)
            pair = [daemon(tmp, name, sims, etcd.url, lease_ttl=lease_ttl) for name in "ab"]
            for d in pair:
                d.start()
            configs = {id(d): kubeconfig_of(d, tmp / f"{i}.kubeconfig") for i, d in enumerate(pair)}
            leader, follower = wait_for(lambda: leader_of(pair), timeout=30, what="one leader")
            applied = kubectl(configs[id(follower)], "apply", "-f", "-",
                              stdin=json.dumps(TOMCAT))
            assert applied.returncode == 0, applied.stderr

            def members() -> tuple:
                return member_replicas(sims, "c1"), member_replicas(sims, "c2")

            wait_for(lambda: members() == (2, 2), timeout=30, what="2 + 2")
            to_leader, to_written = [], []
            for run in range(runs):
                total = 6 if run % 2 == 0 else 4
                killed = time.monotonic()
                leader.stop(signal.SIGKILL)
                scaled = kubectl(configs[id(follower)], "scale", "deployment", "tomcat",
                                 f"--replicas={total}")
                assert scaled.returncode == 0, scaled.stderr
                wait_for(lambda: follower.status()["leader"] is True, timeout=30,
                         what="takeover")
                to_leader.append(time.monotonic() - killed)
                wait_for(lambda: members() == (total // 2, total // 2), timeout=30,
                         what=f"{total // 2} + {total // 2}")
                to_written.append(time.monotonic() - killed)
                leader.start()  # back, as a follower
                leader, follower = wait_for(lambda: leader_of(pair), timeout=30,
                                            what="one leader")
            return {"lease_ttl": lease_ttl, "kill_to_leader": spread(to_leader),
                    "kill_to_written": spread(to_written)}
        finally:
            for d in pair:
                d.stop()
            sims.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--workloads", type=int, default=200)
    parser.add_argument("--clusters", type=int, default=5)
    parser.add_argument("--default-runs", type=int, default=5)
    parser.add_argument("--takeover-runs", type=int, default=10)
    parser.add_argument("--lease-ttl", type=float, default=5.0)
    args = parser.parse_args()
    out = {"failover": await failover(args.runs),
           "failover_default_health": await failover(args.default_runs, default_health=True),
           "round": await round_time(args.workloads, args.clusters),
           "takeover": await asyncio.to_thread(takeover, args.takeover_runs,
                                               lease_ttl=args.lease_ttl)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
