"""Test helpers shared by every suite: free loopback ports, a real etcd, process control."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent


_EPHEMERAL_DEFAULT = (32768, 60999)  # Linux's default ip_local_port_range
_ports_given: set[int] = set()
_port_random = random.Random(os.urandom(16))  # its own, so no seeding of `random` makes runs agree


def ephemeral_range() -> tuple[int, int]:
    """The ports the kernel picks for bind(0) and outgoing connections."""
    try:
        low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return _EPHEMERAL_DEFAULT
    return low, high


def _port_candidates() -> range:
    low, high = ephemeral_range()
    if low - 1024 >= 2048:
        return range(max(1024, low - 16384), low)
    if 65535 - high >= 2048:
        return range(high + 1, 65536)
    return range(0)  # no room outside the kernel's range: bind(0) below


def free_port() -> int:
    """A port free for both TCP and UDP on loopback (DNS listens on both).

    Chosen outside the kernel's ephemeral range: a port from bind(0) is back in the pool the
    moment the probe closes, and any outgoing connection (a daemon's to its members, etcd's
    peers) may take it before the test's server binds it; CI saw a DNS worker refused its port
    so. Outside that range only someone asking for the very port can take it, and this process
    never hands a port out twice."""
    candidates = _port_candidates()
    for _ in range(200 if candidates else 50):
        if candidates:
            port = _port_random.choice(candidates)
            if port in _ports_given:
                continue
        else:
            port = 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            try:
                t.bind((LOOPBACK, port))
            except OSError:
                continue
            port = t.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.bind((LOOPBACK, port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    raise RuntimeError("no free loopback port")


def wait_for(predicate, *, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Poll until predicate() is truthy; return its value or raise AssertionError."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - reported below
            # Its text only: the exception's traceback holds this frame, so keeping the
            # exception made a cycle that left what it holds (an HTTPError's response and
            # socket, say an etcd /health 503) unclosed until a collection.
            last_error = repr(exc)
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))


async def until(predicate, *, timeout: float = 5.0, what: str = "condition", interval: float = 0.005):
    """Poll predicate() on the event loop until truthy; its value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running(coro: Coroutine) -> AsyncIterator[asyncio.Task]:
    """Run a coroutine (a `run()` loop) as a task for the block; cancel and await it after."""
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        await stop_task(task)


async def stop_task(task: asyncio.Task, *, patience: float = 30.0) -> None:
    """Cancel a task and wait for it, cancelling again while it goes on: on Python 3.11 an
    `asyncio.wait_for` inside a library (aetcd's calls) can swallow a cancel that comes just
    as its call finishes, and a single cancel then never ends the loop around it."""
    deadline = time.monotonic() + patience
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
        if time.monotonic() > deadline:
            stack = "".join(f"  {frame}\n" for frame in task.get_stack())
            raise AssertionError(f"task {task.get_name()} ignored cancellation for {patience:g}s:\n{stack}")
    with contextlib.suppress(asyncio.CancelledError):
        await task


def stop_process(proc: subprocess.Popen, *, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
    """Signal a process (SIGTERM: its own ordered shutdown), wait, kill it past the timeout.
    Returns its exit status (-9 when it had to be killed)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -9


@dataclass
class EtcdProcess:
    """A real etcd on free loopback ports, with its own data dir."""

    client_port: int
    peer_port: int
    data_dir: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.client_port}"

    def start(self) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            raise RuntimeError("etcd is not on PATH: run `make test`, which installs etcd-server")
        args = [
            binary, "--name", "test",
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.url,
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", f"http://{LOOPBACK}:{self.peer_port}",
            "--initial-advertise-peer-urls", f"http://{LOOPBACK}:{self.peer_port}",
            "--initial-cluster", f"test=http://{LOOPBACK}:{self.peer_port}",
            "--log-level", "error",
        ]
        env = dict(os.environ, ETCD_UNSUPPORTED_ARCH=os.environ.get("ETCD_UNSUPPORTED_ARCH", ""))
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        wait_for(self._healthy, timeout=20, what=f"etcd on {self.url}")

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"etcd exited: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")
        with urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp:
            return b'"health":"true"' in resp.read()

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_process(self.proc)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def running_etcd() -> Iterator[EtcdProcess]:
    with tempfile.TemporaryDirectory(prefix="fed-dns-etcd-") as tmp:
        etcd = EtcdProcess(client_port=free_port(), peer_port=free_port(), data_dir=Path(tmp) / "data")
        etcd.start()
        try:
            yield etcd
        finally:
            etcd.stop()


def fed_dns_command(*args: str) -> list[str]:
    """The CLI as a subprocess, with this interpreter (the venv's)."""
    return [sys.executable, "-m", "fed_dns.cli", *args]


# -- etcd over its own JSON gateway (etcd 3.4: /v3/kv/...), independent of aetcd ---------

class EtcdKV:
    def __init__(self, url: str) -> None:
        self.url = url

    def _call(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    @staticmethod
    def _b64(text: str | bytes) -> str:
        raw = text.encode() if isinstance(text, str) else text
        return base64.b64encode(raw).decode()

    def put(self, key: str, value: bytes) -> None:
        self._call("/v3/kv/put", {"key": self._b64(key), "value": self._b64(value)})

    def delete(self, key: str) -> None:
        self._call("/v3/kv/deleterange", {"key": self._b64(key)})

    def put_all(self, entries: dict[str, bytes], *, batch: int = 100) -> None:
        """In transactions of `batch` puts (etcd's default --max-txn-ops is 128)."""
        items = list(entries.items())
        for i in range(0, len(items), batch):
            self._call("/v3/kv/txn", {"success": [
                {"requestPut": {"key": self._b64(k), "value": self._b64(v)}}
                for k, v in items[i:i + batch]]})

    def _range(self, prefix: str) -> list[dict]:
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return self._call("/v3/kv/range", {"key": self._b64(prefix), "range_end": self._b64(end)}
                          ).get("kvs", [])

    def items(self, prefix: str) -> dict[str, dict]:
        """The keys under prefix and their decoded JSON values."""
        return {base64.b64decode(kv["key"]).decode(): json.loads(base64.b64decode(kv["value"]))
                for kv in self._range(prefix)}

    def revision_compacted(self, revision: int) -> bool:
        """Whether etcd compacted `revision` away (a read at it is refused as compacted)."""
        try:
            self._call("/v3/kv/range", {"key": self._b64("/"), "revision": revision, "count_only": True})
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            if "compacted" in body:
                return True
            raise
        return False

    def mod_revisions(self, prefix: str) -> dict[str, int]:
        """The keys under prefix and the revision each was last written at."""
        return {base64.b64decode(kv["key"]).decode(): int(kv["mod_revision"])
                for kv in self._range(prefix)}
