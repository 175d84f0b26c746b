"""Data-plane probes, two daemons sharing one etcd (leader failover), and `fed-dns demo`."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading

import pytest

from tests.e2e.harness import Daemon, SimThread, etcd_items, seed_service, timed
from tests.e2e.test_daemon import all_addresses, zone_prefix
from tests.support import REPO, free_port, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def sims():
    sims = SimThread()
    yield sims
    sims.close()


def listener(host: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(16)
    return sock


def test_tcp_probes_withdraw_a_dead_backend_while_its_cluster_is_up(tmp_path, sims):
    from fed_dns.sim import objects

    port = free_port()
    cluster = sims.add("c1")
    ports = [("web", port)]
    sims.call(cluster.apply, objects.namespace(name="ns"))
    sims.call(cluster.apply, objects.service(
        name="web", namespace="ns", cluster_ip="10.100.0.1", ports=ports,
        annotations={"fed-dns.io/export": "true", "fed-dns.io/probe": "tcp",
                     "fed-dns.io/publish": "endpoints"}))
    sims.call(cluster.apply, objects.endpoint_slice(
        service="web", namespace="ns", ports=ports,
        endpoints=[("127.0.0.1", True, None), ("127.0.0.2", True, None)]))
    alive = listener("127.0.0.1", port)
    d = Daemon(tmp=tmp_path, sims=sims, etcd_url=None, zone="probe.example.com.")
    revived = None
    try:
        d.start()
        name = "web.ns.probe.example.com."
        timed(lambda: d.addresses(name) == {"127.0.0.1"}, timeout=10,
              what="the backend nobody listens on withdrawn")
        assert d.status()["clusters"][0]["health"] == "ready"
        revived = listener("127.0.0.2", port)
        timed(lambda: d.addresses(name) == {"127.0.0.1", "127.0.0.2"}, timeout=5,
              what="the backend back once it accepts connections")
        alive.close()
        timed(lambda: d.addresses(name) == {"127.0.0.2"}, timeout=5, what="the first withdrawn")
    finally:
        d.stop()
        alive.close()
        if revived is not None:
            revived.close()


def test_second_daemon_takes_over_when_the_leader_dies(tmp_path, sims, etcd_server):
    for i, name in enumerate(("c1", "c2", "c3"), start=1):
        sims.add(name)
        seed_service(sims, name, index=i)
    zone = "leader.example.com."
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = Daemon(tmp=tmp_path / "a", sims=sims, etcd_url=etcd_server.url, zone=zone)
    second = Daemon(tmp=tmp_path / "b", sims=sims, etcd_url=etcd_server.url, zone=zone)
    try:
        first.start()
        second.start()
        timed(lambda: sorted([first.status()["leader"], second.status()["leader"]]) == [False, True],
              timeout=10, what="exactly one leader")
        leader, follower = (first, second) if first.status()["leader"] else (second, first)
        name = f"mysql.ns.{zone}"
        assert follower.addresses(name) == all_addresses()  # every replica serves DNS
        prefix = zone_prefix(zone) + "ns/mysql/"
        timed(lambda: len(etcd_items(etcd_server.url, prefix)) == 12, timeout=10, what="keys")
        leader.stop(signal.SIGKILL)  # no resign: the lease has to expire
        seed_service(sims, "c3", index=3, ready=False)
        ttl, period = 3.0, 0.5
        took = timed(lambda: etcd_items(etcd_server.url, prefix).get(prefix + "c3", {}).get("port") == -1,
                     timeout=ttl + period + 10, what="the follower writes after taking over")
        assert took <= ttl + period + 2.0, f"takeover took {took:.1f}s"
        assert follower.status()["leader"] is True
        assert follower.addresses(name) == all_addresses((1, 2))
    finally:
        first.stop()
        second.stop()


def test_demo_prints_a_guide_and_shows_the_failover():
    dns_port, http_port = free_port(), free_port()
    result = subprocess.run(
        [sys.executable, "-m", "fed_dns.cli", "demo", "--listen", f"127.0.0.1:{dns_port}",
         "--http", f"127.0.0.1:{http_port}", "--api", "127.0.0.1:0",
         "--kill", "c2", "--after", "2", "--duration", "8"],
        cwd=REPO, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"dig @127.0.0.1 -p {dns_port} mysql.ns.fed.example.com." in out
    assert "killed cluster c2" in out
    after = out.split("killed cluster c2", 1)[1]
    final = [line for line in after.splitlines() if "] mysql.ns.fed.example.com. ->" in line][-1]
    assert "10.1.0.1" in final and "10.3.0.1" in final and "10.2.0." not in final
    assert "CNAME mysql.ns.fed.example.com." in after


def _spread(line: str) -> dict[str, int]:
    """"c1=2 c2=0 c3=2" at the end of a line (before any "(... after the kill)")."""
    words = line.split(" (", 1)[0].split()
    return {k: int(v) for k, v in (w.split("=") for w in words if "=" in w)}


def _tomcat_answer(line: str) -> list[str]:
    return re.findall(r"A (\d+\.\d+\.\d+\.\d+)", line.split(" -> ", 1)[1])


def test_demo_moves_the_tomcat_replicas_and_answers_off_a_killed_cluster():
    """The federated `tomcat` (4 replicas over c1-c3, rebalance) runs as pods in the members;
    c2 killed: its replicas move to c1 and c3, and tomcat's DNS answer loses c2's pods."""
    dns_port, http_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fed_dns.cli", "demo", "--listen", f"127.0.0.1:{dns_port}",
         "--http", f"127.0.0.1:{http_port}", "--api", "127.0.0.1:0",
         "--kill", "c2", "--after", "2", "--duration", "80"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tomcat = "] tomcat.default.fed.example.com. ->"
    lines: list[str] = []

    def moved_and_answered() -> bool:
        text = "".join(lines)
        if "killed cluster c2" not in text:
            return False
        answers = [ln for ln in text.split("killed cluster c2", 1)[1].splitlines() if tomcat in ln]
        return bool(answers) and len(_tomcat_answer(answers[-1])) == 4 and \
            not any(a.startswith("10.2.") for a in _tomcat_answer(answers[-1]))

    watchdog = threading.Timer(90, proc.kill)
    watchdog.start()
    try:
        for line in proc.stdout:
            lines.append(line)
            if moved_and_answered():
                break
    finally:
        watchdog.cancel()
        proc.terminate()
        rest, _ = proc.communicate(timeout=30)
    out = "".join(lines) + (rest or "")
    assert moved_and_answered(), out
    assert f"dig @127.0.0.1 -p {dns_port} tomcat.default.fed.example.com." in out
    before, after = out.split("killed cluster c2", 1)
    placed = _spread([ln for ln in before.splitlines() if "tomcat replicas:" in ln][-1])
    assert set(placed) == {"c1", "c2", "c3"} and sum(placed.values()) == 4 and placed["c2"] >= 1
    first = _tomcat_answer([ln for ln in before.splitlines() if tomcat in ln][-1])
    assert len(first) == 4 and any(a.startswith("10.2.1.") for a in first)
    move = [ln for ln in after.splitlines() if "tomcat replicas:" in ln and " -> " in ln][0]
    old, new = (_spread(side) for side in move.split("tomcat replicas:", 1)[1].split(" -> "))
    assert old == placed
    assert new.get("c2", 0) == 0 and new["c1"] + new["c3"] == 4
    final = _tomcat_answer([ln for ln in after.splitlines() if tomcat in ln][-1])
    assert sorted(a.rsplit(".", 2)[0] for a in final) == ["10.1"] * new["c1"] + ["10.3"] * new["c3"]


def test_demo_serves_the_federation_api_to_kubectl_from_its_workdir(tmp_path):
    """`--workdir` receives federation.kubeconfig and one kubeconfig per member; kubectl uses
    them unchanged while the demo runs."""
    dns_port, http_port, api_port = free_port(), free_port(), free_port()
    workdir = tmp_path / "wd"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fed_dns.cli", "demo", "--listen", f"127.0.0.1:{dns_port}",
         "--http", f"127.0.0.1:{http_port}", "--api", f"127.0.0.1:{api_port}",
         "--workdir", str(workdir), "--duration", "30"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        fed = workdir / "federation.kubeconfig"
        wait_for(fed.exists, timeout=30, what="federation.kubeconfig")
        assert fed.stat().st_mode & 0o777 == 0o600
        clusters = subprocess.run(["kubectl", "--kubeconfig", str(fed), "get", "clusters"],
                                  capture_output=True, text=True, timeout=30)
        assert clusters.returncode == 0, clusters.stderr
        rows = clusters.stdout.splitlines()
        assert rows[0].split()[:4] == ["NAME", "HEALTH", "REGION", "SYNCED"]
        assert [r.split()[:2] for r in rows[1:]] == [["c1", "ready"], ["c2", "ready"], ["c3", "ready"]]
        member = subprocess.run(["kubectl", "--kubeconfig", str(workdir / "c2.kubeconfig"), "get",
                                 "services", "-n", "ns", "-o", "name"],
                                capture_output=True, text=True, timeout=30)
        assert member.returncode == 0 and "service/mysql" in member.stdout, member.stderr
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"kubectl --kubeconfig {workdir / 'federation.kubeconfig'} get clusters" in out


def run_join_demo(*, env: dict | None = None) -> str:
    """`fed-dns demo --join-after 2`: its output (it exited 0)."""
    dns_port, http_port = free_port(), free_port()
    result = subprocess.run(
        [sys.executable, "-m", "fed_dns.cli", "demo", "--listen", f"127.0.0.1:{dns_port}",
         "--http", f"127.0.0.1:{http_port}", "--api", "127.0.0.1:0", "--join-after", "2",
         "--duration", "10"],
        cwd=REPO, capture_output=True, text=True, timeout=90, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def joined_c4(out: str) -> tuple[str, str]:
    """What the demo printed for the join, and what it printed after: c4's Service in the
    global answer, and tomcat replicas on c4 (with their pods' addresses answered)."""
    assert "joining cluster c4" in out, out
    join, after = out.split("joining cluster c4", 1)[1].split("\n[", 1)
    mysql = [line for line in after.splitlines() if "] mysql.ns.fed.example.com. ->" in line]
    assert mysql and "10.4.0.1" in mysql[-1] and "10.4.0.2" in mysql[-1], after
    replicas = [line for line in after.splitlines() if "tomcat replicas:" in line]
    assert replicas and "c4=" in replicas[-1].split("->")[-1] and "c4=0" not in replicas[-1]
    tomcat = [line for line in after.splitlines() if "] tomcat.default.fed.example.com. ->" in line]
    assert tomcat and "10.4.1." in tomcat[-1], after
    return join, after


def test_demo_joins_a_fourth_cluster_with_kubectl_apply():
    """`--join-after`: c4 starts and is joined by `kubectl apply` of a Karmada Cluster +
    Secret on the federation API (kubectl's own output shows), then answers in DNS and
    receives tomcat replicas."""
    join, _ = joined_c4(run_join_demo())
    assert "$ kubectl --kubeconfig " in join and "federation.kubeconfig apply -f " in join
    assert "c4-join.yaml" in join
    for created in ("secret/c4-creds created", "cluster.cluster.karmada.io/c4 created"):
        assert created in join, join
    assert "instead" not in join


def test_demo_without_kubectl_says_so_and_joins_through_the_api(tmp_path):
    """No kubectl on PATH: the demo says so, writes the same manifest through the federation
    API, and c4 still joins."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "openssl").symlink_to(shutil.which("openssl"))  # the members' TLS needs it
    join, _ = joined_c4(run_join_demo(env={**os.environ, "PATH": str(bin_dir)}))
    assert "kubectl not found on PATH" in join and "c4-join.yaml" in join, join
    assert "created" not in join


def test_demo_rejects_an_unknown_cluster_to_kill():
    result = subprocess.run([sys.executable, "-m", "fed_dns.cli", "demo", "--kill", "c9"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "c9" in result.stderr


def test_demo_with_etcd_writes_the_records(etcd_fresh):
    dns_port, http_port = free_port(), free_port()
    result = subprocess.run(
        [sys.executable, "-m", "fed_dns.cli", "demo", "--etcd", etcd_fresh.url, "--listen",
         f"127.0.0.1:{dns_port}", "--http", f"127.0.0.1:{http_port}", "--api", "127.0.0.1:0",
         "--duration", "4"],
        cwd=REPO, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    keys = etcd_items(etcd_fresh.url, "/skydns/com/example/fed/ns/mysql/")
    assert {v["cluster"] for v in keys.values()} == {"c1", "c2", "c3"}
    assert len(keys) == 12  # 3 clusters x 2 endpoints, plain and _tcp/_mysql
