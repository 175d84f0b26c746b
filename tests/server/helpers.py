"""Helpers for the DNS server tests: the recorded CoreDNS cases, a dnspython client, etcd
writes over its JSON gateway, and a real `fed-dns serve` subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import yaml

from tests.support import (EtcdKV, LOOPBACK, REPO, fed_dns_command, free_port,  # noqa: F401
                           stop_process, wait_for)

CONFORMANCE = REPO / "tests" / "data" / "conformance" / "coredns-etcd.yaml"  # a copy of shared/'s


def conformance_file() -> Path:
    """The recorded CoreDNS cases: $FED_DNS_CONFORMANCE, else the repository's copy (which
    tests/test_shared_copies.py keeps equal to ../shared/conformance when that is there)."""
    env = os.environ.get("FED_DNS_CONFORMANCE")
    return Path(env) if env else CONFORMANCE


def load_cases() -> list[dict]:
    return yaml.safe_load(conformance_file().read_text())


def compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def case_entries(case: dict, *, prefix: str = "/skydns") -> dict[str, bytes]:
    """The case's keys as etcd would hold them, moved under `prefix`."""
    return {prefix + key.removeprefix("/skydns"): compact(value)
            for key, value in case["keys"].items()}


def queries(cases: list[dict]) -> list[tuple[dict, dict]]:
    return [(case, ex) for case in cases for ex in case["expect"]]


def query_id(item) -> str:
    case, ex = item
    return f"{case['name']}:{ex['q'].replace(' ', '_')}"


# -- comparing answers --------------------------------------------------------------------

def lines(section) -> list[str]:
    out = []
    for rrset in section:
        for rd in rrset:
            text = rd.to_text().lower()
            if rrset.rdtype == dns.rdatatype.SOA:
                parts = text.split()
                parts[2] = "<serial>"
                text = " ".join(parts)
            out.append(f"{rrset.name.to_text().lower()} {rrset.ttl} "
                       f"{dns.rdatatype.to_text(rrset.rdtype)} {text}")
    return sorted(out)


def owner_type(line: str) -> str:
    parts = line.split()
    return f"{parts[0]} {parts[2]}"


def summary(msg: dns.message.Message) -> dict:
    """What conformance compares: rcode, aa, tc, answer and additional sets, authority
    by owner and type only."""
    return {
        "rcode": dns.rcode.to_text(msg.rcode()),
        "aa": bool(msg.flags & dns.flags.AA),
        "tc": bool(msg.flags & dns.flags.TC),
        "answer": lines(msg.answer),
        "authority": sorted(owner_type(x) for x in lines(msg.authority)),
        "additional": lines(msg.additional),
    }


def expected(ex: dict) -> dict:
    return {
        "rcode": ex["rcode"], "aa": ex["aa"], "tc": ex["tc"],
        "answer": sorted(ex["answer"]),
        "authority": sorted(owner_type(x) for x in ex["authority"]),
        "additional": sorted(ex["additional"]),
    }


def split_q(q: str) -> tuple[str, str, bool]:
    parts = q.split()
    return parts[0], parts[1], len(parts) > 2 and parts[2] == "tcp"


# -- asking a server ----------------------------------------------------------------------

def ask(port: int, name: str, rdtype: str = "A", *, tcp: bool = False, edns: int | None = None,
        payload: int = 1232, timeout: float = 2.0, host: str = LOOPBACK) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, use_edns=edns,
                               payload=payload if edns is not None else None)
    if tcp:
        return dns.query.tcp(q, host, port=port, timeout=timeout)
    return dns.query.udp(q, host, port=port, timeout=timeout, ignore_trailing=False)


def addresses(msg: dns.message.Message) -> list[str]:
    return [rd.to_text() for rrset in msg.answer for rd in rrset
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)]


# -- raw TCP clients (RFC 7766 framing) ----------------------------------------------------

def tcp_connect(port: int, *, rcvbuf: int | None = None, host: str = LOOPBACK) -> socket.socket:
    """A connected TCP socket (3 s timeout, no Nagle); `rcvbuf`: SO_RCVBUF set before connect
    (the window the server sees)."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(3)
        s.connect((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        s.close()
        raise
    return s


def tcp_frame(msg: dns.message.Message) -> bytes:
    wire = msg.to_wire()
    return struct.pack("!H", len(wire)) + wire


def read_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def read_msg(s: socket.socket) -> dns.message.Message:
    (n,) = struct.unpack("!H", read_exact(s, 2))
    return dns.message.from_wire(read_exact(s, n))


def tcp_closed(s: socket.socket, *, timeout: float) -> bool:
    """The server closed `s` within `timeout` (EOF or reset; nothing unread expected)."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


# -- a real `fed-dns serve` ---------------------------------------------------------------

class ServeProcess:
    def __init__(self, *, etcd_url: str, zone: str, prefix: str = "/skydns", workers: int = 1,
                 port: int | None = None, extra: tuple[str, ...] = ()) -> None:
        self.port = port or free_port()
        self.args = fed_dns_command("serve", "--etcd", etcd_url, "--zone", zone,
                                    "--listen", f"{LOOPBACK}:{self.port}", "--prefix", prefix,
                                    "--workers", str(workers), *extra)
        self.zone = zone
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_answering(self, *, timeout: float = 30.0) -> None:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.stderr()}")
            return ask(self.port, self.zone, "SOA", timeout=0.3).rcode() == dns.rcode.NOERROR
        wait_for(up, timeout=timeout, interval=0.05, what=f"fed-dns serve on {self.port}")

    def stderr(self) -> str:
        return self.proc.stderr.read().decode(errors="replace")[-3000:] if self.proc.stderr else ""

    def stop(self, *, timeout: float = 15.0) -> int:
        """SIGTERM, wait, return the exit status (killed after timeout: then -9)."""
        if self.proc is None:
            return 0
        rc = stop_process(self.proc, timeout=timeout)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None
        return rc


@contextlib.contextmanager
def serving(**kwargs) -> Iterator[ServeProcess]:
    proc = ServeProcess(**kwargs)
    proc.start()
    try:
        proc.wait_answering()
        yield proc
    finally:
        proc.stop()


def elapsed_until(predicate, *, timeout: float = 1.0, interval: float = 0.005) -> float:
    """Seconds until predicate() is true; AssertionError past timeout."""
    start = time.perf_counter()
    while True:
        if predicate():
            return time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            raise AssertionError(f"not true within {timeout}s")
        time.sleep(interval)
