"""`fed-dns run` end to end: simulated clusters + real etcd + real DNS queries (dnspython)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from fed_dns.records import codec
from tests.e2e.harness import (Daemon, SimThread, children, etcd_items, etcd_put, etcd_mod_revisions,
                               seed_service, thread_nices, timed)
from tests.support import REPO, EtcdKV

pytestmark = pytest.mark.slow
_zones = itertools.count(1)
PERIOD, FAILURES, SUCCESSES = 0.5, 3, 2


@pytest.fixture
def zone() -> str:
    return f"e2e{next(_zones)}.example.com."


@pytest.fixture
def sims():
    sims = SimThread()
    for i, name in enumerate(("c1", "c2", "c3"), start=1):
        sims.add(name)
        seed_service(sims, name, index=i)
    yield sims
    sims.close()


@pytest.fixture
def daemon_factory(tmp_path, sims):
    started = []

    def make(*, etcd_url, zone, extra=None):
        d = Daemon(tmp=tmp_path, sims=sims, etcd_url=etcd_url, zone=zone, extra=extra)
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


def zone_prefix(zone: str) -> str:
    return "/skydns/" + "/".join(reversed(zone.rstrip(".").split("."))) + "/"


def expected_keys(zone: str, clusters=(("c1", 1), ("c2", 2), ("c3", 3))) -> dict[str, dict]:
    base = zone_prefix(zone) + "ns/mysql/"
    owner = f"fed-dns/{zone}"
    out = {}
    for name, index in clusters:
        for n in (1, 2):
            address = f"10.{index}.0.{n}"
            value = {"host": address, "port": 3306, "ttl": 5, "owner": owner, "cluster": name}
            out[f"{base}{name}/{codec.backend_id(address)}"] = value
            out[f"{base}_tcp/_mysql/{name}/{codec.backend_id(address)}"] = value
    return out


def all_addresses(indexes=(1, 2, 3)) -> set[str]:
    return {f"10.{i}.0.{n}" for i in indexes for n in (1, 2)}


def test_every_cluster_answers_and_etcd_holds_the_naming_keys(etcd_server, daemon_factory, zone):
    foreign = zone_prefix(zone) + "ns/mysql/manual"
    etcd_put(etcd_server.url, foreign, '{"host":"10.9.9.9","ttl":5}')
    d = daemon_factory(etcd_url=etcd_server.url, zone=zone).start()
    name = f"mysql.ns.{zone}"
    timed(lambda: all_addresses() <= d.addresses(name), timeout=10, what="all backends in DNS")
    assert d.addresses(name) == all_addresses() | {"10.9.9.9"}  # the foreign key answers too
    assert d.addresses(f"c2.{name}") == {"10.2.0.1", "10.2.0.2"}
    srv = d.query(f"_mysql._tcp.{name}", "SRV")
    assert len(srv.answer[0]) == 6 and all(rr.port == 3306 for rr in srv.answer[0])
    want = expected_keys(zone)
    timed(lambda: {k: v for k, v in etcd_items(etcd_server.url, zone_prefix(zone)).items()
                   if k != foreign} == want, timeout=10, what="etcd keys of naming.md")
    assert etcd_items(etcd_server.url, zone_prefix(zone))[foreign] == {"host": "10.9.9.9", "ttl": 5}
    status = d.status()
    assert {c["name"]: (c["health"], c["synced"]) for c in status["clusters"]} == {
        n: ("ready", True) for n in ("c1", "c2", "c3")}
    assert status["leader"] is True
    assert "fed_dns_" in d.metrics()


def test_killed_cluster_fails_over_within_bound_and_returns(etcd_server, sims, daemon_factory, zone):
    d = daemon_factory(etcd_url=etcd_server.url, zone=zone).start()
    name = f"mysql.ns.{zone}"
    timed(lambda: d.addresses(name) == all_addresses(), timeout=10, what="all backends")
    sims.call(sims.clusters["c2"].kill, mode="stop")
    bound = PERIOD * FAILURES + 1.0
    took = timed(lambda: d.addresses(name) == all_addresses((1, 3)), timeout=bound + 5,
                 what="c2 withdrawn from DNS")
    assert took <= bound + 0.5, f"failover took {took:.2f}s, bound {bound}s"
    assert d.cnames(f"c2.{name}") == {name}
    assert d.addresses(f"c2.{name}") == all_addresses((1, 3))  # the CNAME is chased in-zone
    prefix = zone_prefix(zone) + "ns/mysql/"
    timed(lambda: etcd_items(etcd_server.url, prefix).get(prefix + "c2", {}).get("port") == -1,
          timeout=5, what="fallback CNAME in etcd")
    items = etcd_items(etcd_server.url, prefix)
    assert not [k for k in items if k.startswith(prefix + "c2/")]
    assert items[prefix + "c2"]["host"] == name.rstrip(".")
    assert [k for k in items if "/_tcp/_mysql/c2/" in k] == []

    sims.call(sims.clusters["c2"].revive)
    back = PERIOD * SUCCESSES + 1.0
    took = timed(lambda: d.addresses(name) == all_addresses(), timeout=back + 5, what="c2 back")
    assert took <= back + 1.0, f"recovery took {took:.2f}s, bound {back}s"
    timed(lambda: etcd_items(etcd_server.url, prefix) == {
        k: v for k, v in expected_keys(zone).items()}, timeout=5, what="c2 keys back in etcd")


def test_backends_that_lose_readiness_are_withdrawn(etcd_server, sims, daemon_factory, zone):
    d = daemon_factory(etcd_url=etcd_server.url, zone=zone).start()
    name = f"mysql.ns.{zone}"
    timed(lambda: d.addresses(name) == all_addresses(), timeout=10, what="all backends")
    seed_service(sims, "c3", index=3, ready=False)
    timed(lambda: d.addresses(name) == all_addresses((1, 2)), timeout=3, what="c3 withdrawn")
    assert d.cnames(f"c3.{name}") == {name}
    seed_service(sims, "c3", index=3, ready=True)
    timed(lambda: d.addresses(name) == all_addresses(), timeout=3, what="c3 back")


def test_restart_rewrites_nothing_and_foreign_keys_survive(etcd_server, daemon_factory, zone):
    foreign = zone_prefix(zone) + "other/thing/x"
    etcd_put(etcd_server.url, foreign, '{"host":"10.8.8.8","owner":"someone-else"}')
    # a key at a name we publish but owned by someone else: never overwritten
    d = daemon_factory(etcd_url=etcd_server.url, zone=zone).start()
    want = expected_keys(zone)
    timed(lambda: {k: v for k, v in etcd_items(etcd_server.url, zone_prefix(zone)).items()
                   if k != foreign} == want, timeout=10, what="keys written")
    assert d.stop() == 0
    before = etcd_mod_revisions(etcd_server.url, zone_prefix(zone))
    d2 = daemon_factory(etcd_url=etcd_server.url, zone=zone).start()
    name = f"mysql.ns.{zone}"
    timed(lambda: d2.addresses(name) == all_addresses(), timeout=10, what="answers after restart")
    timed(lambda: d2.status()["reconcile"]["runs"] >= 2, timeout=5, what="reconcile after restart")
    assert etcd_mod_revisions(etcd_server.url, zone_prefix(zone)) == before, \
        "a restart rewrote or deleted keys"
    assert etcd_items(etcd_server.url, zone_prefix(zone))[foreign]["owner"] == "someone-else"


def test_a_restart_loads_etcd_first_then_watches_and_catches_up(etcd_server, sims, daemon_factory, zone):
    """At a restart the members' watches wait until etcd's records of them are loaded; a
    change made while the daemon was down still comes with them."""
    d = daemon_factory(etcd_url=etcd_server.url, zone=zone).start()
    name = f"mysql.ns.{zone}"
    timed(lambda: len(etcd_items(etcd_server.url, zone_prefix(zone))) == len(expected_keys(zone)),
          timeout=10, what="keys written")
    assert d.stop() == 0
    assert "after etcd's records of it are loaded" not in d.log_path.read_text()  # etcd held nothing
    seed_service(sims, "c1", index=1, ready=False)  # while the daemon is down
    d2 = daemon_factory(etcd_url=etcd_server.url, zone=zone).start()
    timed(lambda: d2.addresses(name) == all_addresses((2, 3)), timeout=10, what="the change caught up")
    held = [line for line in d2.log_path.read_text().splitlines()
            if "after etcd's records of it are loaded" in line]
    assert sorted(line.split("cluster ")[1].split(":")[0] for line in held) == ["c1", "c2", "c3"]


def test_a_start_and_a_restart_go_live_with_every_record(etcd_server, sims, daemon_factory, zone):
    """Settling comes before the table holds what it settles: at a start the members' lists
    are in before the first pass has stepped their Services, and at a restart etcd's load
    settles every member while its records go into the table a chunk (`SEED_CHUNK` keys) per
    step. The DNS worker goes live only with all of them: it went live with the first slice
    or chunk and answered NXDOMAIN for the rest of the zone until it had it (seconds at 10 x
    5,000: 9,960 of 300,000 records at a start, 27,000 at a restart)."""
    from fed_dns.records.incremental import SEED_CHUNK
    from fed_dns.sim import scenario

    for i, name in enumerate(("c1", "c2", "c3"), start=1):
        sims.call(scenario.seed_many, sims.clusters[name], index=i, services=200)
    total = len(expected_keys(zone)) + 3 * 200 * 3 * 2  # mysql's, and an A and an SRV key per endpoint
    assert total > 3 * SEED_CHUNK
    # a slice of one step: each chunk of the seed is published on its own, as at full size
    extra = {"dns": {"workers": 1}, "reconcile": {"slice": "1us"}}
    d = daemon_factory(etcd_url=etcd_server.url, zone=zone, extra=extra).start()
    timed(lambda: len(etcd_items(etcd_server.url, zone_prefix(zone))) == total, timeout=30, what="keys written")
    assert d.stop() == 0
    d2 = daemon_factory(etcd_url=etcd_server.url, zone=zone, extra=extra).start()
    live = [line for line in d2.log_path.read_text().splitlines() if "answering from the live table" in line]
    assert len(live) == 2, live  # one per daemon (the file is shared)
    assert f"({total} records)" in live[0], live  # a start: once the first pass is done
    assert f"({total} records)" in live[1], live  # a restart: once etcd's records are in


def test_etcd_outage_keeps_dns_and_catches_up(etcd_fresh, sims, daemon_factory, zone):
    d = daemon_factory(etcd_url=etcd_fresh.url, zone=zone).start()
    name = f"mysql.ns.{zone}"
    prefix = zone_prefix(zone) + "ns/mysql/"
    timed(lambda: len(etcd_items(etcd_fresh.url, prefix)) == 12, timeout=10, what="keys written")
    etcd = d.status()["etcd"]
    assert etcd["connected"] and etcd["endpoint"] == etcd_fresh.url and etcd["stale_seconds"] == 0
    etcd_fresh.stop()
    seed_service(sims, "c1", index=1, ready=False)
    timed(lambda: d.addresses(name) == all_addresses((2, 3)), timeout=5, what="DNS follows without etcd")
    assert d.addresses(f"c3.{name}") == {"10.3.0.1", "10.3.0.2"}
    timed(lambda: not d.status()["etcd"]["connected"], timeout=10, what="/status says etcd is away")
    assert d.status()["etcd"]["stale_seconds"] > 0 and d.status()["etcd"]["last_error"]
    etcd_fresh.start()
    timed(lambda: etcd_items(etcd_fresh.url, prefix).get(prefix + "c1", {}).get("port") == -1,
          timeout=20, what="etcd brought up to date")
    timed(lambda: d.status()["etcd"]["connected"], timeout=10, what="/status says connected again")
    assert d.proc.poll() is None


def test_the_daemon_compacts_etcd_history_and_keeps_publishing(etcd_fresh, sims, daemon_factory, zone):
    """etcd.compaction_interval: the daemon trims etcd's history (as kube-apiserver does),
    keeps the last interval of it, and its own watch of the zone goes on across compactions."""
    d = daemon_factory(etcd_url=etcd_fresh.url, zone=zone, extra={"etcd": {"compaction_interval": "1s"}}).start()
    name = f"mysql.ns.{zone}"
    prefix = zone_prefix(zone) + "ns/mysql/"
    timed(lambda: len(etcd_items(etcd_fresh.url, prefix)) == 12, timeout=10, what="keys written")
    timed(lambda: d.status()["etcd"]["compaction"]["compactions"] >= 2, timeout=10,
          what="two compactions (the first round of a replica compacts nothing)")
    compaction = d.status()["etcd"]["compaction"]
    assert compaction["errors"] == 0 and compaction["compacted_revision"] > 1
    kv = EtcdKV(etcd_fresh.url)
    assert kv.revision_compacted(compaction["compacted_revision"] - 1)
    assert not kv.revision_compacted(compaction["compacted_revision"])  # the last interval is kept
    assert "fed_dns_etcd_compactions_total" in d.metrics()
    seed_service(sims, "c1", index=1, ready=False)  # written and answered after compactions
    timed(lambda: d.addresses(name) == all_addresses((2, 3)), timeout=5, what="DNS follows")
    timed(lambda: etcd_items(etcd_fresh.url, prefix).get(prefix + "c1", {}).get("port") == -1,
          timeout=10, what="the change in etcd")
    assert d.status()["etcd"]["connected"] and d.proc.poll() is None


def test_without_etcd_records_live_in_the_dns_table(sims, daemon_factory, zone):
    d = daemon_factory(etcd_url=None, zone=zone).start()
    name = f"mysql.ns.{zone}"
    timed(lambda: d.addresses(name) == all_addresses(), timeout=10, what="answers from memory")
    assert d.status()["etcd"] is None
    assert d.stop(signal.SIGINT) == 0


def test_hostile_object_names_are_counted_not_published(sims, daemon_factory, zone):
    from fed_dns.sim import objects

    cluster = sims.clusters["c1"]
    ports = [{"name": "mysql", "port": 3306, "protocol": "TCP"}]
    sims.call(cluster.apply, objects.service(
        name="Bad_Name", namespace="ns", cluster_ip="10.101.0.99", ports=ports,
        annotations={"fed-dns.io/export": "true"}))
    d = daemon_factory(etcd_url=None, zone=zone).start()
    name = f"mysql.ns.{zone}"
    timed(lambda: d.addresses(name) == all_addresses(), timeout=10, what="good names published")
    assert d.query(f"bad_name.ns.{zone}").rcode() == 3  # NXDOMAIN
    assert "fed_dns_rejected_objects_total" in d.metrics()


def test_member_that_answers_garbage_or_hangs_does_not_stop_the_others(tmp_path, sims, zone):
    import socket
    import threading

    garbage = socket.socket()
    garbage.bind(("127.0.0.1", 0))
    garbage.listen()
    stop = threading.Event()

    def serve():
        garbage.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = garbage.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{garbage")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    hang = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    hang.bind(("127.0.0.1", 0))
    hang.listen(64)
    hung = tmp_path / "hung.kubeconfig"
    hung.write_text(bad_kubeconfig_text(port=hang.getsockname()[1], name="hung"))
    bad = tmp_path / "bad.kubeconfig"
    bad.write_text(bad_kubeconfig_text(port=garbage.getsockname()[1], name="bad"))
    d = Daemon(tmp=tmp_path, sims=sims, etcd_url=None, zone=zone)
    d.config["clusters"].append({"name": "bad", "kubeconfig": str(bad), "context": "bad"})
    d.config["clusters"].append({"name": "hung", "kubeconfig": str(hung), "context": "hung"})
    d.config["clusters"].append({"name": "missing", "kubeconfig": str(tmp_path / "nope"),
                                 "context": "missing"})
    try:
        d.start()
        name = f"mysql.ns.{zone}"
        timed(lambda: d.addresses(name) == all_addresses(), timeout=15, what="good members served")
        clusters = {c["name"]: c for c in d.status()["clusters"]}
        assert clusters["bad"]["health"] != "ready"
        timed(lambda: {c["name"]: c["health"] for c in d.status()["clusters"]}["hung"] == "unreachable",
              timeout=10, what="the hanging member declared unreachable")
        assert clusters["missing"]["health"] == "unreachable"
        assert "nope" in clusters["missing"]["last_error"]
        assert "not-a-secret-token" not in d.output()
        assert "not-a-secret-token" not in str(d.status())
    finally:
        d.stop()
        stop.set()
        thread.join(timeout=5)
        garbage.close()
        hang.close()


def bad_kubeconfig_text(*, port: int, name: str) -> str:
    return f"""apiVersion: v1
