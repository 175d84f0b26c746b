"""The reconcile loop with an in-memory store: coalescing, owner safety, retry, what DNS gets."""

from __future__ import annotations

import asyncio

import pytest

from fed_dns import config as config_mod
from fed_dns.app.reconcile import Inputs, Reconciler, apply_changes
from fed_dns.etcd.store import MemoryStore
from fed_dns.records import codec
from fed_dns.model import (Backend, Changes, ClusterSpec, ClusterView, Health, Port, ServiceKey,
                           ServiceView, ZoneSettings)

SETTINGS = ZoneSettings(zone="fed.example.com.", owner_id="fed-dns/fed.example.com.")
KEY = ServiceKey(namespace="ns", name="mysql")
PREFIX = "/skydns/com/example/fed/"


def view(cluster: str, *addresses: str, ready: bool = True) -> ClusterView:
    backends = tuple(Backend(address=a, ports=(Port(name="mysql", port=3306),)) for a in addresses)
    return ClusterView(cluster=cluster, synced=True,
                       services={KEY: ServiceView(key=KEY, backends=backends, ready=ready)})


@pytest.mark.parametrize(("current", "changes", "expected"), [
    ({}, Changes(), {}),
    ({"a": b"1"}, Changes(puts={"b": b"2"}), {"a": b"1", "b": b"2"}),
    ({"a": b"1", "b": b"2"}, Changes(deletes=("a",)), {"b": b"2"}),
    ({"a": b"1"}, Changes(puts={"a": b"3"}, deletes=("zz",)), {"a": b"3"}),
], ids=["nothing", "put", "delete", "overwrite-and-missing-delete"])
def test_apply_changes_table(current, changes, expected):
    assert apply_changes(current=current, changes=changes) == expected


class Harness:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.views = {"c1": view("c1", "10.1.0.1"), "c2": view("c2", "10.2.0.1")}
        self.health = {"c1": Health.READY, "c2": Health.READY}
        self.published: list[dict] = []
        self.writes: list[Changes] = []
        self.fail_writes = 0
        self.etcd: dict[str, bytes] = {}  # what the store holds, for the synchronous inputs()
        self.reconciler = Reconciler(settings=SETTINGS, inputs=self.inputs, publish=self.published.append,
                                     write=self.write, debounce=0.001, retry_max=0.05)

    def inputs(self) -> Inputs:
        return Inputs(views=dict(self.views), health=dict(self.health), probes={},
                      current=dict(self.etcd))

    async def write(self, changes: Changes) -> None:
        if self.fail_writes:
            self.fail_writes -= 1
            raise ConnectionError("etcd down")
        self.writes.append(changes)
        await self.put(changes)

    async def put(self, changes: Changes) -> None:
        await self.store.apply(changes)
        self.etcd = await self.store.read(prefix=PREFIX)


async def test_first_run_writes_then_nothing_when_nothing_changed():
    h = Harness()
    first = await h.reconciler.run_once()
    assert first.puts and not first.deletes
    assert h.published[-1] == dict(h.etcd)
    second = await h.reconciler.run_once()
    assert not second and len(h.writes) == 1


async def test_dead_cluster_becomes_fallback_in_one_run_and_dns_sees_it_before_etcd():
    h = Harness()
    await h.reconciler.run_once()
    h.health["c2"] = Health.UNREACHABLE
    h.fail_writes = 1
    with pytest.raises(ConnectionError):
        await h.reconciler.run_once()
    fallback = PREFIX + "ns/mysql/c2"
    assert fallback in h.published[-1]  # DNS already answers with the fallback
    assert fallback not in h.etcd  # etcd not yet
    await h.reconciler.run_once()
    assert fallback in h.etcd
    assert h.reconciler.stats.failovers == 1


async def test_loop_coalesces_a_burst_and_retries_a_failed_write():
    h = Harness()
    task = asyncio.create_task(h.reconciler.run())
    try:
        for _ in range(50):
            h.reconciler.mark_dirty()
        await asyncio.sleep(0.05)
        assert h.reconciler.stats.runs == 1
        h.fail_writes = 2
        h.views["c1"] = view("c1", "10.1.0.1", "10.1.0.9")
        h.reconciler.mark_dirty()
        for _ in range(100):
            if any(k.endswith("/" + codec.backend_id("10.1.0.9")) for k in h.etcd):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the failed write was never retried")
        assert h.reconciler.stats.failures == 2
        assert "etcd down" in h.reconciler.stats.last_error
    finally:
        await h.reconciler.stop(grace=1)
        task.cancel()


async def test_foreign_keys_are_kept_in_the_table_and_never_written():
    h = Harness()
    foreign = PREFIX + "ns/mysql/c1/manual"
    await h.put(Changes(puts={foreign: b'{"host":"10.9.9.9"}'}))
    changes = await h.reconciler.run_once()
    assert foreign not in changes.puts and foreign not in changes.deletes
    assert h.published[-1][foreign] == b'{"host":"10.9.9.9"}'


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
