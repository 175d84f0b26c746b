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


async def test_status_and_records_behind_a_bearer_token_when_one_is_set():
    token = "tok-3f9a1c7e"
    async with serving(token=token, records=lambda: [{"name": "a.fed.example.com."}]) as (_, session, _m):
        for path in ("/status", "/records"):
            status, _, body = await get(session, path)
            assert status == 401 and token not in body
            async with session.get(path, headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401
            async with session.get(path, headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200 and token not in await r.text()
        for path in ("/metrics", "/healthz", "/readyz"):  # scrapers and probes stay open
            assert (await get(session, path))[0] == 200


def test_status_command_sends_the_token_file(tmp_path):
    """`fed-dns status --token-file` against a daemon's token-guarded endpoint."""
    import asyncio
    import subprocess
    import sys
    import threading

    from tests.support import REPO

    token_file = tmp_path / "token"
    token_file.write_text("tok-55aa\n")
    ready = threading.Event()
    holder: dict = {}

    def serve() -> None:
        async def main() -> None:
            doc = {"zone": "fed.example.com.", "owner_id": "o", "ready": True, "leader": None,
                   "etcd": None, "clusters": [], "records": 0,
                   "reconcile": {"runs": 1, "failures": 0, "writes": 0, "failovers": 0,
                                 "last_error": ""}}
            endpoint = HttpEndpoint(host=LOOPBACK, port=0, metrics=Metrics(process=False),
                                    status=lambda: doc, ready=lambda: True, token="tok-55aa")
            await endpoint.start()
            holder["loop"] = asyncio.get_running_loop()
            holder["port"], holder["stop"] = endpoint.port, asyncio.Event()
            ready.set()
            await holder["stop"].wait()
            await endpoint.close()
        asyncio.run(main())  # closes its loop (a loop left open is a ResourceWarning)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    url = f"http://{LOOPBACK}:{holder['port']}"
    try:
        denied = subprocess.run([sys.executable, "-m", "fed_dns.cli", "status", "--url", url],
                                cwd=REPO, capture_output=True, text=True, timeout=60)
        assert denied.returncode == 1 and "401" in denied.stderr
        allowed = subprocess.run([sys.executable, "-m", "fed_dns.cli", "status", "--url", url,
                                  "--token-file", str(token_file)],
                                 cwd=REPO, capture_output=True, text=True, timeout=60)
        assert allowed.returncode == 0 and "zone fed.example.com." in allowed.stdout, allowed.stderr
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
