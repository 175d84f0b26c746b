"""The handlers over both stores, through HTTP: patch kinds, stale writes, paging tokens,
watch streams with bookmarks, 404 for unknown kinds, 401 without a token."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fed_dns.apiserver import handlers
from fed_dns.apiserver.context import Served
from tests.apiserver.conftest import REGISTRY

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CMS = "/api/v1/namespaces/default/configmaps"
DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"


async def _client(backend):
    served = Served(storage=backend.storage, registry=REGISTRY, tokens=(TOKEN,),
                    bookmark_interval=0.2)
    client = TestClient(TestServer(handlers.build_app(served)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def http(backend):
    async for client in _client(backend):
        yield client


@pytest.fixture
async def http_fresh(fresh_backend):
    """`http` on a store that may be compacted (the etcd one on an etcd of its own)."""
    async for client in _client(fresh_backend):
        yield client, fresh_backend


async def call(http, method: str, path: str, body=None, *, ctype="application/json",
               expect: int = 200) -> dict:
    data = None if body is None else json.dumps(body)
    resp = await http.request(method, path, data=data,
                              headers={**AUTH, "Content-Type": ctype})
    doc = await resp.json()
    assert resp.status == expect, doc
    return doc


def deployment(name: str, replicas: int = 1) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "i:1"},
                                                          {"name": "d", "image": "j:1"}]}}}}


PATCHES = [
    pytest.param("application/merge-patch+json", {"spec": {"replicas": 5}},
                 lambda o: o["spec"]["replicas"] == 5, id="merge"),
    pytest.param("application/strategic-merge-patch+json",
                 {"spec": {"template": {"spec": {"containers": [{"name": "d", "image": "j:2"}]}}}},
                 lambda o: [c["image"] for c in o["spec"]["template"]["spec"]["containers"]]
                 == ["i:1", "j:2"], id="strategic-keeps-other-containers"),
    pytest.param("application/json-patch+json",
                 [{"op": "replace", "path": "/spec/replicas", "value": 0},
                  {"op": "add", "path": "/metadata/labels/x", "value": "y"}],
                 lambda o: o["spec"]["replicas"] == 0 and o["metadata"]["labels"]["x"] == "y",
                 id="json-patch"),
]


@pytest.mark.parametrize(("ctype", "body", "check"), PATCHES)
async def test_patch_kinds(http, ctype, body, check):
    await call(http, "POST", DEPLOYS, deployment("web"), expect=201)
    patched = await call(http, "PATCH", f"{DEPLOYS}/web", body, ctype=ctype)
    assert check(patched)
    assert check(await call(http, "GET", f"{DEPLOYS}/web"))


async def test_patch_with_a_stale_resource_version_conflicts(http):
    created = await call(http, "POST", DEPLOYS, deployment("web"), expect=201)
    rv = created["metadata"]["resourceVersion"]
    await call(http, "PATCH", f"{DEPLOYS}/web", {"spec": {"replicas": 2}},
               ctype="application/merge-patch+json")
    doc = await call(http, "PATCH", f"{DEPLOYS}/web",
                     {"metadata": {"resourceVersion": rv}, "spec": {"replicas": 3}},
                     ctype="application/merge-patch+json", expect=409)
    assert doc["reason"] == "Conflict"
    doc = await call(http, "PUT", f"{DEPLOYS}/web",
                     dict(deployment("web", 7), metadata={"name": "web", "resourceVersion": rv}),
                     expect=409)
    assert doc["reason"] == "Conflict"


async def test_scale_subresource(http):
    await call(http, "POST", DEPLOYS, deployment("web"), expect=201)
    scale = await call(http, "PATCH", f"{DEPLOYS}/web/scale", {"spec": {"replicas": 4}},
                       ctype="application/merge-patch+json")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 4
    assert (await call(http, "GET", f"{DEPLOYS}/web"))["spec"]["replicas"] == 4


async def test_list_continue_tokens(http):
    for i in range(5):
        await call(http, "POST", CMS, {"metadata": {"name": f"c{i}"}}, expect=201)
    names, token = [], ""
    while True:
        page = await call(http, "GET", f"{CMS}?limit=2" + (f"&continue={token}" if token else ""))
        names += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
    assert names == [f"c{i}" for i in range(5)]


async def test_watch_stream_with_bookmarks(http):
    created = await call(http, "POST", CMS, {"metadata": {"name": "a"}}, expect=201)
    rv = created["metadata"]["resourceVersion"]
    resp = await http.get(f"{CMS}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true"
                          "&timeoutSeconds=2", headers=AUTH)
    await call(http, "PUT", f"{CMS}/a", {"metadata": {"name": "a"}, "data": {"k": "v"}})
    seen = []
    async for line in resp.content:
        event = json.loads(line)
        seen.append(event["type"])
        if event["type"] == "BOOKMARK":
            assert int(event["object"]["metadata"]["resourceVersion"]) > int(rv)
            break
    resp.close()
    assert seen[0] == "MODIFIED" and "BOOKMARK" in seen


async def test_unknown_kind_is_404_and_no_token_is_401(http):
    doc = await call(http, "GET", "/apis/nope.io/v1/things", expect=404)
    assert doc["reason"] == "NotFound"
    resp = await http.get(CMS)
    assert resp.status == 401
    for path in ("/healthz", "/readyz", "/livez"):
        assert (await http.get(path)).status == 200
    bad = await http.get(CMS, headers={"Authorization": f"Bearer {TOKEN}x"})
    assert bad.status == 401 and (await bad.json())["reason"] == "Unauthorized"
    resp = await http.post(CMS, data=b"{not json", headers=AUTH)
    assert resp.status == 400


async def test_discovery_names_every_kind(http):
    groups = await call(http, "GET", "/apis")
    assert "apps" in [g["name"] for g in groups["groups"]]
    core = await call(http, "GET", "/api/v1")
    assert {"namespaces", "secrets", "configmaps"} <= {r["name"] for r in core["resources"]}


async def test_after_a_compaction_a_watch_gets_an_error_event_and_a_continue_410(http_fresh):
    http, backend = http_fresh
    for i in range(3):
        created = await call(http, "POST", CMS, {"metadata": {"name": f"c{i}"}}, expect=201)
    old = created["metadata"]["resourceVersion"]
    page = await call(http, "GET", f"{CMS}?limit=1")
    await call(http, "PUT", f"{CMS}/c0", {"metadata": {"name": "c0"}, "data": {"k": "v"}})
    await backend.compact()
    # as kube-apiserver: 200, then one ERROR event carrying the 410 Status
    resp = await http.get(f"{CMS}?watch=1&resourceVersion={old}", headers=AUTH)
    assert resp.status == 200
    lines = [json.loads(line) async for line in resp.content]
    assert [(e["type"], e["object"]["code"], e["object"]["reason"]) for e in lines] == \
        [("ERROR", 410, "Expired")]
    doc = await call(http, "GET", f"{CMS}?limit=1&continue={page['metadata']['continue']}",
                     expect=410)
    assert doc["reason"] == "Expired"
