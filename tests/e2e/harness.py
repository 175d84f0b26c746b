"""End-to-end harness: simulated clusters on a loop thread, `fed-dns run` as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import yaml

from tests.support import LOOPBACK, REPO, EtcdKV, free_port, stop_process, wait_for


def a_texts(reply: dns.message.Message) -> set[str]:
    """The addresses of every A RRset in `reply`'s answer section, as dnspython reads them."""
    return {rr.to_text() for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rr in rrset}


class SimThread:
    """SimClusters served by an event loop on a thread, driven from synchronous tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sims", daemon=True)
        self.thread.start()
        self.clusters: dict[str, object] = {}

    def call(self, fn, *args, timeout: float = 30, **kwargs):
        async def run():
            result = fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=timeout)

    def add(self, name: str, **options):
        """A SimCluster (`options`: its keyword arguments) serving on a free loopback port."""
        from fed_dns.sim.cluster import SimCluster

        cluster = self.call(SimCluster, name=name, **options)
        self.call(cluster.start, host=LOOPBACK, port=0)
        self.clusters[name] = cluster
        return cluster

    def close(self) -> None:
        for cluster in self.clusters.values():
            with contextlib.suppress(Exception):
                self.call(cluster.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def seed_service(sims: SimThread, name: str, *, index: int, ready: bool = True) -> None:
    """`mysql` in namespace `ns` with endpoints 10.<index>.0.1-2 (sim.scenario)."""
    from fed_dns.sim import scenario

    sims.call(scenario.seed_mysql, sims.clusters[name], index=index, ready=2 if ready else 0)


class Daemon:
    """`fed-dns run --config FILE` as a subprocess with its output in a file.

    `repo`: the source tree it runs from (another checkout to compare with, in benches)."""

    def __init__(self, *, tmp: Path, sims: SimThread, etcd_url: str | None, extra: dict | None = None,
                 zone: str = "fed.example.com.", repo: Path = REPO, log_level: str = "debug") -> None:
        self.repo = repo
        self.log_level = log_level
        self.dns_port = free_port()
        self.http_port = free_port()
        self.tmp = tmp
        self.zone = zone
        clusters = []
        for name, cluster in sims.clusters.items():
            path = tmp / f"{name}.kubeconfig"
            sims.call(cluster.write_kubeconfig, path)
            clusters.append({"name": name, "kubeconfig": str(path), "context": name})
        self.config = {
            "zone": zone,
            "clusters": clusters,
            "publish": "endpoints",
            "health": {"period": "500ms", "timeout": "500ms", "failure_threshold": 3,
                       "success_threshold": 2},
            "dns": {"listen": f"{LOOPBACK}:{self.dns_port}"},
            "http": {"listen": f"{LOOPBACK}:{self.http_port}"},
            "etcd": {"endpoints": [etcd_url] if etcd_url else []},
            "leader_election": {"enabled": bool(etcd_url), "lease_ttl": "3s"},
            # several daemons run side by side in tests: the federation API only where a
            # test asks for it (with its own port and directory)
            "api": {"enabled": False},
        }
        for key, value in (extra or {}).items():  # a section given merges into the default one
            if isinstance(value, dict) and isinstance(self.config.get(key), dict):
                value = {**self.config[key], **value}
            self.config[key] = value
        self.config_path = tmp / "fed-dns.yaml"
        self.log_path = tmp / "daemon.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Daemon":
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.start_process()
        wait_for(self.ready, timeout=30, what="daemon /readyz")
        return self

    def start_process(self) -> None:
        """Start `fed-dns run` on the config file as it is, without waiting for readiness."""
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fed_dns.cli", "--log-level", self.log_level, "run", "--config",
             str(self.config_path)], cwd=self.repo, stdout=self.log, stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.output()}")
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self.http_port}/readyz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def status(self) -> dict:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{self.http_port}/status", timeout=2) as r:
            return json.load(r)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{self.http_port}/metrics", timeout=2) as r:
            return r.read().decode()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc is None:
            return 0
        code = stop_process(self.proc, sig=sig, timeout=timeout)
        self.log.close()
        self.proc = None
        return code

    def query(self, name: str, rdtype: str = "A", *, tcp: bool = False) -> dns.message.Message:
        q = dns.message.make_query(name, rdtype)
        if tcp:
            return dns.query.tcp(q, LOOPBACK, port=self.dns_port, timeout=2)
        return dns.query.udp(q, LOOPBACK, port=self.dns_port, timeout=2)

    def addresses(self, name: str) -> set[str]:
        return a_texts(self.query(name))

    def cnames(self, name: str) -> set[str]:
        reply = self.query(name)
        return {rr.to_text() for rrset in reply.answer if rrset.rdtype == dns.rdatatype.CNAME for rr in rrset}


def etcd_items(url: str, prefix: str) -> dict[str, dict]:
    """The keys under prefix and their decoded JSON values."""
    return EtcdKV(url).items(prefix)


def etcd_mod_revisions(url: str, prefix: str) -> dict[str, int]:
    """The keys under prefix and the revision each was last written at."""
    return EtcdKV(url).mod_revisions(prefix)


def etcd_put(url: str, key: str, value: str) -> None:
    EtcdKV(url).put(key, value.encode())


def stat_fields(path: str) -> list[str]:
    """The fields of a /proc `stat` file after the command name (field 3 onwards): the name
    is in parentheses and may hold spaces."""
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read().rsplit(")", 1)[1].split()


def thread_nices(pid: int) -> list[int]:
    """The nice value of each thread of process `pid` (Linux /proc)."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            out.append(int(stat_fields(f"/proc/{pid}/task/{tid}/stat")[16]))  # field 19
    return out


def children(pid: int, *, running: str = "") -> list[int]:
    """The child processes of `pid` (those whose command line holds `running`)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # gone meanwhile
                if running.encode() in Path(f"/proc/{child}/cmdline").read_bytes():
                    out.append(int(child))
    return out


def timed(predicate, *, timeout: float, what: str) -> float:
    """Seconds until predicate() holds (polling every 20 ms)."""
    start = time.monotonic()
    wait_for(predicate, timeout=timeout, interval=0.02, what=what)
    return time.monotonic() - start
