"""The incremental reconcile loop: what DNS gets, what etcd gets, chunking, retries, leadership.

The state is the real `records.incremental.ZoneState`; the store is a dict fed back to the
state as the etcd mirror would (our own writes echoed, foreign writes seen).
"""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from fed_dns import config as config_mod
from fed_dns.app.reconcile import Reconciler, apply_changes
from fed_dns.model import (Backend, Changes, ClusterSpec, ClusterView, Health, Port, ServiceKey,
                           ServiceView, ZoneSettings)
from fed_dns.records import codec, plan, render
from fed_dns.records.incremental import ZoneState

SETTINGS = ZoneSettings(zone="fed.example.com.", owner_id="fed-dns/fed.example.com.")
KEY = ServiceKey(namespace="ns", name="mysql")
PREFIX = "/skydns/com/example/fed/"


def service(key: ServiceKey, *addresses: str, ready: bool = True) -> ServiceView:
    backends = tuple(Backend(address=a, ports=(Port(name="mysql", port=3306),)) for a in addresses)
    return ServiceView(key=key, backends=backends, ready=ready)


def view(cluster: str, *addresses: str, ready: bool = True) -> ClusterView:
    return ClusterView(cluster=cluster, synced=True, services={KEY: service(KEY, *addresses, ready=ready)})


@pytest.mark.parametrize(("current", "changes", "expected"), [
    ({}, Changes(), {}),
    ({"a": b"1"}, Changes(puts={"b": b"2"}), {"a": b"1", "b": b"2"}),
    ({"a": b"1", "b": b"2"}, Changes(deletes=("a",)), {"b": b"2"}),
    ({"a": b"1"}, Changes(puts={"a": b"3"}, deletes=("zz",)), {"a": b"3"}),
], ids=["nothing", "put", "delete", "overwrite-and-missing-delete"])
def test_apply_changes_table(current, changes, expected):
    assert apply_changes(current=current, changes=changes) == expected


class Harness:
    """A reconciler over a real ZoneState; `etcd` is the store, echoed back like the mirror."""

    def __init__(self, *, chunk: int = 500, leader: bool = True, echo: bool = True,
                 state: ZoneState | None = None, slice_seconds: float = 0.02,
                 write_hold: float = 1.0) -> None:
        self.state = state or ZoneState(settings=SETTINGS)
        self.views = {"c1": view("c1", "10.1.0.1"), "c2": view("c2", "10.2.0.1")}
        self.health = {"c1": Health.READY, "c2": Health.READY}
        self.table: dict[str, bytes] = {}
        self.publishes: list[tuple[dict, tuple]] = []
        self.writes: list[Changes] = []
        self.fail_writes = 0
        self.leader = leader
        self.echo = echo
        self.etcd: dict[str, bytes] = {}
        self.state.load_current({})
        for name in self.views:
            self.state.set_view(self.views[name], changed=None)
            self.state.set_health(name, self.health[name])
        self.reconciler = Reconciler(state=self.state, publish=self.publish, write=self.write,
                                     may_write=lambda: self.leader,
                                     chunk=chunk, slice_seconds=slice_seconds, debounce=0.001,
                                     retry_max=0.05, write_hold=write_hold)
        self.deltas_at_writes: list[int] = []  # table deltas published before each write

    def set_view(self, v: ClusterView, changed=None) -> None:
        self.views[v.cluster] = v
        self.state.set_view(v, changed=changed)
        self.reconciler.mark_dirty()

    def set_health(self, cluster: str, health: Health) -> None:
        self.health[cluster] = health
        self.state.set_health(cluster, health)
        self.reconciler.mark_dirty()

    def publish(self, puts, deletes) -> None:
        self.publishes.append((dict(puts), tuple(deletes)))
        for key in deletes:
            self.table.pop(key, None)
        self.table.update(puts)

    async def write(self, changes: Changes) -> None:
        if self.fail_writes:
            self.fail_writes -= 1
            raise ConnectionError("etcd down")
        self.deltas_at_writes.append(sum(1 for puts, deletes in self.publishes if puts or deletes))
        self.writes.append(changes)
        self.store(changes)

    def store(self, changes: Changes) -> None:
        """Something written to etcd (by us or anyone): the mirror tells the state."""
        for key in changes.deletes:
            self.etcd.pop(key, None)
        self.etcd.update(changes.puts)
        if self.echo:
            self.state.update_current(puts=changes.puts, deletes=changes.deletes)
            self.reconciler.mark_dirty()

    def expected_table(self) -> dict[str, bytes]:
        zone = render.render(views=self.views, health=self.health, settings=SETTINGS).zone
        return apply_changes(current=self.etcd, changes=plan.calculate(current=self.etcd, desired=zone))

    async def settle(self) -> None:
        """Runs and writes until nothing is dirty and nothing is pending."""
        for _ in range(10):
            await self.reconciler.run_once()
            await self.reconciler.flush()
            if not self.state.dirty:
                return
        raise AssertionError("never settled")


