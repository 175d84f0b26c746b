"""A real 3-member etcd cluster on loopback for the failover tests and bench/etcd_faults.py:
members on free ports, each with its own data dir; kill, pause (SIGSTOP), resume and restart
any one of them. Every process is stopped at the end."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import LOOPBACK, free_port, stop_process, wait_for


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    scheme: str = "http"
    proc: subprocess.Popen | None = None
    paused: bool = False

    @property
    def url(self) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{LOOPBACK}:{self.peer_port}"


@dataclass
class EtcdCluster:
    directory: Path
    size: int = 3
    # Extra etcd flags for every member (TLS: --cert-file, --client-cert-auth, ...).
    extra: Sequence[str] = ()
    scheme: str = "http"
    members: list[Member] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.members = [Member(name=f"m{i}", client_port=free_port(), peer_port=free_port(),
                               data_dir=self.directory / f"m{i}", scheme=self.scheme)
                        for i in range(self.size)]

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(m.url for m in self.members)

    def start(self) -> None:
        for member in self.members:
            self._spawn(member)
        if self.scheme == "http":
            for member in self.members:
                wait_for(lambda m=member: self._healthy(m), timeout=30,
                         what=f"etcd member {member.name}")

    def _spawn(self, member: Member) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            raise RuntimeError("etcd is not on PATH: run `make system-deps`")
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        args = [binary, "--name", member.name, "--data-dir", str(member.data_dir),
                "--listen-client-urls", member.url, "--advertise-client-urls", member.url,
                "--listen-peer-urls", member.peer_url,
                "--initial-advertise-peer-urls", member.peer_url,
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", self.directory.name,
                # Quicker raft elections than the defaults (100/1000 ms), still far above
                # the loopback round trip.
                "--heartbeat-interval", "50", "--election-timeout", "500",
                "--log-level", "error", *self.extra]
        env = dict(os.environ, ETCD_UNSUPPORTED_ARCH=os.environ.get("ETCD_UNSUPPORTED_ARCH", ""))
        member.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, env=env)
        member.paused = False

    @staticmethod
    def _healthy(member: Member) -> bool:
        if member.proc is not None and member.proc.poll() is not None:
            raise RuntimeError(f"etcd member {member.name} exited ({member.proc.returncode})")
        with urllib.request.urlopen(f"{member.url}/health", timeout=1) as resp:
            return b'"health":"true"' in resp.read()

    def kill(self, index: int) -> None:
        """SIGKILL member `index` (its data stays: `restart` brings it back)."""
        member = self.members[index]
        if member.proc is not None:
            member.proc.kill()
            member.proc.wait()
            member.proc = None

    def restart(self, index: int) -> None:
        """Start a killed member again on its data (it rejoins the cluster)."""
        member = self.members[index]
        if member.proc is None:
            self._spawn(member)

    def pause(self, index: int) -> None:
        member = self.members[index]
        assert member.proc is not None
        member.proc.send_signal(signal.SIGSTOP)
        member.paused = True

    def resume(self, index: int) -> None:
        member = self.members[index]
        if member.proc is not None and member.paused:
            member.proc.send_signal(signal.SIGCONT)
        member.paused = False

    def wait_healthy(self, *, timeout: float = 30) -> None:
        """Until every member reports itself healthy (one raft leader, all caught up)."""
        for member in self.members:
            wait_for(lambda m=member: self._healthy(m), timeout=timeout,
                     what=f"etcd member {member.name} healthy")

    def stop(self) -> None:
        for member in self.members:
            if member.proc is None:
                continue
            if member.paused:
                member.proc.send_signal(signal.SIGCONT)
            stop_process(member.proc)
            member.proc = None


@contextlib.contextmanager
def etcd_cluster(*, size: int = 3, extra: Sequence[str] = (), scheme: str = "http",
                 directory: Path | None = None) -> Iterator[EtcdCluster]:
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="fed-dns-etcd-cluster-")))
        cluster = EtcdCluster(directory=directory, size=size, extra=extra, scheme=scheme)
        stack.callback(cluster.stop)
        cluster.start()
        yield cluster
