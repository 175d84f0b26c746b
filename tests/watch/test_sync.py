"""ClusterWatcher against a simulated member over real HTTP: sync, events, readiness."""

from __future__ import annotations

import asyncio
import threading

import pytest

from fed_dns.model import Backend, Port, ServiceKey
from fed_dns.sim import objects
from tests.watch.conftest import until

EXPORT = {"fed-dns.io/export": "true"}
WEB = ServiceKey(namespace="ns", name="web")


def web(**kw):
    kw = {"cluster_ip": "10.0.0.1", "ports": [("http", 80)], "annotations": EXPORT, **kw}
    return objects.service(name="web", namespace="ns", **kw)


def web_slice(*endpoints, name="web-a", address_type="IPv4"):
    return objects.endpoint_slice(service="web", namespace="ns", name=name, endpoints=endpoints,
                                  ports=[("http", 8080)], address_type=address_type)


async def test_initial_sync(sim, watch):
    sim.apply(web())
    sim.apply(web_slice(("10.1.0.1", True)))
    sim.apply(objects.service(name="hidden", namespace="ns", cluster_ip="10.0.0.9"))
    w = await watch(sim)
    await until(lambda: w.view.synced, what="synced")
    assert dict(w.view.services) == {WEB: w.view.services[WEB]}
    svc = w.view.services[WEB]
    assert svc.ready and svc.backends == (Backend(address="10.0.0.1", ports=(Port(name="http", port=80),)),)
    assert w.views[-1] is w.view and w.view.cluster == "c1"
    assert not w.errors and not w.watcher.stats.restarts


async def test_synced_on_an_empty_cluster(sim, watch):
    w = await watch(sim)
    await until(lambda: w.views and w.views[-1].synced, what="a synced view")
    assert w.view.services == {}


async def test_services_and_slices_added_modified_deleted(sim, watch):
    w = await watch(sim)
    await until(lambda: w.view.synced)
    sim.apply(web())
    await until(lambda: WEB in w.view.services, what="added Service")
    assert not w.view.services[WEB].ready
    sim.apply(web_slice(("10.1.0.1", True)))
    await until(lambda: w.view.services[WEB].ready, what="ready after slice added")
    sim.apply(web(annotations={**EXPORT, "fed-dns.io/publish": "endpoints"}))
    await until(lambda: w.view.services[WEB].backends[0].address == "10.1.0.1", what="publish mode change")
    sim.apply(web_slice(("10.1.0.1", True), ("10.1.0.2", True)))
    await until(lambda: len(w.view.services[WEB].backends) == 2, what="slice modified")
    sim.delete(kind="EndpointSlice", namespace="ns", name="web-a")
    await until(lambda: not w.view.services[WEB].ready, what="slice deleted")
    assert w.view.services[WEB].backends == ()
    sim.delete(kind="Service", namespace="ns", name="web")
    await until(lambda: WEB not in w.view.services, what="Service deleted")
    stats = w.watcher.stats
    assert stats.events["services"] == 3 and stats.events["endpointslices"] == 3


async def test_readiness_follows_endpoint_conditions(sim, watch):
    sim.apply(web())
    sim.apply(web_slice(("10.1.0.1", True)))
    w = await watch(sim)
    await until(lambda: w.view.synced and w.view.services[WEB].ready)
    sim.apply(web_slice(("10.1.0.1", False)))
    await until(lambda: not w.view.services[WEB].ready, what="not ready")
    sim.apply(web_slice(("10.1.0.1", False)))
    sim.apply(web_slice(("10.1.0.2", False), name="web-b"))
    sim.apply(web_slice(("10.1.0.2", True), name="web-b"))
    await until(lambda: w.view.services[WEB].ready, what="ready through a second slice")


async def test_dual_stack_slices(sim, watch):
    sim.apply(web(headless=True))
    sim.apply(web_slice(("10.1.0.1", True, "web-0")))
    sim.apply(web_slice(("fd00::1", True, "web-0"), name="web-v6", address_type="IPv6"))
    w = await watch(sim)
    await until(lambda: w.view.synced)
    assert [(b.address, b.hostname) for b in w.view.services[WEB].backends] == [
        ("10.1.0.1", "web-0"), ("fd00::1", "web-0")]


