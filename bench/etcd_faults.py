"""Faults on a 3-member etcd while fed-dns's etcd parts run: how long until they recover.

A real 3-member etcd on loopback; a Writer (fenced by nothing, epoch_key set) writing a put
and every third time a delete; a ZoneMirror; two LeaderElectors. Each member in turn is
SIGKILLed (held down `--hold` seconds, restarted), then SIGSTOPped (held, SIGCONT). Printed
as JSON: per fault, seconds until the next write succeeded, until the mirror was current
again, until one elector led; at the end writes lost and orphans left (etcd against what
the writer was told was written), the mirror against a fresh read, and the most electors
seen leading at once.

    .venv/bin/python bench/etcd_faults.py [--hold 5] [--timeout 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fed_dns.etcd import ranges  # noqa: E402
from fed_dns.etcd.client import EtcdSettings, connect  # noqa: E402
from fed_dns.etcd.leader import LeaderElector  # noqa: E402
from fed_dns.etcd.mirror import ZoneMirror  # noqa: E402
from fed_dns.etcd.writer import Writer  # noqa: E402
from tests.etcd.cluster import etcd_cluster  # noqa: E402
from tests.etcd.faults import Flow, Leaders  # noqa: E402

PREFIX = "/bench-faults/"


async def until(predicate, *, timeout: float) -> float | None:
    """Seconds until predicate() held, or None past the timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return round(time.monotonic() - start, 3)
        await asyncio.sleep(0.01)
    return None


async def bench(*, hold: float, timeout: float, ttl: float) -> dict:
    with etcd_cluster() as cluster:
        settings = EtcdSettings(endpoints=cluster.urls, timeout=timeout)
        client = await connect(settings)
        mirror = ZoneMirror(settings=settings, prefix=PREFIX, probe_interval=0.5)
        flow = Flow(Writer(client=client, concurrency=1, retries=2, timeout=timeout,
                           epoch_key="/bench-faults-epoch"), PREFIX)
        leaders = Leaders()
        elector_clients = [await connect(settings) for _ in range(2)]
        for name, c in zip("ab", elector_clients):
            leaders.electors.append(LeaderElector(client=c, key="/bench-faults-lock",
                                                  identity=name, ttl=ttl, on_change=leaders))
        tasks = [asyncio.create_task(t) for t in
                 (mirror.run(), flow.run(), *(e.run() for e in leaders.electors))]
        faults = []
        try:
            await until(lambda: mirror.connected and flow.written > 10, timeout=30)
            for fault in ("kill", "pause"):
                for index in range(len(cluster.members)):
                    url = cluster.members[index].url
                    before = flow.written
                    used = sorted({client.endpoint, mirror.endpoint})
                    getattr(cluster, fault)(index)
                    start = time.monotonic()
                    terms = sum(e.terms for e in leaders.electors)
                    # all three measured from the fault on, side by side
                    write, watch, leader = await asyncio.gather(
                        until(lambda: flow.written > before + 1, timeout=hold * 4),
                        until(lambda: mirror.connected and mirror.endpoint != url
                              and mirror.get(f"{PREFIX}k{flow.written - 1:05}") is not None,
                              timeout=hold * 4),
                        until(lambda: len(leaders.current()) == 1
                              and sum(e.terms for e in leaders.electors) >= terms,
                              timeout=hold * 4))
                    await asyncio.sleep(max(0.0, hold - (time.monotonic() - start)))
                    (cluster.restart if fault == "kill" else cluster.resume)(index)
                    await asyncio.to_thread(cluster.wait_healthy)
                    faults.append({"fault": fault, "member": index, "member_was_used": url in used,
                                   "write_recovered_s": write, "mirror_recovered_s": watch,
                                   "leader_s": leader,
                                   "new_leader_terms": sum(e.terms for e in leaders.electors)
                                   - terms})
            flow.stopping = True
            await tasks[1]
            fresh = await ranges.read_prefix(client, prefix=PREFIX.encode(), timeout=10)
            await until(lambda: mirror.revision >= fresh.revision, timeout=10)
            lost = sorted(set(flow.expected) - set(fresh.data))
            orphans = sorted(set(fresh.data) - set(flow.expected))
            return {
                "hold_s": hold, "etcd_timeout_s": timeout, "lease_ttl_s": ttl,
                "faults": faults, "writes": flow.written,
                "longest_write_gap_s": round(flow.longest_gap, 3),
                "writes_lost": len(lost), "orphans": len(orphans),
                "wrong_values": sum(fresh.data.get(k) != v for k, v in flow.expected.items()),
                "mirror_equals_fresh_read": dict(mirror.snapshot) == fresh.data,
                "most_leaders_at_once": leaders.most,
                "writer_failovers": client.failovers, "writer_epochs": flow.writer.epochs,
                "mirror_reconnects": mirror.reconnects,
            }
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for c in (client, *elector_clients):
                await c.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hold", type=float, default=5.0, help="seconds each fault lasts")
    parser.add_argument("--timeout", type=float, default=2.0, help="EtcdSettings.timeout")
    parser.add_argument("--ttl", type=float, default=5.0, help="leader lease TTL")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(bench(hold=args.hold, timeout=args.timeout, ttl=args.ttl)),
                     indent=2))


if __name__ == "__main__":
    main()
