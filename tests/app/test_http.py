"""The HTTP endpoint on a real loopback port, asked over the wire."""

from __future__ import annotations

import contextlib
import json

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from fed_dns.app.http import HttpEndpoint
from fed_dns.app.metrics import Metrics
from tests.support import LOOPBACK


@contextlib.asynccontextmanager
async def serving(**overrides):
    metrics = Metrics(process=False)
    options = {"metrics": metrics, "status": lambda: {"zone": "fed.example.com."}, "ready": lambda: True}
    options.update(overrides)
    endpoint = HttpEndpoint(host=LOOPBACK, port=0, **options)
    await endpoint.start()
    try:
        async with aiohttp.ClientSession(base_url=f"http://{LOOPBACK}:{endpoint.port}") as session:
            yield endpoint, session, options["metrics"]
    finally:
        await endpoint.close()


async def get(session: aiohttp.ClientSession, path: str) -> tuple[int, str, str]:
    async with session.get(path) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def test_metrics_are_prometheus_text_with_values_from_sources():
    async with serving() as (endpoint, session, metrics):
        assert endpoint.port > 0
        requests = {("udp", "AAAA", "NOERROR"): 12}
        metrics.add_source("dns_requests_total", lambda: requests)
        status, ctype, text = await get(session, "/metrics")
        assert status == 200 and ctype.startswith("text/plain")
        samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
        assert [s.value for s in samples if s.name == "fed_dns_dns_requests_total"
                and s.labels == {"protocol": "udp", "type": "AAAA", "rcode": "NOERROR"}] == [12]


async def test_healthz_is_ok_even_while_not_ready():
    async with serving(ready=lambda: False) as (_, session, _m):
        assert await get(session, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")


async def test_readyz_follows_ready():
    state = {"ready": False}
    async with serving(ready=lambda: state["ready"]) as (_, session, _m):
        assert (await get(session, "/readyz"))[0] == 503
        state["ready"] = True
        assert (await get(session, "/readyz"))[:3:2] == (200, "ready\n")


async def test_readyz_is_503_when_the_check_raises():
    async with serving(ready=lambda: 1 / 0) as (_, session, _m):
        assert (await get(session, "/readyz"))[0] == 503


async def test_status_is_json():
    doc = {"zone": "fed.example.com.", "leader": True,
           "clusters": [{"name": "c1", "health": "ready", "synced": True, "services": 3}]}
    async with serving(status=lambda: doc) as (_, session, _m):
        status, ctype, text = await get(session, "/status")
        assert status == 200 and ctype.startswith("application/json")
        assert json.loads(text) == doc


async def test_status_never_carries_credentials():
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmZWQtZG5zIn0.c2lnbmF0dXJl"
    doc = {
        "clusters": [{"name": "c1", "token": "plain-token-value",
                      "last_error": f"GET /readyz: 401 with Authorization: Bearer {token}",
                      "server": "https://admin:hunter2@10.0.0.1:6443"}],
        "etcd": {"endpoints": ["https://root:etcd-pass@etcd:2379"], "password": "etcd-pass"},
        "client_key_data": "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----",
    }
    async with serving(status=lambda: doc) as (_, session, _m):
        status, _, text = await get(session, "/status")
    assert status == 200
    for secret in ("plain-token-value", token, "hunter2", "etcd-pass", "MIIEvQ"):
        assert secret not in text, secret
    body = json.loads(text)
    assert body["clusters"][0]["name"] == "c1"
    assert body["clusters"][0]["server"].endswith("@10.0.0.1:6443")


async def test_status_that_raises_is_a_500_without_the_exception_text():
    def broken():
        raise RuntimeError("password=oops")
    async with serving(status=broken) as (_, session, _m):
        status, _, text = await get(session, "/status")
    assert status == 500 and "oops" not in text


async def test_close_frees_the_port():
    endpoint = HttpEndpoint(host=LOOPBACK, port=0, metrics=Metrics(process=False), status=dict, ready=lambda: True)
    await endpoint.start()
    port = endpoint.port
    await endpoint.close()
    again = HttpEndpoint(host=LOOPBACK, port=port, metrics=Metrics(process=False), status=dict, ready=lambda: True)
    await again.start()
    await again.close()
    await again.close()  # twice is fine