async def test_paged_list_of_many_services(sim, watch):
    for i in range(1200):
        sim.apply(objects.service(name=f"s{i}", namespace="ns", annotations=EXPORT))
    w = await watch(sim)
    await until(lambda: w.view.synced, timeout=20)
    assert len(w.view.services) == 1200


async def test_a_burst_is_coalesced_into_few_views(sim, watch):
    w = await watch(sim)
    await until(lambda: w.view.synced)
    before, empty = len(w.views), w.view
    for i in range(300):
        sim.apply(objects.service(name=f"s{i}", namespace="ns", annotations=EXPORT))
    await until(lambda: len(w.view.services) == 300)
    assert len(w.views) - before < 300
    # the changed sets of the burst name each new Service exactly once
    reported = [key for changed in w.changed(before) for key in changed]
    assert sorted(reported) == sorted(ServiceKey(namespace="ns", name=f"s{i}") for i in range(300))
    # views share the watcher's live, read-only map: nothing is copied per flush
    assert len(empty.services) == 300
    with pytest.raises(TypeError):
        w.view.services[WEB] = w.view.services[ServiceKey(namespace="ns", name="s0")]


async def test_one_slice_change_reports_exactly_its_service(sim, watch):
    other = ServiceKey(namespace="ns", name="other")
    sim.apply(web(annotations={**EXPORT, "fed-dns.io/publish": "endpoints"}))
    sim.apply(web_slice(("10.1.0.1", True)))
    sim.apply(objects.service(name="other", namespace="ns", annotations=EXPORT))
    w = await watch(sim)
    await until(lambda: w.view.synced)
    assert set().union(*w.changes) == {WEB, other}
    before = len(w.changes)
    sim.apply(web_slice(("10.1.0.1", True), ("10.1.0.2", True)))
    await until(lambda: len(w.view.services[WEB].backends) == 2 and w.changed(before), what="the change")
    assert w.changed(before) == [frozenset({WEB})]


@pytest.mark.parametrize("step, expected", [
    (lambda sim: sim.apply(objects.service(name="hidden", namespace="ns")), frozenset()),
    (lambda sim: sim.apply(web_slice(("10.1.0.1", True))), frozenset()),  # same backends again
    (lambda sim: sim.delete(kind="Service", namespace="ns", name="web"), frozenset({WEB})),
    (lambda sim: sim.apply(web(annotations={})), frozenset({WEB})),  # no longer exported
    (lambda sim: sim.delete(kind="EndpointSlice", namespace="ns", name="web-a"), frozenset({WEB})),
], ids=["unexported-service-added", "slice-rewritten-unchanged", "service-deleted", "unexported",
        "slice-deleted"])
async def test_changed_names_exactly_the_services_whose_view_changed(sim, watch, step, expected):
    sim.apply(web())
    sim.apply(web_slice(("10.1.0.1", True)))
    w = await watch(sim)
    await until(lambda: w.view.synced)
    before = len(w.changes)
    step(sim)
    marker = objects.service(name="marker", namespace="ns", annotations=EXPORT)
    sim.apply(marker)  # an event after the step: once it is in, the step's flush is done
    await until(lambda: ServiceKey(namespace="ns", name="marker") in w.view.services)
    reported = frozenset().union(*w.changed(before)) - {ServiceKey(namespace="ns", name="marker")}
    assert reported == expected


async def test_a_big_list_is_published_in_slices_and_synced_once_whole(sim, watch):
    for i in range(1200):
        sim.apply(objects.service(name=f"s{i}", namespace="ns", annotations=EXPORT))
    w = await watch(sim)
    await until(lambda: w.view.synced, timeout=20)
    assert len(w.changed()) >= 3  # 1,200 Services, at most FLUSH_CHUNK per loop callback
    assert sum(len(c) for c in w.changed()) == 1200
    assert [v.synced for v in w.views] == [False] * (len(w.views) - 1) + [True]


