"""Wire details the clients rely on, checked with raw HTTP: Status bodies, watch framing."""

from __future__ import annotations

import json

import aiohttp
import pytest

from fed_dns.sim import objects, scenario

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def http(sim):
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {sim.token}"}) as s:
        yield s


async def _json(http, method, url, **kw):
    async with http.request(method, url, **kw) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.json()


async def test_status_objects_for_errors(sim, http):
    code, ctype, body = await _json(http, "GET", f"{sim.url}/api/v1/namespaces/ns/services/x")
    assert code == 404 and ctype.startswith("application/json")
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": 'services "x" not found', "reason": "NotFound", "code": 404,
                    "details": {"name": "x", "group": "", "kind": "services"}}
    async with aiohttp.ClientSession() as anonymous:
        code, _, body = await _json(anonymous, "GET", f"{sim.url}/api/v1/services")
    assert (code, body["reason"], body["code"]) == (401, "Unauthorized", 401)
    code, _, body = await _json(http, "GET", f"{sim.url}/api/v1/nothings")
    assert (code, body["reason"]) == (404, "NotFound")
    code, _, body = await _json(http, "POST", f"{sim.url}/api/v1/namespaces/default/services",
                                data=b"{not json", headers={"Content-Type": "application/json"})
    assert (code, body["reason"]) == (400, "BadRequest")


async def test_watch_framing_bookmarks_and_expired(sim, http):
    rv = sim.resource_version
    sim.apply(objects.service(name="a", namespace="ns"))
    url = (f"{sim.url}/api/v1/namespaces/ns/services?watch=true&resourceVersion={rv}"
           "&allowWatchBookmarks=true&timeoutSeconds=1")
    async with http.get(url) as resp:
        assert resp.status == 200 and resp.headers["Transfer-Encoding"] == "chunked"
        events = [json.loads(line) for line in (await resp.read()).splitlines()]
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "a"
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks and bookmarks[0]["object"] == {
        "kind": "Service", "apiVersion": "v1",
        "metadata": {"resourceVersion": str(sim.resource_version)}}

    sim.compact()
    async with http.get(f"{sim.url}/api/v1/services?watch=1&resourceVersion={rv}") as resp:
        assert resp.status == 200
        (event,) = [json.loads(line) for line in (await resp.read()).splitlines()]
    assert event["type"] == "ERROR"
    assert (event["object"]["kind"], event["object"]["code"], event["object"]["reason"]) == \
        ("Status", 410, "Expired")


async def test_continue_and_delete_collection(sim, http):
    scenario.seed_mysql(sim, index=3)
    code, _, page = await _json(http, "GET", f"{sim.url}/api/v1/namespaces?limit=2")
    assert code == 200 and len(page["items"]) == 2 and page["metadata"]["continue"]
    code, _, bad = await _json(http, "GET", f"{sim.url}/api/v1/namespaces?continue=%%%")
    assert code == 400
    es = sim.get(kind="EndpointSlice", namespace="ns", name="mysql-sim")
    assert [e["addresses"][0] for e in es["endpoints"]] == ["10.3.0.1", "10.3.0.2"]
    code, _, gone = await _json(
        http, "DELETE", f"{sim.url}/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices"
        "?labelSelector=kubernetes.io%2Fservice-name%3Dmysql")
    assert code == 200 and [i["metadata"]["name"] for i in gone["items"]] == ["mysql-sim"]
    assert sim.list(kind="EndpointSlice") == []
