"""What the scale harness does to the members and how it watches the effects.

`Churn` changes EndpointSlices at a rate on the simulated members' loop and remembers when.
Observers, each a thread that is always stopped: `EtcdWatch` (the gateway's watch stream:
when each key appeared or went), `AnswerProbe` (event -> DNS answer for the latest change),
`QueryLoad` (queries at a steady rate: the DNS latency while something else happens).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import dns.exception
import dns.message
import grpc
from aetcd import rpc

from tests.e2e import query_client
from tests.e2e.harness import a_texts
from tests.e2e.scale_support import ScaleRig
from tests.support import LOOPBACK, REPO, stop_process

QPS = 1000.0  # QueryLoad's rate: a busy node's resolver traffic, a few % of a CPU to ask


def unique_address(counter: int) -> str:
    """A fresh address per change (10.200.0.0/13 holds half a million), never a seeded one."""
    return f"10.{200 + counter // 65536 % 50}.{counter // 256 % 256}.{counter % 256}"


@dataclass(frozen=True, slots=True)
class Change:
    at: float  # time.monotonic() right after the member stored it
    member: int
    n: int
    address: str


def reached(changes: list[Change], seen: dict[str, float], key: Callable[[Change], str]) -> list[float | None]:
    """Per change, when it reached etcd: the first time its key or the key of a later change
    of the same Service was seen (a level-triggered writer may skip a superseded one);
    None when neither was."""
    out: list[float | None] = [None] * len(changes)
    earliest: dict[tuple[int, int], float | None] = {}
    for i in range(len(changes) - 1, -1, -1):
        change = changes[i]
        service = (change.member, change.n)
        mine = seen.get(key(change))
        later = earliest.get(service)
        best = mine if later is None else later if mine is None else min(mine, later)
        earliest[service] = best
        out[i] = best
    return out


class Churn:
    """`rate` EndpointSlice changes per second on the members' loop (ticks of 10 ms), each a
    fresh last address of a Service picked round-robin over the members in `members`."""

    def __init__(self, rig: ScaleRig, *, rate: float, members: Iterable[int] | None = None,
                 on_change: Callable[[Change], None] | None = None, counter_start: int = 0) -> None:
        self.rig = rig
        self.rate = rate
        self.members = list(members) if members is not None else list(range(rig.members))
        self.on_change = on_change
        self.changes: list[Change] = []
        self.by_service: dict[tuple[int, int], list[Change]] = {}
        self.behind = 0.0  # the longest the loop fell behind its schedule, seconds
        self._counter = counter_start
        self._task: asyncio.Future | None = None

    def start(self) -> None:
        self._task = asyncio.run_coroutine_threadsafe(self._run(), self.rig.sims.loop)

    def stop(self) -> list[Change]:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        return self.changes

    def since(self, change: Change) -> set[str]:
        """The addresses of `change` and of the later changes of its Service (an answer that
        shows any of them has taken `change` in: changes to one Service coalesce)."""
        history = self.by_service.get((change.member, change.n), [])
        return {c.address for c in history if c.at >= change.at}

    async def _run(self) -> None:
        started = time.monotonic()
        done = 0
        pool = [(m, n) for n in range(self.rig.services) for m in self.members]
        while True:
            due = int((time.monotonic() - started) * self.rate)
            self.behind = max(self.behind, (due - done) / self.rate)
            for _ in range(due - done):
                member, n = pool[self._counter % len(pool)]
                address = unique_address(self._counter)
                self._counter += 1
                self.rig.replace_last_now(member, n, address)
                change = Change(at=time.monotonic(), member=member, n=n, address=address)
                self.changes.append(change)
                self.by_service.setdefault((member, n), []).append(change)
                if self.on_change is not None:
                    self.on_change(change)
            done = due
            await asyncio.sleep(0.01)


class _Thread:
    """A daemon thread with a stop flag, joined on stop."""

    def __init__(self, name: str) -> None:
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name=name, daemon=True)

    def run(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def start(self) -> _Thread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)


class EtcdWatch(_Thread):
    """Watches a prefix over etcd's gRPC API (a stream of its own, off the daemon's);
    `seen[key]` is when the key was first put (or deleted, in `gone`) after the watch
    started. Not over the JSON gateway: etcd turned each event of a failover's write into
    JSON (and this process decoded it) on the two CPUs the daemon was measured on."""

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__("etcd-watch")
        self.channel = grpc.insecure_channel(url.removeprefix("http://"))
        self.prefix = prefix
        self.seen: dict[str, float] = {}
        self.gone: dict[str, float] = {}
        self.events = 0
        self.ready = threading.Event()
        self.stream = None

    def run(self) -> None:
        prefix = self.prefix.encode()
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        create = rpc.WatchRequest(create_request=rpc.WatchCreateRequest(key=prefix, range_end=end))
        self.stream = rpc.WatchStub(self.channel).Watch(iter([create]))
        deleted = rpc.Event.DELETE
        try:
            for response in self.stream:
                now = time.monotonic()
                if response.created:
                    self.ready.set()
                for event in response.events:
                    self.events += 1
                    key = event.kv.key.decode()
                    (self.gone if event.type == deleted else self.seen).setdefault(key, now)
                if self.stopping.is_set():
                    return
        except grpc.RpcError:  # cancelled by stop, or etcd went away
            return

    def stop(self) -> None:
        self.stopping.set()
        if self.stream is not None:
            self.stream.cancel()
        self.thread.join(timeout=10)
        self.channel.close()


class AnswerProbe(_Thread):
    """Event -> DNS answer: takes the latest change (older ones it skips), polls its member's
    name until the answer holds the new address (or, with `since`, a later one of the same
    Service); `latencies` from the change, `missed` when not within `timeout`.

    Polled every 2 ms on the answer's bytes (query_client.a_addresses); the answer that
    holds the address is then parsed whole by dnspython, which must read the same
    (`misread` counts those it did not). dnspython on every poll took a third of a CPU of
    the two the daemon was measured on, while a failover held answers back."""

    def __init__(self, rig: ScaleRig, *, timeout: float = 10.0,
                 since: Callable[[Change], set[str]] | None = None) -> None:
        super().__init__("answer-probe")
        self.rig = rig
        self.since = since or (lambda change: {change.address})
        self.timeout = timeout
        self.latest: Change | None = None
        self.latencies: list[float] = []
        self.missed = 0
        self.misread = 0

    def offer(self, change: Change) -> None:
        self.latest = change

    def run(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.connect((LOOPBACK, self.rig.daemon.dns_port))
            self._poll(sock)
        finally:
            sock.close()

    def _poll(self, sock: socket.socket) -> None:
        last = None
        ident = 0
        while not self.stopping.is_set():
            change = self.latest
            if change is None or change is last:
                time.sleep(0.005)
                continue
            last = change
            query = dns.message.make_query(self.rig.cluster_name(change.member, change.n), "A",
                                           use_edns=0, payload=4096)
            template = query.to_wire()
            while not self.stopping.is_set():
                wanted = self.since(change)  # a later change of the Service counts too
                ident = (ident + 1) & 0xFFFF
                wire = ident.to_bytes(2, "big") + template[2:]
                result = query_client.exchange(sock, wire, 1.0)
                if not isinstance(result, str) and query_client.check(wire, result[0]):
                    try:
                        seen = query_client.a_addresses(result[0]) & wanted
                    except ValueError:
                        seen = set()
                    if seen:
                        query.id = ident
                    if seen and self._parsed(query, result[0]) & wanted:
                        self.latencies.append(time.monotonic() - change.at)
                        break
                    if seen:
                        self.misread += 1
                if time.monotonic() - change.at > self.timeout:
                    self.missed += 1
                    break
                time.sleep(0.002)

    @staticmethod
    def _parsed(query: dns.message.Message, answer: bytes) -> set[str]:
        """The A addresses of `answer` as dnspython reads it (empty: not an answer to `query`)."""
        try:
            reply = dns.message.from_wire(answer)
        except dns.exception.DNSException:
            return set()
        if not query.is_response(reply):
            return set()
        return a_texts(reply)


class QueryLoad(_Thread):
    """A queries of sampled names, `qps` a second one at a time (0: back to back), from a
    client process of its own (tests/e2e/query_client.py); `rtts` (seconds, to the client's
    read), `arrivals` (seconds, to the answer's arrival in the kernel: empty without
    timestamps), `timeouts`, `errors` and `bad` answers, read by this thread."""

    def __init__(self, rig: ScaleRig, names: list[str], *, timeout: float = 1.0, qps: float = QPS) -> None:
        super().__init__("query-load")
        self.rig = rig
        self.names = names
        self.timeout = timeout
        self.qps = qps
        self.rtts: list[float] = []
        self.arrivals: list[float] = []
        self.timeouts = 0
        self.errors = 0
        self.bad = 0
        self.proc: subprocess.Popen | None = None

    def start(self) -> QueryLoad:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.query_client", str(self.rig.daemon.dns_port), str(self.timeout),
             str(self.qps)],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.proc.stdin.write(" ".join(self.names) + "\n")
        self.proc.stdin.close()
        super().start()
        return self

    def run(self) -> None:
        for line in self.proc.stdout:
            if self.stopping.is_set():
                return
            line = line.strip()
            if line == "T":
                self.timeouts += 1
            elif line == "E":
                self.errors += 1
            elif line == "B":
                self.bad += 1
            elif line:
                read, *arrived = line.split()
                self.rtts.append(float(read))
                self.arrivals.extend(float(seconds) for seconds in arrived[:1])

    def stop(self) -> None:
        self.stopping.set()
        stop_process(self.proc)
        self.thread.join(timeout=10)
        self.proc.stdout.close()

    def take(self) -> Window:
        """The round trips so far, the timeouts and the bad answers, and forget them (for
        one window)."""
        window = Window(rtts=self.rtts, arrivals=self.arrivals, timeouts=self.timeouts, bad=self.bad)
        self.rtts, self.arrivals, self.timeouts, self.bad = [], [], 0, 0
        return window


@dataclass(frozen=True, slots=True)
class Window:
    """QueryLoad's results over one window (see QueryLoad)."""

    rtts: list[float]
    arrivals: list[float]
    timeouts: int
    bad: int
