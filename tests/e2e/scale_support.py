"""One harness for the scale benchmark (bench/scale.py) and the scaled-down e2e test.

`ScaleRig`: M simulated members (a `SimThread`, in this process, so their kill modes work)
x S exported Services x 3 ready endpoints (`sim.scenario.seed_many`, namespace `bench`), a
real etcd (the caller's), `fed-dns run` (`harness.Daemon`, `publish: endpoints`). Member i
is named `m<i>` and its addresses are `10.<i+1>.x.y`.

The changes and the observers are in `scale_observers`, the measured phases in
`scale_phases`. Every wait has a timeout; `first_times(...)` gives None for "not reached"
instead of raising, so a benchmark phase that fails still reports the others.
"""

from __future__ import annotations

import base64
import random
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import yaml

from tests.e2e.harness import Daemon, SimThread, a_texts, children, stat_fields
from tests.support import LOOPBACK, REPO, EtcdKV

NAMESPACE = "bench"
KEYS_PER_ENDPOINT = 2  # the A key and the SRV key (_tcp/_http) of each endpoint


def zone_prefix(zone: str) -> str:
    return "/skydns/" + "/".join(reversed(zone.rstrip(".").split("."))) + "/"


def member_name(member: int) -> str:
    return f"m{member}"


def first_times(conditions: dict[str, Callable[[], bool]], *, timeout: float,
                interval: float = 0.1) -> dict[str, float | None]:
    """Seconds until each condition first held (polled together from now on; a condition
    met once is not polled again), None for those not reached within `timeout`."""
    start = time.monotonic()
    times: dict[str, float | None] = dict.fromkeys(conditions)
    while time.monotonic() - start < timeout and any(t is None for t in times.values()):
        for name, predicate in conditions.items():
            if times[name] is None:
                try:
                    if predicate():
                        times[name] = round(time.monotonic() - start, 3)
                except Exception:  # noqa: BLE001 - not reached yet
                    pass
        time.sleep(interval)
    return times


def machine_cpu_seconds(text: str | None = None) -> dict[str, float]:
    """The machine's CPU seconds so far, all CPUs summed (/proc/stat's `cpu` line): `all_busy`,
    what every process and interrupt ran, and `steal`, what the hypervisor gave another
    guest while this one wanted to run (a run that lost many CPU seconds to it, or whose
    busy seconds exceed its own processes', shared the machine)."""
    import os

    if text is None:
        with open("/proc/stat") as f:
            text = f.read()
    fields = next(line.split() for line in text.splitlines() if line.startswith("cpu "))
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    tick = os.sysconf("SC_CLK_TCK")
    return {"all_busy": (user + nice + system + irq + softirq) / tick, "steal": steal / tick}


def percentiles(values: Iterable[float], *, scale: float = 1.0, digits: int = 4) -> dict | None:
    """n, p50, p99, max (times `scale`: 1000 for ms); None when there are no values."""
    data = sorted(v * scale for v in values)
    if not data:
        return None
    pick = lambda q: data[min(len(data) - 1, int(q * len(data)))]  # noqa: E731
    return {"n": len(data), "p50": round(statistics.median(data), digits), "p99": round(pick(0.99), digits),
            "max": round(data[-1], digits)}


def vm_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, in MB, from /proc (no psutil)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = round(int(value.split()[0]) / 1024, 1)
    return out


class EtcdCounts(EtcdKV):
    """Counting reads of the JSON gateway that never move values (cheap at 300,000 keys)."""

    def _range_meta(self, prefix: str, **options) -> dict:
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return self._call("/v3/kv/range", {"key": self._b64(prefix), "range_end": self._b64(end), **options})

    def count(self, prefix: str) -> int:
        return int(self._range_meta(prefix, count_only=True).get("count", 0))

    def revision(self) -> int:
        return int(self._range_meta("/", count_only=True)["header"]["revision"])

    def keys(self, prefix: str) -> list[str]:
        return [base64.b64decode(kv["key"]).decode() for kv in self._range_meta(prefix, keys_only=True).get("kvs", [])]