kind: Config
clusters: [{{name: {name}, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: {name}, user: {{token: not-a-secret-token}}}}]
contexts: [{{name: {name}, context: {{cluster: {name}, user: {name}}}}}]
current-context: {name}
"""


def test_malformed_config_exits_2_with_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("zone: fed.example.com.\nhealth: {period: soon}\n")
    result = subprocess.run([sys.executable, "-m", "fed_dns.cli", "run", "--config", str(path)],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "health.period" in result.stderr and str(path) in result.stderr
    assert "Traceback" not in result.stderr


def test_status_and_records_commands(etcd_server, daemon_factory, zone):
    d = daemon_factory(etcd_url=etcd_server.url, zone=zone).start()
    name = f"mysql.ns.{zone}"
    timed(lambda: len(etcd_items(etcd_server.url, zone_prefix(zone))) == 12, timeout=10, what="keys")
    cli = [sys.executable, "-m", "fed_dns.cli"]
    url = f"http://127.0.0.1:{d.http_port}"
    out = subprocess.run([*cli, "status", "--url", url], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"zone {zone}" in out.stdout
    for cluster in ("c1", "c2", "c3"):
        assert any(line.split()[:3] == [cluster, "ready", "True"] for line in out.stdout.splitlines())
    from_daemon = subprocess.run([*cli, "records", "--url", url, "--json"], cwd=REPO,
                                 capture_output=True, text=True, timeout=60)
    from_etcd = subprocess.run([*cli, "records", "--etcd", etcd_server.url, "--zone", zone, "--json"],
                               cwd=REPO, capture_output=True, text=True, timeout=60)
    assert from_daemon.returncode == 0 and from_etcd.returncode == 0, from_etcd.stderr
    assert json.loads(from_daemon.stdout) == json.loads(from_etcd.stdout)
    rows = json.loads(from_etcd.stdout)
    assert {r["target"] for r in rows if r["name"] == f"c1.{name}"} == set()  # leaves sit below
    assert {r["target"] for r in rows if r["name"].endswith(f".c2.{name}")} == {"10.2.0.1", "10.2.0.2"}
    table = subprocess.run([*cli, "records", "--url", url], cwd=REPO, capture_output=True, text=True,
                           timeout=60).stdout
    assert table.splitlines()[0].split() == ["NAME", "TARGET", "PORT", "TTL", "CLUSTER"]
    down = subprocess.run([*cli, "status", "--url", "http://127.0.0.1:9"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert down.returncode == 1 and "cannot reach the daemon" in down.stderr


def test_no_nxdomain_before_members_are_decided(tmp_path, sims, zone):
    """Without etcd nothing is known until the first probes decide: SERVFAIL, not NXDOMAIN."""
    d = Daemon(tmp=tmp_path, sims=sims, etcd_url=None, zone=zone)
    d.config["health"]["period"] = "2s"  # two successes needed: about 2 s of `unknown`
    d.config_path.write_text(yaml.safe_dump(d.config))
    d.start_process()
    try:
        seen = rcodes_until_answered(d, f"mysql.ns.{zone}", timeout=20)
        assert "NXDOMAIN" not in seen, seen
        assert "SERVFAIL" in seen, seen
    finally:
        d.stop()


def rcodes_until_answered(d: Daemon, name: str, *, timeout: float) -> set[str]:
    """Ask `name` until it answers NOERROR with records; every rcode seen on the way."""
    import dns.rcode

    seen: set[str] = set()

    def answered():
        try:
            reply = d.query(name)
        except Exception:  # noqa: BLE001 - not listening yet
            return False
        seen.add(dns.rcode.to_text(reply.rcode()))
        return reply.rcode() == dns.rcode.NOERROR and reply.answer
    timed(answered, timeout=timeout, what=f"{name} answered")
    return seen


@pytest.mark.parametrize("workers", [0, 1])
def test_no_nxdomain_for_a_member_still_listing(tmp_path, sims, zone, workers):
    """A member whose health checks answer but whose list is slow: its names are not in the
    table yet, so the zone answers SERVFAIL until it is, never an NXDOMAIN a resolver would
    cache (the table used to go live as soon as every member's health was decided; at a
    restart at 10 x 5,000, for the seconds before etcd's records were loaded)."""
    sims.call(setattr, sims.clusters["c3"], "list_delay", 2.0)
    d = Daemon(tmp=tmp_path, sims=sims, etcd_url=None, zone=zone)
    d.config["dns"] = {"listen": f"127.0.0.1:{d.dns_port}", "workers": workers}
    d.config_path.write_text(yaml.safe_dump(d.config))
    d.start_process()
    try:
        seen = rcodes_until_answered(d, f"c3.mysql.ns.{zone}", timeout=30)
        assert "NXDOMAIN" not in seen, seen
        assert "SERVFAIL" in seen, seen  # the list delay was seen, as SERVFAIL
    finally:
        d.stop()


def test_a_member_stuck_listing_holds_neither_dns_nor_readiness_past_the_sync_grace(tmp_path, sims, zone):
    """watch.sync_grace: one member that never finishes its list must not keep the zone
    SERVFAIL or the replica out of service; the others' records answer, and /status names it."""
    import dns.rcode

    sims.call(setattr, sims.clusters["c3"], "list_delay", 12.0)  # past the grace (3 s) and
    d = Daemon(tmp=tmp_path, sims=sims, etcd_url=None, zone=zone)  # the checks; the sims' close waits for it
    d.config["watch"] = {**d.config.get("watch", {}), "sync_grace": "3s"}
    d.config["dns"] = {"listen": f"127.0.0.1:{d.dns_port}", "workers": 1}
    d.config_path.write_text(yaml.safe_dump(d.config))
    started = time.monotonic()
    d.start_process()
    try:
        timed(lambda: d.query(f"c1.mysql.ns.{zone}").rcode() == dns.rcode.SERVFAIL, timeout=20,
              what="SERVFAIL while c3 lists, within the grace")
        timed(d.ready, timeout=20, what="ready once the grace is over")
        assert time.monotonic() - started >= 3.0
        reply = d.query(f"c1.mysql.ns.{zone}")
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer
        assert d.status()["unsynced"] == ["c3"]  # ready by the grace, not by c3's list
        assert time.monotonic() - started < 12.0
    finally:
        sims.call(setattr, sims.clusters["c3"], "list_delay", 0.0)
        d.stop()


def test_a_member_whose_lists_fail_does_not_hold_dns_back(tmp_path, sims, zone):
    """A member that answers its health checks but refuses its lists (RBAC without list)
    will not sync: the others' names answer at once, not after watch.sync_grace (30 s)."""
    import dns.rcode

    sims.call(setattr, sims.clusters["c3"], "list_forbidden", True)
    d = Daemon(tmp=tmp_path, sims=sims, etcd_url=None, zone=zone)
    d.config_path.write_text(yaml.safe_dump(d.config))
    started = time.monotonic()
    d.start_process()
    try:
        seen = rcodes_until_answered(d, f"c1.mysql.ns.{zone}", timeout=20)
        assert "NXDOMAIN" not in seen, seen
        assert time.monotonic() - started < 15.0  # well before the 30 s grace
        assert d.query(f"c3.mysql.ns.{zone}").rcode() == dns.rcode.NXDOMAIN  # never listed
        assert "c3" in d.status()["unsynced"]
    finally:
        sims.call(setattr, sims.clusters["c3"], "list_forbidden", False)
        d.stop()


def test_not_ready_until_a_slow_member_is_in_the_table(tmp_path, etcd_server, sims, zone):
    """etcd holds nothing for a new zone: a replica whose member is slow to list (its health
    checks answer) must not say ready while its answers lack that member's records (a
    follower once said ready as soon as the empty etcd was loaded, and answered NXDOMAIN)."""
    sims.call(setattr, sims.clusters["c3"], "list_delay", 3.0)
    d = Daemon(tmp=tmp_path, sims=sims, etcd_url=etcd_server.url, zone=zone)
    d.config_path.write_text(yaml.safe_dump(d.config))
    d.start_process()
    name = f"mysql.ns.{zone}"
    try:
        timed(d.ready, timeout=30, what="ready")
        assert d.addresses(name) == all_addresses()
        assert d.status()["ready"] is True
    finally:
        d.stop()


def test_dns_workers_share_the_port_and_follow_a_failover(tmp_path, sims, zone):
    import dns.message
    import dns.query

    d = Daemon(tmp=tmp_path, sims=sims, etcd_url=None, zone=zone)
    d.config["dns"] = {"listen": f"127.0.0.1:{d.dns_port}", "workers": 2}
    d.start()
    name = f"mysql.ns.{zone}"

    def identities_and_answers() -> tuple[set[str], set[frozenset[str]]]:
        who, answers = set(), set()
        for _ in range(40):  # fresh source ports spread over both SO_REUSEPORT sockets
            q = dns.message.make_query("id.server.", "TXT", rdclass="CH")
            reply = dns.query.udp(q, "127.0.0.1", port=d.dns_port, timeout=2)
            who.add(reply.answer[0][0].to_text())
            answers.add(frozenset(d.addresses(name)))
        return who, answers

    try:
        timed(lambda: identities_and_answers()[1] == {frozenset(all_addresses())}, timeout=10,
              what="every socket answers every backend")
        who, _ = identities_and_answers()
        # two worker processes answer; the daemon (it would say "worker 0") answers none
        assert len(who) == 2 and not any("worker 0" in w for w in who), who
        # the daemon's control work below its workers (dns.control_nice, default 5): every
        # daemon thread, those started after the workers too; the workers as we started them
        base = os.getpriority(os.PRIO_PROCESS, 0)
        workers = children(d.proc.pid, running="spawn_main")  # not multiprocessing's resource tracker
        assert len(workers) == 2
        assert set(thread_nices(d.proc.pid)) == {min(base + 5, 19)}
        assert {nice for w in workers for nice in thread_nices(w)} == {base}

        def answered_a() -> float:  # every process's count, as /metrics sums them
            from prometheus_client.parser import text_string_to_metric_families

            return sum(sample.value for family in text_string_to_metric_families(d.metrics())
                       for sample in family.samples if sample.name == "fed_dns_dns_requests_total"
                       and sample.labels.get("type") == "A" and sample.labels.get("rcode") == "NOERROR")

        time.sleep(1.5)  # the workers report every second
        before = answered_a()
        for _ in range(60):
            d.addresses(name)
        timed(lambda: answered_a() - before == 60, timeout=5,
              what="queries answered by both processes counted in /metrics")
        sims.call(sims.clusters["c2"].kill, mode="stop")
        timed(lambda: identities_and_answers()[1] == {frozenset(all_addresses((1, 3)))},
              timeout=10, what="both workers follow the failover")
    finally:
        assert d.stop() == 0


def test_topology_and_weights_through_run_with_workers(tmp_path, sims, zone):
    """local-first by source address (127.0.0.2 east = c1, 127.0.0.3 west = c2), c3 weighs 0;
    both DNS workers follow, and east falls back to everything when c1 goes away."""
    import dns.message
    import dns.query

    d = Daemon(tmp=tmp_path, sims=sims, etcd_url=None, zone=zone)
    d.config["dns"] = {"listen": f"127.0.0.1:{d.dns_port}", "workers": 2}
    regions = {"c1": {"region": "east"}, "c2": {"region": "west"}, "c3": {"weight": 0}}
    d.config["clusters"] = [{**c, **regions[c["name"]]} for c in d.config["clusters"]]
    d.config["topology"] = {"mode": "local-first",
                            "subnets": {"127.0.0.2/32": "east", "127.0.0.3/32": "west"}}
    d.start()
    name = f"mysql.ns.{zone}"

    def seen(source: str, n: int = 30) -> tuple[set[str], set[frozenset[str]], set[str]]:
        """Workers that answered, answer sets, first addresses (fresh source ports spread the
        queries over both SO_REUSEPORT sockets)."""
        who, sets, firsts = set(), set(), set()
        for _ in range(n):
            q = dns.message.make_query("id.server.", "TXT", rdclass="CH")
            who.add(dns.query.udp(q, "127.0.0.1", port=d.dns_port, timeout=2,
                                  source=source).answer[0][0].to_text())
            reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1",
                                  port=d.dns_port, timeout=2, source=source)
            got = [rd.address for rrset in reply.answer for rd in rrset]
            sets.add(frozenset(got))
            firsts.add(got[0])
        return who, sets, firsts

    try:
        timed(lambda: seen("127.0.0.1", 10)[1] == {frozenset(all_addresses())}, timeout=10,
              what="every backend answered")
        who, sets, _ = seen("127.0.0.2")
        assert len(who) == 2 and sets == {frozenset(all_addresses((1,)))}
        who, sets, _ = seen("127.0.0.3")
        assert len(who) == 2 and sets == {frozenset(all_addresses((2,)))}
        _, sets, firsts = seen("127.0.0.1", 60)  # no region: everything, c3 (weight 0) never first
        assert sets == {frozenset(all_addresses())}
        assert firsts and not firsts & all_addresses((3,)), firsts
        assert "not implemented" not in d.output()
        sims.call(sims.clusters["c1"].kill, mode="stop")
        timed(lambda: seen("127.0.0.2", 20)[1] == {frozenset(all_addresses((2, 3)))},
              timeout=10, what="east clients fall back to every backend on both workers")
    finally:
        assert d.stop() == 0