async def until(predicate, *, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def running(h: Harness):
    task = asyncio.create_task(h.reconciler.run())
    await asyncio.sleep(0)
    return task


async def stop(h: Harness, task: asyncio.Task) -> None:
    await h.reconciler.stop(grace=1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_first_run_writes_everything_then_nothing_when_nothing_changed():
    h = Harness()
    task = await running(h)
    try:
        h.reconciler.mark_dirty()
        await until(lambda: h.writes and h.table == h.etcd, what="first write")
        assert h.writes[0].puts and not h.writes[0].deletes
        assert h.table == h.expected_table()
        writes = len(h.writes)
        h.reconciler.mark_dirty()
        await asyncio.sleep(0.05)
        assert len(h.writes) == writes  # the echo of our own write is not written again
    finally:
        await stop(h, task)


async def test_dead_cluster_is_a_fallback_in_dns_even_while_etcd_fails_then_etcd_follows():
    h = Harness()
    task = await running(h)
    try:
        h.reconciler.mark_dirty()
        await until(lambda: h.table and h.table == h.etcd, what="first write")
        fallback = PREFIX + "ns/mysql/c2"
        h.fail_writes = 2
        h.set_health("c2", Health.UNREACHABLE)
        await until(lambda: fallback in h.table, what="fallback in DNS")
        assert fallback not in h.etcd  # etcd not yet: the first write attempts fail
        await until(lambda: fallback in h.etcd, what="fallback written after the failures")
        assert h.reconciler.stats.failures >= 2
        assert "etcd down" in h.reconciler.stats.last_error
        assert h.reconciler.stats.failovers == 1
        await until(lambda: h.table == h.expected_table() and h.etcd == h.table, what="converged")
    finally:
        await stop(h, task)


async def test_a_burst_of_events_is_one_run():
    h = Harness()
    task = await running(h)
    try:
        for _ in range(50):
            h.reconciler.mark_dirty()
        await until(lambda: h.reconciler.stats.runs >= 1, what="a run")
        await asyncio.sleep(0.05)
        runs = h.reconciler.stats.runs
        assert runs <= 2  # the first run, and at most one for the echo of its write
    finally:
        await stop(h, task)


async def test_foreign_keys_are_kept_in_the_table_and_never_written():
    h = Harness()
    foreign = PREFIX + "ns/mysql/c1/manual"
    h.store(Changes(puts={foreign: b'{"host":"10.9.9.9"}'}))
    await h.settle()
    assert all(foreign not in w.puts and foreign not in w.deletes for w in h.writes)
    assert h.table[foreign] == b'{"host":"10.9.9.9"}'


async def test_a_follower_plans_for_its_table_but_writes_only_once_leader():
    h = Harness(leader=False)
    await h.settle()
    assert h.table == h.expected_table() and not h.writes and not h.etcd
    h.leader = True
    steps = h.reconciler.stats.services_stepped
    h.reconciler.became_leader()  # what the daemon does when the elector says we lead
    await h.settle()
    assert h.etcd == h.table == h.expected_table()
    # only the Service with a pending plan was stepped again (and once for its echo)
    assert h.reconciler.stats.services_stepped - steps <= 2


async def test_without_etcd_the_table_is_the_store():
    state = ZoneState(settings=SETTINGS)
    published: dict[str, bytes] = {}

    def publish(puts, deletes):
        for key in deletes:
            published.pop(key, None)
        published.update(puts)

    state.load_current({})
    state.set_view(view("c1", "10.1.0.1"), changed=None)
    state.set_health("c1", Health.READY)
    reconciler = Reconciler(state=state, publish=publish, write=None, debounce=0.001)
    await reconciler.run_once()
    assert published and published == dict(state.entries)
    state.set_view(view("c1", "10.1.0.1", "10.1.0.2"), changed={KEY})
    await reconciler.run_once()
    assert any(k.endswith("/" + codec.backend_id("10.1.0.2")) for k in published)
    assert published == dict(state.entries)


async def test_rejections_are_counted_by_a_fixed_code_and_logged_once(caplog):
    h = Harness()
    bad = ServiceView(key=KEY, backends=(Backend(address="10.1.0.1", hostname="Not_A_Label"),))
    h.set_view(ClusterView(cluster="c1", synced=True, services={KEY: bad}), changed={KEY})
    with caplog.at_level("WARNING", logger="fed_dns.reconcile"):
        await h.settle()
        h.reconciler.resync()
        await h.settle()
    assert h.reconciler.stats.rejected == {"hostname": 1}  # the code, never the object's text
    lines = [r.getMessage() for r in caplog.records if "not published" in r.getMessage()]
    assert len(lines) == 1 and "Not_A_Label" in lines[0]


async def test_steps_are_grouped_into_slices_of_about_the_time_budget():
    """Small steps (chunk 5) inside 10 ms slices: far fewer DNS swaps than steps, and no
    slice holds the loop for much of the run."""
    h = Harness(chunk=5, slice_seconds=0.01)
    h.set_view(many_services("c1", 1000))
    # Without this process's own full collections: one (tens of ms in a pytest process)
    # inside a slice made it the longest once, whatever the slicing does.
    gc.collect()
    gc.disable()
    try:
        await h.reconciler.run_once()
    finally:
        gc.enable()
    steps = h.reconciler.stats.steps
    assert steps >= 200 and len(h.publishes) < steps / 2
    # the run was cut into slices: none held the loop for most of it (machine load and
    # coverage slow every step alike, so compare with the run, not with the clock)
    assert h.reconciler.stats.longest_step < h.reconciler.stats.last_run_duration / 3
    await h.settle()
    assert h.etcd == h.table == h.expected_table()


def many_services(cluster: str, count: int) -> ClusterView:
    services = {}
    for i in range(count):
        key = ServiceKey(namespace="ns", name=f"svc{i}")
        services[key] = service(key, f"10.{hash(cluster) % 200}.{i // 250}.{i % 250}")
    return ClusterView(cluster=cluster, synced=True, services=services)


async def test_a_big_change_is_stepped_in_chunks_and_the_loop_runs_between_them():
    h = Harness(chunk=100, slice_seconds=0)  # one step per slice
    h.set_view(many_services("c1", 1000))
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(ticker())
    try:
        steps = h.reconciler.stats.steps
        await h.reconciler.run_once()
        stepped = h.reconciler.stats.steps - steps
        assert stepped >= 10  # 1,000+ dirty Services in chunks of 100
        assert ticks >= stepped - 1  # the other task ran between every two steps
        assert all(len({k.split("/")[6] for k in puts}) <= 100 for puts, _ in h.publishes if puts)
    finally:
        other.cancel()
    await h.settle()
    assert h.etcd == h.table == h.expected_table()


async def test_one_changed_service_costs_one_service():
    h = Harness()
    h.set_view(many_services("c1", 2000))
    await h.settle()
    before = h.reconciler.stats.services_stepped
    big = h.views["c1"]
    key = ServiceKey(namespace="ns", name="svc7")
    services = dict(big.services)
    services[key] = service(key, "10.99.0.7")
    h.set_view(ClusterView(cluster="c1", synced=True, services=services), changed={key})
    await h.reconciler.run_once()
    # the Service, once: its write, taken as done, does not step it again
    assert h.reconciler.stats.services_stepped - before == 1
    assert h.table == h.expected_table()  # what etcd holds with the pending plan applied
    await h.settle()
    assert h.etcd == h.table == h.expected_table()


class SlowState:
    """A ZoneState whose steps hold the event loop (a synchronous sleep per step)."""

    def __init__(self, inner: ZoneState, hold: float) -> None:
        self._inner = inner
        self._hold = hold

    def step(self, *, limit=None, own=None):
        time.sleep(self._hold)
        return self._inner.step(limit=limit, own=own)

    def __getattr__(self, name):
        return getattr(self._inner, name)


@pytest.mark.parametrize(("hold", "writes_before_the_end"), [(30.0, False), (0.05, True)],
                         ids=["run-shorter-than-the-hold", "run-longer-than-the-hold"])
async def test_a_runs_writes_wait_for_its_end_up_to_the_hold(hold, writes_before_the_end):
    """DNS first: a run's table deltas go out while its writes wait for it to end, unless it
    outlasts the hold (a start's first pass writes as it goes)."""
    inner = ZoneState(settings=SETTINGS)
    h = Harness(chunk=10, state=SlowState(inner, hold=0.005), slice_seconds=0, write_hold=hold)
    h.set_view(many_services("c1", 200))  # 20 steps of at least 5 ms each, a publish after each
    task = await running(h)
    try:
        await until(lambda: h.writes and not h.state.dirty and h.reconciler._idle.is_set(),
                    what="the run and its first write")
        await until(lambda: h.reconciler._writes_idle.is_set(), what="the writes")
        deltas = [d for d in h.publishes if d[0] or d[1]]  # the run's; the echo's runs have none
        assert len(deltas) >= 20
        assert (h.deltas_at_writes[0] < len(deltas)) is writes_before_the_end
        assert h.etcd == h.table == h.expected_table()
    finally:
        await stop(h, task)


@pytest.mark.etcd
async def test_the_leader_lease_holds_while_the_reconcile_is_slow(etcd_server):
    """Steps that each hold the loop for 0.1 s, for 3 lease TTLs in all: the lease is
    refreshed between steps, leadership is never lost and no write is refused."""
    from fed_dns.etcd.client import EtcdSettings, connect
    from fed_dns.etcd.leader import LeaderElector

    ttl = 2.0
    client = await connect(EtcdSettings(endpoints=(etcd_server.url,)))
    elector = LeaderElector(client=client, key=f"/test-slow-{time.time_ns()}/leader",
                            identity="slow", ttl=ttl)
    campaign = asyncio.create_task(elector.run())
    try:
        await until(lambda: elector.is_leader, what="leadership")
        inner = ZoneState(settings=SETTINGS)
        h = Harness(chunk=10, state=SlowState(inner, hold=0.1), slice_seconds=0)
        h.leader = False
        h.reconciler._may_write = lambda: elector.is_leader
        h.set_view(many_services("c1", 600))  # 60+ steps of 0.1 s: 6 s, 3 TTLs
        lost = []
        watch = asyncio.create_task(_watch_leadership(elector, lost))
        started = time.monotonic()
        await h.reconciler.run_once()
        took = time.monotonic() - started
        watch.cancel()
        assert took >= 3 * ttl
        assert not lost and elector.is_leader and elector.terms == 1
    finally:
        campaign.cancel()
        await asyncio.gather(campaign, return_exceptions=True)
        await elector.resign()
        await client.close()


async def _watch_leadership(elector, lost: list) -> None:
    while True:
        if not elector.is_leader:
            lost.append(time.monotonic())
        await asyncio.sleep(0.01)


def test_topology_from_config_and_members():
    from fed_dns.app.components import topology

    cfg = config_mod.parse({"topology": {"mode": "local-first", "trust_ecs": True,
                                         "subnets": {"10.0.0.0/8": "east", "10.1.0.0/16": "west"}}},
                           source="t")
    members = (ClusterSpec(name="a", region="east"), ClusterSpec(name="b", region="west", weight=0),
               ClusterSpec(name="c"))
    topo = topology(config=cfg, members=members)
    assert topo.mode == "local-first" and topo.trust_ecs and topo.active
    assert topo.subnets == (("10.1.0.0/16", "west"), ("10.0.0.0/8", "east"))
    assert topo.region_of == {"a": "east", "b": "west"} and topo.weight_of == {"b": 0}
    off = topology(config=config_mod.parse({}, source="t"), members=members)
    assert not off.active and off.mode == "off"


async def test_dns_section_reaches_the_server(unused_port):
    """dns.* settings from config are the DnsServer's (the TCP unsent bound included)."""
    from fed_dns.app import components

    cfg = config_mod.parse({"dns": {"listen": f"127.0.0.1:{unused_port}", "max_tcp_unsent": 8192,
                                    "max_tcp_connections": 7, "tcp_idle_timeout": "2s"}},
                           source="t")
    server = await components.start_dns(config=cfg, settings=cfg.zone_settings())
    try:
        assert server.port == unused_port
        tcp = server._tcp
        assert (tcp.max_unsent, tcp.max_connections, tcp.idle_timeout) == (8192, 7, 2.0)
    finally:
        await server.close()


@pytest.mark.etcd
@pytest.mark.parametrize(("interval", "expected"), [("0", None), ("2m", 120.0)], ids=["off", "two-minutes"])
async def test_the_compactor_runs_unless_the_interval_is_zero(etcd_server, interval, expected):
    from fed_dns.app import components
    from fed_dns.config import parse

    config = parse({"etcd": {"endpoints": [etcd_server.url], "compaction_interval": interval}},
                   source="test")
    parts = await components.start_etcd(config=config, prefix="/skydns/test", identity="test",
                                        on_store=lambda change: None, on_leader=lambda leading: None)
    try:
        got = parts.compactor
        assert (None if got is None else got.interval) == expected
    finally:
        await parts.client.close()
