"""Broken members: 410 re-lists, killed and hung API servers, bad credentials and kubeconfigs."""

from __future__ import annotations

import asyncio
import json

import pytest

from fed_dns.model import ClusterSpec, ServiceKey
from fed_dns.sim import objects
from fed_dns.watch.kubeconfig import KubeconfigError, load
from fed_dns.watch.parse import WatchOptions
from tests.watch.conftest import FAST, until

EXPORT = {"fed-dns.io/export": "true"}


def svc(name, ip):
    return objects.service(name=name, namespace="ns", cluster_ip=ip, annotations=EXPORT)


def ready_slice(service, ip):
    return objects.endpoint_slice(service=service, namespace="ns", name=f"{service}-a", endpoints=[(ip, True)])


def key(name):
    return ServiceKey(namespace="ns", name=name)


async def test_relist_after_410_drops_what_was_deleted_meanwhile(sim, watch):
    for name, ip in (("web", "10.0.0.1"), ("api", "10.0.0.2"), ("db", "10.0.0.3")):
        sim.apply(svc(name, ip))
        sim.apply(ready_slice(name, ip.replace(".0.0.", ".1.0.")))
    w = await watch(sim)
    await until(lambda: w.view.synced and len(w.view.services) == 3)
    sim.kill("stop")
    await until(lambda: w.errors, what="the broken watch to be noticed")
    sim.delete(kind="Service", namespace="ns", name="web")
    sim.delete(kind="EndpointSlice", namespace="ns", name="db-a")
    sim.apply(svc("api", "10.0.0.22"))
    sim.apply(svc("new", "10.0.0.4"))
    sim.compact()
    await sim.revive()
    await until(lambda: set(w.view.services) == {key("api"), key("db"), key("new")}
                and not w.view.services[key("db")].ready, timeout=10, what="the re-listed view")
    assert w.view.services[key("api")].backends[0].address == "10.0.0.22"
    assert w.watcher.stats.relists == {"services": 1, "endpointslices": 1}
    sim.apply(svc("after", "10.0.0.5"))
    await until(lambda: key("after") in w.view.services, what="watching again after the re-list")


async def test_killed_member_backs_off_keeps_its_last_view_and_recovers(sim, watch):
    sim.apply(svc("web", "10.0.0.1"))
    sim.apply(ready_slice("web", "10.1.0.1"))
    w = await watch(sim)
    await until(lambda: w.view.synced)
    last = w.view
    sim.kill("stop")
    await until(lambda: min(w.watcher.stats.restarts.get(k, 0) for k in ("services", "endpointslices")) >= 3,
                timeout=10, what="several restarts of both kinds")
    await asyncio.sleep(1.0)
    restarts = sum(w.watcher.stats.restarts.values())
    assert restarts < 40, "backoff must slow the reconnects down"
    assert w.view is last and w.view.services[key("web")].ready
    assert {c for c, _ in w.errors} == {"c1"}
    assert all(sim.token not in m for _, m in w.errors)
    assert "Connection refused" in w.watcher.stats.last_error
    await sim.revive()
    sim.apply(svc("api", "10.0.0.2"))
    await until(lambda: key("api") in w.view.services, timeout=10, what="recovery after revive")
    assert w.view.synced


async def test_hung_member_is_caught_by_the_inactivity_timeout(sim, watch):
    sim.apply(svc("web", "10.0.0.1"))
    w = await watch(sim, options=WatchOptions(inactivity_timeout=1.5, backoff_initial=0.05, backoff_max=0.3))
    await until(lambda: w.view.synced)
    await asyncio.sleep(2.0)  # bookmarks (every 0.5 s) keep a quiet stream alive
    assert not w.watcher.stats.restarts
    sim.kill("hang")
    await until(lambda: w.watcher.stats.restarts, timeout=5, what="the dead stream to be noticed")
    assert "no event or bookmark for 1.5s" in w.watcher.stats.last_error
    assert w.view.services
    await sim.revive()
    sim.apply(svc("api", "10.0.0.2"))
    await until(lambda: key("api") in w.view.services, timeout=15, what="recovery after the hang")


async def test_wrong_token_is_reported_without_credentials(sim, watch, tmp_path):
    sim.apply(svc("web", "10.0.0.1"))
    doc = sim.kubeconfig()
    doc["users"][0]["user"]["token"] = "not-the-token-0123456789"
    path = tmp_path / "bad.kubeconfig"
    path.write_text(json.dumps(doc))
    from fed_dns.watch.cluster import ClusterWatcher

    errors = []
    api = load(ClusterSpec(name="c1", kubeconfig=str(path)))
    watcher = ClusterWatcher(spec=ClusterSpec(name="c1"), api_client=api, options=FAST,
                             on_change=lambda v, changed: None, on_error=lambda c, m: errors.append(m))
    task = asyncio.create_task(watcher.run())
    try:
        await until(lambda: watcher.stats.restarts.get("services", 0) >= 2, what="restarts on 401")
        assert "HTTP 401" in watcher.stats.last_error
        assert not any("0123456789" in m or sim.token in m for m in errors)
        assert not watcher.view.synced
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        api.close()


async def test_unloadable_kubeconfig_does_not_stop_other_members(sim, watch, tmp_path):
    sim.apply(svc("web", "10.0.0.1"))
    good = await watch(sim)
    broken = ClusterSpec(name="c2", kubeconfig=str(tmp_path / "missing"))
    with pytest.raises(KubeconfigError, match=r"cluster 'c2': kubeconfig .*missing'?: file not found"):
        load(broken)
    await until(lambda: good.view.synced and good.view.services)
    sim.apply(svc("api", "10.0.0.2"))
    await until(lambda: key("api") in good.view.services)
