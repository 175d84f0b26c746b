"""BackendProber against real loopback TCP listeners and an HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from aiohttp import web

from fed_dns.federation.health import Thresholds
from fed_dns.federation.prober import BackendProber, http_url
from fed_dns.model import Health, ServiceKey
from tests.etcd.helpers import running as background, until
from tests.support import LOOPBACK, free_port

WEB = ServiceKey(namespace="ns", name="web")
DB = ServiceKey(namespace="ns", name="db")
PERIOD = 0.1


class Replay:
    """An on_change that folds the reported changes into the results a follower would hold."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.results: dict = {}

    def __call__(self, changed) -> None:
        self.calls.append(dict(changed))
        for key, result in changed.items():
            if result is None:
                self.results.pop(key, None)
            else:
                self.results[key] = result


@contextlib.asynccontextmanager
async def tcp_listener(host: str = LOOPBACK):
    server = await asyncio.start_server(lambda r, w: w.close(), host, 0)
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
    replayed = Replay()
    prober = BackendProber(period=PERIOD, timeout=0.3, thresholds=Thresholds(failure=2, success=2),
                           on_change=replayed)
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
        assert replayed.calls and replayed.results == prober.results
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


async def test_on_change_names_exactly_the_targets_whose_result_changed():
    replayed = Replay()
    prober = BackendProber(period=PERIOD, timeout=0.2, thresholds=Thresholds(failure=1, success=1),
                           on_change=replayed)
    live, dying = ("c1", WEB, LOOPBACK), ("c1", DB, LOOPBACK)
    async with tcp_listener() as port, background(prober.run()):
        async with tcp_listener() as other:
            prober.set_targets({live: ("tcp", port, ""), dying: ("tcp", other, "")})
            await until(lambda: prober.results == {live: True, dying: True})
            before = len(replayed.calls)
        await until(lambda: prober.results.get(dying) is False)
        assert replayed.calls[before:] == [{dying: False}]
        assert replayed.results == prober.results


async def test_update_targets_replaces_one_service_and_keeps_the_others_state():
    replayed = Replay()
    prober = BackendProber(period=PERIOD, timeout=0.2, thresholds=Thresholds(failure=1, success=1),
                           on_change=replayed)
    web1, web2, db1 = ("c1", WEB, "127.0.0.1"), ("c1", WEB, "127.0.0.2"), ("c1", DB, "127.0.0.1")
    async with tcp_listener() as port, tcp_listener("127.0.0.2") as port2, background(prober.run()):
        prober.update_targets(cluster="c1", service=WEB, targets={web1: ("tcp", port, "")})
        prober.update_targets(cluster="c1", service=DB, targets={db1: ("tcp", port, "")})
        await until(lambda: prober.results == {web1: True, db1: True})
        db_state = prober.states[db1]
        before = len(replayed.calls)
        prober.update_targets(cluster="c1", service=WEB, targets={web2: ("tcp", port2, "")})
        assert replayed.calls[before:] == [{web1: None}]  # dropped, reported before returning
        assert prober.results == {db1: True} and prober.states[db1] is db_state
        await until(lambda: prober.results == {web2: True, db1: True})
        prober.update_targets(cluster="c1", service=DB, targets={})
        assert prober.results == {web2: True} and replayed.results == {web2: True}


@pytest.mark.parametrize("key", [("c2", WEB, "127.0.0.1"), ("c1", DB, "127.0.0.1")],
                         ids=["other-cluster", "other-service"])
def test_update_targets_refuses_a_key_of_another_service(key):
    prober = BackendProber()
    with pytest.raises(ValueError):
        prober.update_targets(cluster="c1", service=WEB, targets={key: ("tcp", 80, "")})
    assert prober.results == {}


async def test_a_round_of_many_targets_holds_no_more_tasks_than_its_concurrency():
    prober = BackendProber(period=10, timeout=0.5, concurrency=20, thresholds=Thresholds(failure=1, success=1))
    closed = free_port()
    prober.set_targets({("c1", ServiceKey(namespace="ns", name=f"s{i}"), LOOPBACK): ("tcp", closed, "")
                        for i in range(2000)})
    most = 0

    async def sample() -> None:
        nonlocal most
        while True:
            most = max(most, len(asyncio.all_tasks()))
            await asyncio.sleep(0.001)

    async with background(sample()), background(prober.run()):
        await until(lambda: len(prober.results) == 2000, timeout=20)
    assert not any(prober.results.values())
    assert most <= 20 + 5  # the workers, the sampler, the test and the run task: never one per target


def test_http_url_brackets_ipv6():
    assert http_url(address="10.0.0.1", port=80, path="/x") == "http://10.0.0.1:80/x"
    assert http_url(address="fd00::1", port=8080, path="healthz") == "http://[fd00::1]:8080/healthz"
    assert http_url(address="lb.example.com", port=80, path="/") == "http://lb.example.com:80/"