async def test_events_are_applied_in_order(sim, watch):
    w = await watch(sim)
    await until(lambda: w.view.synced)
    for i in range(50):
        sim.apply(web(cluster_ip=f"10.0.1.{i}"))
    sim.delete(kind="Service", namespace="ns", name="web")
    sim.apply(web(cluster_ip="10.0.2.1"))
    await until(lambda: w.watcher.stats.events.get("services") == 52)
    # Events are counted as they are applied; the view follows in a flush the loop runs just
    # after (asserting at once raced it, once in ~1,000 runs under load).
    await until(lambda: WEB in w.view.services
                and w.view.services[WEB].backends[0].address == "10.0.2.1", timeout=2)
    await asyncio.sleep(0.05)  # and it stays the last event's: no older one applied after it
    assert w.view.services[WEB].backends[0].address == "10.0.2.1"


async def test_cancel_stops_threads_promptly(sim, watch):
    w = await watch(sim)
    await until(lambda: w.view.synced)
    await asyncio.sleep(0.2)  # the watches are open and idle
    assert _watch_threads("c1")
    w.task.cancel()
    await asyncio.gather(w.task, return_exceptions=True)
    await until(lambda: not _watch_threads("c1"), timeout=2, what="watch threads to end")


def _watch_threads(cluster: str) -> list[str]:
    return [t.name for t in threading.enumerate()
            if t.name.startswith(("fed-dns-watch-", "fed-dns-list-")) and f"-{cluster}-" in t.name]


async def test_a_service_whose_objects_cannot_be_decided_keeps_its_view_and_spares_the_rest(sim, watch):
    """Slices no API server sends (a port protocol that is a number, merged with a string one) make
    the decision raise: that Service keeps what was published and is counted `undecidable`;
    the other Services changed in the same chunk are published."""
    endpoints = web(annotations={**EXPORT, "fed-dns.io/publish": "endpoints"})
    sim.apply(endpoints)
    sim.apply(web_slice(("10.1.0.1", True)))
    w = await watch(sim)
    await until(lambda: w.view.synced and WEB in w.view.services, what="web published")
    before = w.view.services[WEB]
    bad = web_slice(("10.1.0.1", True), name="web-b")  # the same address: its ports merge
    bad["ports"][0]["protocol"] = 5
    sim.apply(bad)
    sim.apply(objects.service(name="other", namespace="ns", cluster_ip="10.0.0.2",
                              ports=[("http", 80)], annotations=EXPORT))
    other = ServiceKey(namespace="ns", name="other")
    await until(lambda: other in w.view.services, what="the other Service published")
    await until(lambda: w.watcher.stats.rejected.get("undecidable"), what="counted")
    assert w.view.services[WEB] == before
    assert not w.errors


async def test_lists_of_several_members_parse_one_page_at_a_time(watch, monkeypatch):
    """Parsing holds the GIL: the lists of every member side by side starved the event loop
    at a restart (lease and probe deadlines missed). Their pages are parsed one at a time."""
    from fed_dns.sim.cluster import SimCluster
    from fed_dns.watch import stream

    inside: set[int] = set()
    most = 0
    lock = threading.Lock()
    parse = stream.parse_object

    def counting(**kwargs):
        nonlocal most
        me = threading.get_ident()
        with lock:
            inside.add(me)
            most = max(most, len(inside))
        try:
            for _ in range(200):  # a page's worth of work per object, so overlaps would show
                pass
            return parse(**kwargs)
        finally:
            with lock:
                inside.discard(me)

    monkeypatch.setattr(stream, "parse_object", counting)
    sims = [SimCluster(name=f"c{i}") for i in range(3)]
    try:
        for cluster in sims:
            await cluster.start()
            for i in range(1200):
                cluster.apply(objects.service(name=f"s{i}", namespace="ns", annotations=EXPORT))
        watching = [await watch(cluster) for cluster in sims]
        await until(lambda: all(w.view.synced for w in watching), timeout=30)
        assert [len(w.view.services) for w in watching] == [1200] * 3
        assert most == 1
    finally:
        for cluster in sims:
            await cluster.close()