@dataclass
class ScaleRig:
    tmp: Path
    etcd_url: str
    members: int
    services: int
    endpoints: int = 3
    zone: str = "scale.example.com."
    repo: Path = REPO  # the source tree `fed-dns run` runs from
    config: dict = field(default_factory=dict)  # extra daemon config (health, dns, ...)
    etcd_pid: int | None = None  # to count etcd's CPU (cpu_seconds)
    sims: SimThread | None = None
    daemon: Daemon | None = None
    current: dict[tuple[int, int], list[str]] = field(default_factory=dict)  # (member, n) -> addresses

    # -- lifecycle ---------------------------------------------------------------------------

    def start_members(self) -> float:
        """Start and seed every member; the seconds it took."""
        from fed_dns.sim import scenario

        started = time.monotonic()
        self.sims = SimThread()
        for member in range(self.members):
            cluster = self.sims.add(member_name(member), history_limit=max(10_000, 4 * self.services))
            self.sims.call(scenario.seed_many, cluster, index=member + 1, services=self.services,
                           endpoints=self.endpoints, namespace=NAMESPACE, timeout=300)
        return time.monotonic() - started

    def start_daemon(self) -> Daemon:
        """`fed-dns run` as a subprocess (not waited for: see `answered`, `key_count`)."""
        self.daemon = Daemon(tmp=self.tmp, sims=self.sims, etcd_url=self.etcd_url, zone=self.zone,
                             repo=self.repo, log_level="info", extra=self.config)
        self.daemon.config_path.write_text(yaml.safe_dump(self.daemon.config))
        self.daemon.start_process()
        return self.daemon

    def restart_daemon(self) -> Daemon:
        self.daemon.stop(timeout=30)
        self.daemon.start_process()
        return self.daemon

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.stop(timeout=30)
        if self.sims is not None:
            self.sims.close()

    def __enter__(self) -> ScaleRig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what should be served -----------------------------------------------------------------

    @property
    def prefix(self) -> str:
        return zone_prefix(self.zone)

    @property
    def expected_keys(self) -> int:
        return self.members * self.services * self.endpoints * KEYS_PER_ENDPOINT

    def addresses(self, member: int, n: int) -> list[str]:
        from fed_dns.sim import scenario

        found = self.current.get((member, n))
        return found if found is not None else scenario.many_addresses(index=member + 1, n=n, endpoints=self.endpoints)

    def cluster_name(self, member: int, n: int) -> str:
        return f"{member_name(member)}.svc-{n}.{NAMESPACE}.{self.zone}"

    def merged_name(self, n: int) -> str:
        return f"svc-{n}.{NAMESPACE}.{self.zone}"

    def key_of(self, member: int, n: int, address: str) -> str:
        from fed_dns.records import codec

        return f"{self.prefix}{NAMESPACE}/svc-{n}/{member_name(member)}/{codec.backend_id(address)}"

    def sample(self, count: int, *, seed: int = 1, members: Iterable[int] | None = None) -> list[tuple[int, int]]:
        rng = random.Random(seed)
        chosen = list(members) if members is not None else list(range(self.members))
        return [(rng.choice(chosen), rng.randrange(self.services)) for _ in range(count)]

    # -- reading the daemon and etcd -------------------------------------------------------------

    def query(self, name: str, *, timeout: float = 2.0) -> set[str]:
        """The A addresses answered (with EDNS: 30 addresses do not fit in 512 bytes)."""
        reply = dns.query.udp(dns.message.make_query(name, "A", use_edns=0, payload=4096), LOOPBACK,
                              port=self.daemon.dns_port, timeout=timeout)
        if reply.flags & dns.flags.TC:
            raise RuntimeError(f"{name}: truncated answer")
        return a_texts(reply)

    def answered(self, pairs: Iterable[tuple[int, int]]) -> bool:
        """Every sampled member's name answers exactly its current addresses."""
        return all(self.query(self.cluster_name(m, n)) == set(self.addresses(m, n)) for m, n in pairs)

    def unreachable(self, member: int) -> bool:
        """The daemon's /status shows `member` unreachable: its health probes decided it."""
        clusters = self.daemon.status()["clusters"]
        return any(c["name"] == member_name(member) and c["health"] == "unreachable" for c in clusters)

    def withdrawn_from_dns(self, member: int, services: Iterable[int]) -> bool:
        """Every sampled merged name answers, with no address of `member`."""
        mark = f"10.{member + 1}."
        for n in services:
            answer = self.query(self.merged_name(n))
            if not answer or any(a.startswith(mark) for a in answer):  # empty: not served, not withdrawn
                return False
        return True

    def withdrawn_from_etcd(self, member: int, services: Iterable[int]) -> bool:
        """No sampled Service has a backend key of `member` (its fallback CNAME may stay)."""
        kv = EtcdCounts(self.etcd_url)
        return not any(kv.keys(f"{self.prefix}{NAMESPACE}/svc-{n}/{member_name(member)}/") for n in services)

    def key_count(self) -> int:
        return EtcdCounts(self.etcd_url).count(self.prefix)

    def rss(self) -> dict[str, float]:
        """The daemon's VmRSS/VmHWM, and its child processes (the DNS workers) summed."""
        pid = self.daemon.proc.pid
        out = vm_status(pid)
        workers = [vm_status(child).get("VmRSS", 0.0) for child in children(pid)]
        return {**out, "children_VmRSS": round(sum(workers), 1),
                "total_VmRSS": round(out.get("VmRSS", 0.0) + sum(workers), 1)}

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) so far of the daemon, its DNS workers, etcd and this
        process (the members and the observers); and the machine's (`machine_cpu_seconds`)."""
        import os

        tick = os.sysconf("SC_CLK_TCK")

        def cpu(pid: int) -> float:
            try:
                fields = stat_fields(f"/proc/{pid}/stat")
            except OSError:
                return 0.0
            return (int(fields[11]) + int(fields[12])) / tick

        out = {"bench": cpu(os.getpid())}
        if self.daemon is not None and self.daemon.proc is not None:
            out["daemon"] = cpu(self.daemon.proc.pid)
            out["workers"] = sum(cpu(c) for c in children(self.daemon.proc.pid))
        if self.etcd_pid is not None:
            out["etcd"] = cpu(self.etcd_pid)
        out.update(machine_cpu_seconds())
        return out

    # -- changing the members -------------------------------------------------------------------

    def replace_last(self, member: int, n: int, address: str) -> None:
        """Give svc-<n> of `member` a new last endpoint address (on the members' loop)."""
        self.sims.call(self.replace_last_now, member, n, address)

    def replace_last_now(self, member: int, n: int, address: str) -> None:
        """As replace_last, called on the members' loop (Churn does)."""
        from fed_dns.sim import scenario

        addresses = self.addresses(member, n)[:-1] + [address]
        self.sims.clusters[member_name(member)].apply(
            scenario.many_slice(service=n, addresses=addresses, namespace=NAMESPACE))
        self.current[(member, n)] = addresses

    def kill(self, member: int, mode: str = "stop") -> None:
        cluster = self.sims.clusters[member_name(member)]
        self.sims.call(cluster.kill, mode)

    def revive(self, member: int) -> None:
        cluster = self.sims.clusters[member_name(member)]
        self.sims.call(cluster.revive)
