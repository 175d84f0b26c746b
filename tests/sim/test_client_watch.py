"""Watches through the official client: resume, bookmarks, selectors, 410 after compaction."""

from __future__ import annotations

import asyncio
import threading

import kubernetes
import pytest
from kubernetes.client.rest import ApiException

from fed_dns.sim import objects

pytestmark = pytest.mark.asyncio


class Collector:
    """Runs a client watch in a thread and keeps its events (type, name, resourceVersion)."""

    def __init__(self, func, **kwargs) -> None:
        self.events: list[tuple[str, str | None, str]] = []
        self.error: BaseException | None = None
        self.stopped = False
        self.watch = kubernetes.watch.Watch()
        self._thread = threading.Thread(target=self._run, args=(func,), kwargs=kwargs,
                                        daemon=True)
        self._thread.start()

    def _run(self, func, **kwargs) -> None:
        try:
            for ev in self.watch.stream(func, **kwargs):
                meta = ev["raw_object"].get("metadata") or {}
                self.events.append((ev["type"], meta.get("name"), meta.get("resourceVersion")))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            if not self.stopped:  # Watch.stop() shuts the socket down: the read then fails
                self.error = exc

    async def until(self, predicate, timeout=10.0):
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self.events):
            if self.error is not None:
                raise self.error
            assert asyncio.get_running_loop().time() < deadline, self.events
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.stopped = True
        self.watch.stop()
        await asyncio.to_thread(self._thread.join, 10)

    def typed(self, *types: str) -> list[tuple[str, str | None]]:
        return [(t, n) for t, n, _ in self.events if t in types]


async def test_watch_from_list_version_with_bookmarks(sim, core):
    sim.apply(objects.service(name="a", namespace="ns"))
    listed = await asyncio.to_thread(core.list_service_for_all_namespaces)
    watch = Collector(core.list_service_for_all_namespaces,
                      resource_version=listed.metadata.resource_version,
                      allow_watch_bookmarks=True, timeout_seconds=20)
    try:
        await asyncio.sleep(0.2)
        sim.apply(objects.service(name="b", namespace="ns"))
        sim.apply(objects.service(name="a", namespace="ns", labels={"v": "2"}))
        sim.delete(kind="Service", namespace="ns", name="b")
        await watch.until(lambda evs: len([e for e in evs if e[0] != "BOOKMARK"]) >= 3)
        assert watch.typed("ADDED", "MODIFIED", "DELETED") == \
            [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
        rvs = [int(rv) for t, _, rv in watch.events if t != "BOOKMARK"]
        assert rvs == sorted(rvs) and rvs[-1] == sim.resource_version
        await watch.until(lambda evs: evs[-1][0] == "BOOKMARK")
        assert watch.events[-1][2] == str(sim.resource_version)
    finally:
        await watch.stop()
    assert watch.error is None


async def test_watch_without_version_starts_with_current_state(sim, disco):
    sim.apply(objects.endpoint_slice(service="mysql", namespace="ns",
                                     endpoints=[("10.1.0.1", True)]))
    watch = Collector(disco.list_namespaced_endpoint_slice, namespace="ns", timeout_seconds=20)
    try:
        await watch.until(lambda evs: evs)
        sim.apply(objects.endpoint_slice(service="mysql", namespace="ns",
                                         endpoints=[("10.1.0.1", False)]))
        sim.apply(objects.endpoint_slice(service="web", namespace="elsewhere",
                                         endpoints=[("10.1.0.9", True)]))
        await watch.until(lambda evs: len(evs) >= 2)
        await asyncio.sleep(0.2)
        assert watch.typed("ADDED", "MODIFIED") == [("ADDED", "mysql-sim"),
                                                    ("MODIFIED", "mysql-sim")]
    finally:
        await watch.stop()


async def test_label_selector_watch_sees_objects_enter_and_leave(sim, core):
    watch = Collector(core.list_namespaced_service, namespace="ns", label_selector="export=yes",
                      timeout_seconds=20)
    try:
        await asyncio.sleep(0.2)
        sim.apply(objects.service(name="s", namespace="ns"))
        sim.apply(objects.service(name="s", namespace="ns", labels={"export": "yes"}))
        sim.apply(objects.service(name="s", namespace="ns", labels={"export": "yes", "x": "1"}))
        sim.apply(objects.service(name="s", namespace="ns", labels={"export": "no"}))
        await watch.until(lambda evs: len(evs) >= 3)
        assert watch.typed("ADDED", "MODIFIED", "DELETED") == \
            [("ADDED", "s"), ("MODIFIED", "s"), ("DELETED", "s")]
    finally:
        await watch.stop()


async def test_field_selector_watch(sim, core):
    watch = Collector(core.list_service_for_all_namespaces, field_selector="metadata.name=one",
                      timeout_seconds=20)
    try:
        await asyncio.sleep(0.2)
        for name in ("two", "one", "three"):
            sim.apply(objects.service(name=name, namespace="ns"))
        await watch.until(lambda evs: evs)
        await asyncio.sleep(0.2)
        assert watch.typed("ADDED") == [("ADDED", "one")]
    finally:
        await watch.stop()


async def test_compacted_version_raises_410(sim, core):
    sim.apply(objects.service(name="a", namespace="ns"))
    old = str(sim.resource_version)
    sim.apply(objects.service(name="b", namespace="ns"))
    sim.compact()

    def watch_old():
        w = kubernetes.watch.Watch()
        # timeout_seconds disables the client's one automatic retry after a 410.
        for _ in w.stream(core.list_namespaced_service, "ns", resource_version=old,
                          timeout_seconds=5):
            pass

    with pytest.raises(ApiException) as exc:
        await asyncio.to_thread(watch_old)
    assert exc.value.status == 410 and "Expired" in exc.value.reason
    # Watching from the current version after compaction is fine.
    events = []

    def watch_now():
        w = kubernetes.watch.Watch()
        for ev in w.stream(core.list_namespaced_service, "ns",
                           resource_version=str(sim.resource_version), timeout_seconds=1):
            events.append(ev)

    await asyncio.to_thread(watch_now)
    assert events == []


async def test_bounded_history_expires_old_versions(tmp_path):
    from fed_dns.sim.cluster import SimCluster
    from fed_dns.apiserver.status import ApiError
    from fed_dns.sim.kinds import SERVICE

    cluster = SimCluster(name="small", history_limit=5)
    first = cluster.resource_version
    for i in range(10):
        cluster.apply(objects.service(name=f"s{i}", namespace="ns"))
    with pytest.raises(ApiError) as exc:
        cluster.store.watch(SERVICE, namespace=None, matcher=None, resource_version=first)
    assert exc.value.code == 410
    w = cluster.store.watch(SERVICE, namespace=None, matcher=None,
                            resource_version=cluster.resource_version - 3)
    assert w.take().count(b"\n") == 3


async def test_timeout_seconds_ends_the_stream(sim, core):
    def run():
        w = kubernetes.watch.Watch()
        return list(w.stream(core.list_namespaced_service, "ns", timeout_seconds=1,
                             resource_version=str(sim.resource_version)))

    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await asyncio.to_thread(run) == []
    assert 0.8 < loop.time() - start < 5
