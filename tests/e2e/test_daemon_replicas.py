"""Federated replicas through `fed-dns run` itself: kubectl on the federation API served by the
daemon, two daemons on one etcd (only the leader writes members), and a leader SIGKILLed
mid-way (the other takes over; nothing is scaled twice)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess

import pytest
import yaml

from tests.e2e.harness import Daemon, SimThread, timed
from tests.support import REPO, fed_dns_command, free_port, wait_for

TOMCAT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "tomcat", "namespace": "default", "labels": {"app": "tomcat"},
                 "annotations": {"federation.kubernetes.io/replica-set-preferences": json.dumps(
                     {"rebalance": True, "clusters": {"c1": {"weight": 1}, "c2": {"weight": 1}}})}},
    "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "tomcat"}},
             "template": {"metadata": {"labels": {"app": "tomcat"}},
                          "spec": {"containers": [{"name": "tomcat", "image": "tomcat:9"}]}}},
}


@pytest.fixture
def sims():
    threads = SimThread()
    try:
        for name in ("c1", "c2"):
            threads.add(name, use_tls=True)
        yield threads
    finally:
        threads.close()


LEASE_TTL = 3.0  # the harness's leader_election.lease_ttl


def daemon(tmp_path, name: str, sims, etcd_url: str, *, lease_ttl: float = LEASE_TTL) -> Daemon:
    (tmp_path / name).mkdir()
    return Daemon(tmp=tmp_path / name, sims=sims, etcd_url=etcd_url, zone="replicas.example.com.",
                  extra={"api": {"enabled": True, "listen": f"127.0.0.1:{free_port()}",
                                 "dir": str(tmp_path / "api")},
                         "leader_election": {"enabled": True, "lease_ttl": f"{lease_ttl}s"}})


def leader_of(daemons) -> tuple[Daemon, Daemon] | None:
    """(leader, follower) once exactly one of the two leads, else None."""
    leading = [d.status()["leader"] for d in daemons]
    if sorted(leading) != [False, True]:
        return None
    return (daemons[0], daemons[1]) if leading[0] else (daemons[1], daemons[0])


def kubeconfig_of(d: Daemon, path) -> str:
    """`fed-dns kubeconfig --config` of that daemon, written where kubectl can read it."""
    out = subprocess.run(fed_dns_command("kubeconfig", "--config", str(d.config_path)),
                         capture_output=True, text=True, cwd=REPO, timeout=30, check=True).stdout
    path.write_text(out)
    return str(path)


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *args], input=stdin,
                          capture_output=True, text=True, timeout=30)


def member_replicas(sims: SimThread, cluster: str) -> int | None:
    obj = sims.call(sims.clusters[cluster].get, kind="Deployment", namespace="default", name="tomcat")
    return None if obj is None else obj["spec"]["replicas"]


def member_generation(sims: SimThread, cluster: str) -> int:
    obj = sims.call(sims.clusters[cluster].get, kind="Deployment", namespace="default", name="tomcat")
    return int(obj["metadata"].get("generation") or 0)


def start_with_tomcat(first, second, tmp_path, sims):
    """Both daemons started, one leads; TOMCAT applied with kubectl on the *follower's* API
    (every replica serves the same objects from etcd) and placed 2 + 2 on the members.
    (leader, follower, the follower's kubeconfig)."""
    first.start()
    second.start()
    leader, follower = wait_for(lambda: leader_of((first, second)), timeout=15,
                                what="exactly one leader")
    kc = kubeconfig_of(follower, tmp_path / "federation.kubeconfig")
    applied = kubectl(kc, "apply", "-f", "-", stdin=yaml.safe_dump(TOMCAT))
    assert applied.returncode == 0, applied.stderr
    timed(lambda: (member_replicas(sims, "c1"), member_replicas(sims, "c2")) == (2, 2),
          timeout=15, what="2 + 2 on the members")
    return leader, follower, kc


@pytest.mark.slow
def test_two_daemons_one_leader_writes_members_and_the_other_takes_over(tmp_path, sims, etcd_server):
    first = daemon(tmp_path, "a", sims, etcd_server.url)
    second = daemon(tmp_path, "b", sims, etcd_server.url)
    try:
        leader, follower, kc = start_with_tomcat(first, second, tmp_path, sims)
        generations = {c: member_generation(sims, c) for c in ("c1", "c2")}
        placements = {(p.get("cluster"), p.get("desired")) for w in leader.status()["placements"]
                      for p in w["clusters"]}
        assert {("c1", 2), ("c2", 2)} <= placements, leader.status()["placements"]
        got = kubectl(kc, "get", "deployment", "tomcat", "-o", "json")
        assert got.returncode == 0, got.stderr
        leader.stop(signal.SIGKILL)  # no resign: the lease must expire
        took = timed(lambda: follower.status()["leader"] is True, timeout=15, what="takeover")
        assert took < LEASE_TTL + 1.0, f"takeover took {took:.2f}s"
        # The new leader finds the members as they should be: it scales nothing twice.
        assert {c: member_generation(sims, c) for c in ("c1", "c2")} == generations
        assert (member_replicas(sims, "c1"), member_replicas(sims, "c2")) == (2, 2)
        # ...and it is the one that writes now: a scale through its API reaches the members.
        scaled = kubectl(kc, "scale", "deployment", "tomcat", "--replicas=6")
        assert scaled.returncode == 0, scaled.stderr
        timed(lambda: (member_replicas(sims, "c1"), member_replicas(sims, "c2")) == (3, 3),
              timeout=15, what="3 + 3 after the scale")
    finally:
        first.stop()
        second.stop()


WRITE_LINE = re.compile(r"replicas \S+ \S+: (create|update|delete) \S+ on ")


def member_writes(d: Daemon) -> int:
    """The member writes this daemon has logged (the replica loop logs each one it makes)."""
    return len(WRITE_LINE.findall(d.log_path.read_text(errors="replace")))


@pytest.mark.slow
def test_a_sigstopped_old_leader_that_wakes_up_writes_nothing(tmp_path, sims, etcd_server):
    """The leader is stopped (SIGSTOP) long enough for the other to take over; meanwhile c2
    dies and the new leader moves its replicas to c1. Woken (SIGCONT), the old leader still
    believes c2 is fine and that it leads: its view of c1 (4) differs from its plan (2 + 2),
    but it must write nothing, to the members or the federation API. (Racy without a guard:
    the write goes out a few ms before the lease refresh that tells it the lease expired.)"""
    first = daemon(tmp_path, "a", sims, etcd_server.url)
    second = daemon(tmp_path, "b", sims, etcd_server.url)
    stopped = None
    try:
        leader, follower, kc = start_with_tomcat(first, second, tmp_path, sims)
        timed(lambda: _placed(leader) == {"c1": 2, "c2": 2}, timeout=10, what="leader's plan")
        assert member_writes(follower) == 0
        os.kill(leader.proc.pid, signal.SIGSTOP)
        stopped = leader
        timed(lambda: follower.status()["leader"] is True, timeout=15, what="takeover")
        sims.call(sims.clusters["c2"].kill, "hang")
        timed(lambda: member_replicas(sims, "c1") == 4, timeout=15, what="c1 holds 4")
        kc = kubeconfig_of(follower, tmp_path / "new-leader.kubeconfig")
        settled = wait_for(lambda: _settled_status(kc), timeout=15,
                           what="the new leader's status of tomcat")
        before = member_writes(leader)
        generation = member_generation(sims, "c1")
        os.kill(leader.proc.pid, signal.SIGCONT)
        stopped = None
        timed(lambda: leader.status()["leader"] is False, timeout=5, what="the old leader steps down")
        # a while longer: its probes declare c2 unreachable and its plan agrees again
        timed(lambda: _placed(leader) == {"c1": 4, "c2": 0}, timeout=10,
              what=f"the old leader's plan catches up (have {_placed(leader)})")
        assert member_writes(leader) == before, leader.output()
        assert member_generation(sims, "c1") == generation  # c1's spec never changed
        assert member_replicas(sims, "c1") == 4
        # nor the federated object (its status says what the new leader wrote)
        assert _settled_status(kc) == settled
    finally:
        if stopped is not None:
            os.kill(stopped.proc.pid, signal.SIGCONT)
        first.stop()
        second.stop()


def _settled_status(kc: str) -> tuple[str, dict] | None:
    """tomcat's resourceVersion and status on the federation API once the status says c1
    holds 4 and c2 is unreachable."""
    got = kubectl(kc, "get", "deployment", "tomcat", "-o", "json")
    assert got.returncode == 0, got.stderr
    obj = json.loads(got.stdout)
    status = obj.get("status") or {}
    rows = {(p["cluster"], p["desired"], p["reason"]) for p in status.get("placement") or ()}
    if rows != {("c1", 4, "Scheduled"), ("c2", 0, "ClusterUnreachable")} or \
            status.get("readyReplicas") != 4:
        return None
    return obj["metadata"]["resourceVersion"], status


def _placed(d: Daemon) -> dict[str, int]:
    return {p["cluster"]: p["desired"] for w in d.status()["placements"] for p in w["clusters"]}
