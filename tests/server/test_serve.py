"""`fed-dns serve` as a real subprocess against a real etcd: updates reach answers fast,
stale answers while etcd is down, several workers on one port, clean exits."""

from __future__ import annotations

import os
import statistics
import subprocess
import uuid
from pathlib import Path

import dns.message
import dns.query
import dns.rdataclass
import pytest

from tests.server.helpers import EtcdKV, ServeProcess, addresses, ask, elapsed_until, serving
from tests.support import LOOPBACK, fed_dns_command, wait_for

pytestmark = pytest.mark.etcd
Z = "fed.example.com."


def _prefix() -> str:
    return f"/serve-{uuid.uuid4().hex[:8]}"


def _key(prefix: str, rel: str) -> str:
    return f"{prefix}/com/example/fed/" + "/".join(reversed(rel.split(".")))


def test_puts_and_deletes_reach_answers_within_100ms(etcd_server, record_property):
    kv = EtcdKV(etcd_server.url)
    prefix = _prefix()
    kv.put(_key(prefix, "c1.svc.ns"), b'{"host":"10.0.0.1","ttl":5}')
    lags = []
    with serving(etcd_url=etcd_server.url, zone=Z, prefix=prefix) as proc:
        wait_for(lambda: addresses(ask(proc.port, f"svc.ns.{Z}")) == ["10.0.0.1"], timeout=10)
        for i in range(2, 12):
            kv.put(_key(prefix, f"c{i}.svc.ns"), f'{{"host":"10.0.0.{i}","ttl":5}}'.encode())
            lags.append(elapsed_until(
                lambda: f"10.0.0.{i}" in addresses(ask(proc.port, f"svc.ns.{Z}")), timeout=1.0))
            kv.delete(_key(prefix, f"c{i}.svc.ns"))
            lags.append(elapsed_until(
                lambda: f"10.0.0.{i}" not in addresses(ask(proc.port, f"svc.ns.{Z}")), timeout=1.0))
        assert proc.stop() == 0
    record_property("update_to_answer_ms_median", round(statistics.median(lags) * 1000, 1))
    record_property("update_to_answer_ms_max", round(max(lags) * 1000, 1))
    print(f"update->answer: median {statistics.median(lags) * 1000:.1f} ms, "
          f"max {max(lags) * 1000:.1f} ms over {len(lags)} changes")
    assert statistics.median(lags) < 0.1


def test_serves_stale_while_etcd_is_down(etcd_fresh):
    kv = EtcdKV(etcd_fresh.url)
    kv.put(_key("/skydns", "c1.svc.ns"), b'{"host":"10.0.0.1","ttl":5}')
    with serving(etcd_url=etcd_fresh.url, zone=Z) as proc:
        wait_for(lambda: addresses(ask(proc.port, f"svc.ns.{Z}")) == ["10.0.0.1"], timeout=10)
        etcd_fresh.stop()
        for _ in range(5):
            assert addresses(ask(proc.port, f"svc.ns.{Z}")) == ["10.0.0.1"]
        etcd_fresh.start()
        kv.put(_key("/skydns", "c2.svc.ns"), b'{"host":"10.0.0.2","ttl":5}')
        wait_for(lambda: sorted(addresses(ask(proc.port, f"svc.ns.{Z}"))) == ["10.0.0.1", "10.0.0.2"],
                 timeout=30, what="the mirror back after etcd returned")
        assert proc.stop() == 0


def _identity(port: int) -> str:
    q = dns.message.make_query("id.server.", "TXT", rdclass=dns.rdataclass.CH)
    r = dns.query.udp(q, LOOPBACK, port=port, timeout=2)
    return b"".join(r.answer[0][0].strings).decode()


def _children(pid: int) -> set[int]:
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry.name))
    return out


def test_two_workers_answer_on_one_port(etcd_server):
    kv = EtcdKV(etcd_server.url)
    prefix = _prefix()
    kv.put(_key(prefix, "c1.svc.ns"), b'{"host":"10.0.0.1","ttl":5}')
    proc = ServeProcess(etcd_url=etcd_server.url, zone=Z, prefix=prefix, workers=2)
    proc.start()
    try:
        proc.wait_answering()
        workers = _children(proc.proc.pid)
        wait_for(lambda: len(_identity_set(proc.port)) == 2, timeout=30, what="both workers answer")
        # listening is not loaded: a worker answers SERVFAIL until its own mirror's first load
        wait_for(lambda: all(addresses(ask(proc.port, f"svc.ns.{Z}")) == ["10.0.0.1"]
                             for _ in range(20)), timeout=10, what="both workers loaded")
        kv.put(_key(prefix, "c2.svc.ns"), b'{"host":"10.0.0.2","ttl":5}')
        wait_for(lambda: all(sorted(addresses(ask(proc.port, f"svc.ns.{Z}"))) == ["10.0.0.1", "10.0.0.2"]
                             for _ in range(10)), timeout=10, what="each worker's mirror updated")
    finally:
        assert proc.stop() == 0
    wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=10, what="workers gone")


def _alive(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _identity_set(port: int) -> set[str]:
    return {_identity(port) for _ in range(40)}  # each query from a new source port


@pytest.mark.parametrize("args,message", [
    (["--zone", "bad..zone"], "zone"),
    (["--zone", "fed.example.com", "--listen", "nonsense"], "--listen"),
    (["--zone", "fed.example.com", "--listen", "127.0.0.1:99999"], "--listen"),
    (["--zone", "fed.example.com", "--workers", "0"], "--workers"),
    (["--zone", "fed.example.com", "--prefix", "relative"], "prefix"),
])
def test_bad_arguments_exit_2_with_the_reason(args, message):
    out = subprocess.run(fed_dns_command("serve", "--etcd", "http://127.0.0.1:1", *args),
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert out.returncode == 2, out.stderr
    assert message in out.stderr


def test_port_in_use_is_a_runtime_failure(etcd_server):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((LOOPBACK, 0))
        port = taken.getsockname()[1]
        out = subprocess.run(fed_dns_command("serve", "--etcd", etcd_server.url, "--zone", Z,
                                             "--listen", f"{LOOPBACK}:{port}"),
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "cannot listen" in out.stderr
