"""BackendProber against real loopback TCP listeners and an HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web

from fed_dns.federation.health import Thresholds
from fed_dns.federation.prober import BackendProber, http_url
from fed_dns.model import Health, ServiceKey
from tests.etcd.helpers import running as background, until
from tests.support import LOOPBACK, free_port

WEB = ServiceKey(namespace="ns", name="web")
PERIOD = 0.1


@contextlib.asynccontextmanager
async def tcp_listener():
    server = await asyncio.start_server(lambda r, w: w.close(), LOOPBACK, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def http_server(routes: dict[str, int]):
    async def handler(request: web.Request) -> web.Response:
        status = routes.get(request.path, 404)
        if status == 0:  # hang
            await asyncio.sleep(30)
        return web.Response(status=status, headers={"Location": "/elsewhere"} if 300 <= status < 400 else None)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, 0).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def test_tcp_and_http_targets_are_decided_by_the_thresholds():
    seen: list[dict] = []
    prober = BackendProber(period=PERIOD, timeout=0.3, thresholds=Thresholds(failure=2, success=2),
                           on_change=lambda results: seen.append(dict(results)))
    closed = free_port()
    async with tcp_listener() as open_port, http_server({"/ok": 200, "/moved": 302, "/bad": 503, "/hang": 0}) as http:
        keys = {name: ("c1", ServiceKey(namespace="ns", name=name), LOOPBACK) for name in
                ["tcp-open", "tcp-closed", "http-ok", "http-moved", "http-bad", "http-hang", "http-missing"]}
        prober.set_targets({
            keys["tcp-open"]: ("tcp", open_port, ""),
            keys["tcp-closed"]: ("tcp", closed, ""),
            keys["http-ok"]: ("http", http, "/ok"),
            keys["http-moved"]: ("http", http, "/moved"),
            keys["http-bad"]: ("http", http, "/bad"),
            keys["http-hang"]: ("http", http, "/hang"),
            keys["http-missing"]: ("http", http, "/missing"),
        })
        assert prober.results == {}  # nothing decided yet
        async with background(prober.run()):
            await until(lambda: len(prober.results) == 7)
        assert prober.results == {
            keys["tcp-open"]: True, keys["tcp-closed"]: False, keys["http-ok"]: True,
            keys["http-moved"]: True, keys["http-bad"]: False, keys["http-hang"]: False,
            keys["http-missing"]: False,
        }
        assert seen and seen[-1] == prober.results
        assert prober.counters.probes >= 14


async def test_a_backend_that_dies_is_withdrawn_and_one_that_recovers_is_back():
    prober = BackendProber(period=PERIOD, timeout=0.2, thresholds=Thresholds(failure=3, success=2))
    key = ("c1", WEB, LOOPBACK)
    async with background(prober.run()):
        async with tcp_listener() as port:
            prober.set_targets({key: ("tcp", port, "")})
            await until(lambda: prober.results == {key: True})
        died = time.monotonic()
        await until(lambda: prober.results == {key: False})
        assert time.monotonic() - died <= PERIOD * 4 + 0.3
        server = await asyncio.start_server(lambda r, w: w.close(), LOOPBACK, port)
        try:
            await until(lambda: prober.results == {key: True})
        finally:
            server.close()
            await server.wait_closed()


async def test_set_targets_keeps_unchanged_state_and_resets_changed_ones():
    prober = BackendProber(period=PERIOD, timeout=0.2, thresholds=Thresholds(failure=1, success=1))
    a, b = ("c1", WEB, "127.0.0.1"), ("c2", WEB, "127.0.0.1")
    async with tcp_listener() as port, background(prober.run()):
        prober.set_targets({a: ("tcp", port, ""), b: ("tcp", port, "")})
        await until(lambda: prober.results == {a: True, b: True})
        prober.set_targets({a: ("tcp", port, ""), b: ("http", port, "/x")})
        assert prober.results == {a: True}
        assert prober.states[a].health is Health.READY
        prober.set_targets({})
        assert prober.results == {}


async def test_many_targets_are_probed_concurrently_within_a_period():
    prober = BackendProber(period=0.5, timeout=0.3, concurrency=50, thresholds=Thresholds(failure=1, success=1))
    async with http_server({"/hang": 0}) as http:
        targets = {("c1", ServiceKey(namespace="ns", name=f"s{i}"), LOOPBACK): ("http", http, "/hang")
                   for i in range(40)}
        prober.set_targets(targets)
        started = time.monotonic()
        async with background(prober.run()):
            await until(lambda: len(prober.results) == 40)
        assert time.monotonic() - started < 1.5  # not 40 x timeout
        assert not any(prober.results.values())


def test_http_url_brackets_ipv6():
    assert http_url(address="10.0.0.1", port=80, path="/x") == "http://10.0.0.1:80/x"
    assert http_url(address="fd00::1", port=8080, path="healthz") == "http://[fd00::1]:8080/healthz"
    assert http_url(address="lb.example.com", port=80, path="/") == "http://lb.example.com:80/"
