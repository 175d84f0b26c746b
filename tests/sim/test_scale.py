"""The benchmark's shape on one cluster: 2,000 Services x 3 endpoints through the client."""

from __future__ import annotations

import asyncio

import kubernetes
import pytest

from fed_dns.sim import objects, scenario

pytestmark = pytest.mark.asyncio


async def test_list_in_pages_and_watch_2000_services(sim, core, disco):
    scenario.seed_many(sim, index=1, services=2000, endpoints=3)

    def list_all(func):
        items, token = [], None
        while True:
            page = func(limit=500, _continue=token)
            items += page.items
            token = page.metadata._continue
            if not token:
                return items, page.metadata.resource_version

    services, rv = await asyncio.to_thread(list_all, core.list_service_for_all_namespaces)
    slices, _ = await asyncio.to_thread(list_all, disco.list_endpoint_slice_for_all_namespaces)
    assert len(services) == 2000 and len({s.metadata.name for s in services}) == 2000
    assert len(slices) == 2000 and all(len(s.endpoints) == 3 for s in slices)
    addresses = {e.addresses[0] for s in slices for e in s.endpoints}
    assert len(addresses) == 6000

    for n in range(0, 2000, 2):
        sim.apply(objects.endpoint_slice(service=f"svc-{n}", namespace="bench",
                                         endpoints=[("10.9.9.9", False, None)]))

    def count_events():
        w = kubernetes.watch.Watch()
        seen = 0
        for _ in w.stream(disco.list_endpoint_slice_for_all_namespaces, resource_version=rv,
                          timeout_seconds=30, deserialize=False):
            seen += 1
            if seen == 1000:
                w.stop()
        return seen

    assert await asyncio.to_thread(count_events) == 1000
