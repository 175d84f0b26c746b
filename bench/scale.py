#!/usr/bin/env python3
"""Scale benchmark (issue 8; run by hand; prints JSON): M members x S Services x 3 endpoints.

Per size, a fresh etcd, M simulated members in this process (tests/e2e/scale_support.py, the
harness the e2e scale test shares) and `fed-dns run` as a subprocess (`publish: endpoints`,
health period 1 s, timeout 1 s, 3 failures: detection about 3 s; lease TTL 5 s, the default). Phases, each capped by
`--phase-timeout` ("not reached" is null):

- start: daemon start -> /readyz, -> a sample of names answered, -> every key in etcd; RSS;
- churn: `--rate` EndpointSlice changes/s for `--duration` s (a fresh last address each):
  event -> DNS answer (the latest change, polled), event -> etcd (the prefix watched), p50/p99,
  and the backlog (changes not yet in etcd) every 5 s;
- kill: one member stops (connections refused and cut) -> detected (the daemon's /status
  shows it unreachable), withdrawn from DNS and from etcd, with the DNS query latency
  (queries at 1,000/s, one at a time) during the write; then revived (`--kills N`: N
  members in turn, the latency during their writes pooled);
- hang: once etcd is quiet, another member hangs (accepts, never answers) during churn ->
  detected and withdrawn times;
- restart: the daemon restarts at full size -> /readyz and answered times, etcd revisions
  written while it settles (0: nothing rewritten), and the next change's time to etcd;
  before it, etcd's revision and database size (file, in use: the history the phases left).

    .venv/bin/python bench/scale.py [--members 10] [--services 1000,2000,5000] [--rate 1000]
        [--duration 60] [--phase-timeout 180] [--repo DIR]   # DIR: another checkout to measure
        [--dns-workers auto|N] [--control-nice N] [--etcd-compaction 60s]
        [--phases churn,kill,hang,restart] [--kills N] [--daemon-log FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.scale_phases import churn, kill, kills, restart, start  # noqa: E402
from tests.e2e.scale_support import ScaleRig  # noqa: E402
from tests.support import REPO, running_etcd  # noqa: E402

HEALTH = {"period": "1s", "timeout": "1s", "failure_threshold": 3, "success_threshold": 2}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def phase(results: dict, name: str, fn, *args) -> None:
    """Run one phase; its dict, or its error, under results[name]."""
    log(f"{name} ...")
    try:
        results[name] = fn(*args)
    except Exception as exc:  # noqa: BLE001 - reported, the next phases still run
        results[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        traceback.print_exc(file=sys.stderr)
    log(f"{name}: {json.dumps(results[name])[:400]}")


def run_size(*, members: int, services: int, args) -> dict:
    results: dict = {"members": members, "services": services, "endpoints": 3,
                     "expected_keys": members * services * 3 * 2}
    with running_etcd() as etcd, tempfile.TemporaryDirectory(prefix="fed-dns-scale-") as tmp:
        config = {"health": HEALTH, "leader_election": {"lease_ttl": "5s"},  # the defaults
                  "dns": {"workers": args.dns_workers if args.dns_workers == "auto" else int(args.dns_workers)}}
        if args.control_nice is not None:
            config["dns"]["control_nice"] = args.control_nice
        if args.etcd_compaction is not None:  # (only when given: a checkout from before has no such key)
            config["etcd"] = {"compaction_interval": args.etcd_compaction}
        with ScaleRig(tmp=Path(tmp), etcd_url=etcd.url, members=members, services=services,
                      repo=Path(args.repo), config=config, etcd_pid=etcd.proc.pid) as rig:
            log(f"seeding {members} x {services}")
            gc.enable()
            results["seed_members_s"] = round(rig.start_members(), 2)
            # This process runs the members and the observers: its own collections (over the
            # members' objects, and the objects of each change that replace them) stalled the
            # churn loop by 1.2-1.8 s, delaying watch events and observations, counted against
            # the daemon. A benchmark's process may leak its few cycles for a few minutes.
            gc.freeze()
            gc.disable()
            phase(results, "start", start, rig, args.phase_timeout)
            if results["start"].get("answered_s") is None:
                results["note"] = "start not reached: the other phases are skipped"
                return results
            if "churn" in args.phases:
                phase(results, "churn", churn, rig, args.rate, args.duration, 0)
            if "kill" in args.phases and args.kills == 1:
                phase(results, "kill", kill, rig, members - 1, args.phase_timeout)
            elif "kill" in args.phases:
                phase(results, "kills", kills, rig, args.kills, args.phase_timeout)
            if members >= 2 and "hang" in args.phases:
                phase(results, "churn_with_hung_member", lambda: churn(
                    rig, args.rate, max(20.0, args.duration / 2), 10_000_000, hang=members - 2,
                    timeout=args.phase_timeout))
                rig.revive(members - 2)
            if "restart" in args.phases:
                phase(results, "restart", restart, rig, args.phase_timeout)
            results["daemon_log_tail"] = rig.daemon.output()[-1500:]
            if args.daemon_log:
                Path(args.daemon_log).write_text(rig.daemon.log_path.read_text(errors="replace"))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--services", default="1000,2000,5000", help="comma-separated sizes")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--phase-timeout", type=float, default=180.0)
    parser.add_argument("--repo", default=str(REPO), help="source tree of the daemon under test")
    parser.add_argument("--dns-workers", default="auto", help="dns.workers of the daemon (auto, 0, N)")
    parser.add_argument("--control-nice", type=int, help="dns.control_nice of the daemon (default: its own)")
    parser.add_argument("--etcd-compaction", help="etcd.compaction_interval of the daemon, e.g. 60s "
                                                  "(default: its own)")
    parser.add_argument("--phases", default="churn,kill,hang,restart",
                        help="comma-separated phases after the start (churn, kill, hang, restart)")
    parser.add_argument("--kills", type=int, default=1,
                        help="kill phase: kill (and revive) this many members in turn; the DNS latency "
                             "during their writes pooled")
    parser.add_argument("--daemon-log", help="write the daemon's whole log (the last size's) to this file")
    args = parser.parse_args()
    args.phases = set(args.phases.split(","))
    runs = []
    for services in (int(s) for s in args.services.split(",")):
        runs.append(run_size(members=args.members, services=services, args=args))
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"benchmark": "scale", "rate": args.rate, "duration_s": args.duration,
                      "health": HEALTH, "dns_workers": args.dns_workers, "phases": sorted(args.phases),
                      "repo": args.repo, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
