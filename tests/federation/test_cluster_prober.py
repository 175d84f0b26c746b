"""ClusterProber against a real loopback HTTP server speaking /readyz and /healthz."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from pathlib import Path

import pytest

from fed_dns.federation.health import Thresholds
from fed_dns.federation.prober import ClusterProber
from fed_dns.model import Health
from tests.federation.fake_api import FakeApiServer
from tests.etcd.helpers import running as background, until

PERIOD = 0.2


@contextlib.asynccontextmanager
async def probing(server: FakeApiServer, *, token: str | None = None, ca_file: str | None = None,
                  period: float = PERIOD, timeout: float = PERIOD,
                  thresholds: Thresholds = Thresholds()):
    changes: list[tuple[float, Health]] = []
    client = server.client(token=token, ca_file=ca_file)
    prober = ClusterProber(name="c1", api_client=client, period=period, timeout=timeout,
                           thresholds=thresholds,
                           on_change=lambda name, health: changes.append((time.monotonic(), health)))
    prober.changes = changes
    try:
        async with background(prober.run()):
            yield prober
    finally:
        client.close()
        await server.stop()


async def test_ready_then_killed_then_unreachable_then_back():
    server = FakeApiServer()
    await server.start()
    async with probing(server) as prober:
        await until(lambda: prober.health is Health.READY)
        assert prober.changes[0][1] is Health.READY and prober.last_error is None
        killed = time.monotonic()
        await server.stop()
        await until(lambda: prober.health is Health.UNREACHABLE)
        took = prober.changes[-1][0] - killed
        # three failed probes: at least two periods after the first, at most one more period
        assert 2 * PERIOD - 0.05 <= took <= 4 * PERIOD + 0.5, took
        assert "Cannot connect" in prober.last_error or "Connect" in prober.last_error
        revived = time.monotonic()
        await server.start()
        await until(lambda: prober.health is Health.READY)
        assert prober.changes[-1][0] - revived <= 3 * PERIOD + 0.5
        assert [h for _, h in prober.changes] == [Health.READY, Health.UNREACHABLE, Health.READY]
        assert prober.counters.transitions == 3
        assert prober.counters.failures >= 3
        assert prober.counters.probes > prober.counters.failures


async def test_dead_at_start_becomes_unreachable():
    server = FakeApiServer()
    await server.start()
    await server.stop()  # the port is known and nothing listens on it
    async with probing(server) as prober:
        await until(lambda: prober.health is Health.UNREACHABLE)
        assert [h for _, h in prober.changes] == [Health.UNREACHABLE]


async def test_http_500_is_a_failure():
    server = FakeApiServer(mode="unready")
    await server.start()
    async with probing(server) as prober:
        await until(lambda: prober.health is Health.UNREACHABLE)
        assert prober.last_error == "GET /readyz: HTTP 500"
        server.mode = "ready"
        await until(lambda: prober.health is Health.READY)


async def test_404_on_readyz_falls_back_to_healthz():
    server = FakeApiServer(mode="no-readyz")
    await server.start()
    async with probing(server) as prober:
        await until(lambda: prober.health is Health.READY)
        assert server.paths[:2] == ["/readyz", "/healthz"]
        assert set(server.paths[2:]) == {"/healthz"}  # remembered


async def test_wrong_token_is_401_and_a_failure_without_leaking_it():
    server = FakeApiServer(token="the-right-one")
    await server.start()
    async with probing(server, token="wrong-token-xyz") as prober:
        await until(lambda: prober.health is Health.UNREACHABLE)
        assert prober.last_error == "GET /readyz: HTTP 401"


async def test_a_hung_member_times_out_and_never_blocks_the_loop():
    server = FakeApiServer(mode="hang")
    await server.start()
    async with probing(server, timeout=0.5) as prober:
        started = time.monotonic()
        lags = []
        while prober.health is not Health.UNREACHABLE:
            tick = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - tick)
            assert time.monotonic() - started < 5
        assert prober.last_error == "GET /readyz: no answer within 0.5s"
        assert max(lags) < 0.3  # the loop kept turning while each probe hung for 0.5 s
        assert time.monotonic() - started <= 3 * 0.5 + 0.5


async def test_poke_probes_at_once():
    server = FakeApiServer()
    await server.start()
    async with probing(server, period=30.0, timeout=1.0) as prober:
        await until(lambda: prober.counters.probes == 1)
        await asyncio.sleep(0.1)
        assert prober.counters.probes == 1  # the next one is 30 s away
        poked = time.monotonic()
        prober.poke()
        await until(lambda: prober.counters.probes == 2, timeout=1.0)
        assert time.monotonic() - poked < 0.5
        assert prober.health is Health.READY  # two successes


async def test_probe_timeline_under_a_hang_meets_the_failover_budget():
    """federation.md: killed -> withdrawn within period x failure_threshold + 1 s."""
    server = FakeApiServer()
    await server.start()
    async with probing(server, period=0.3, timeout=0.3) as prober:
        await until(lambda: prober.health is Health.READY)
        hung = time.monotonic()
        server.mode = "hang"
        await until(lambda: prober.health is Health.UNREACHABLE)
        assert prober.changes[-1][0] - hung <= 0.3 * 3 + 0.3 + 0.5


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> dict[str, Path]:
    """A self-signed server certificate for 127.0.0.1 (openssl CLI)."""
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "server.crt", tmp / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=fed-dns-test", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return {"cert": cert, "key": key}


async def test_tls_with_the_kubeconfigs_ca(tls_files):
    import ssl
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files["cert"], tls_files["key"])
    trusted = FakeApiServer(ssl_context=context)
    await trusted.start()
    async with probing(trusted, ca_file=str(tls_files["cert"])) as prober:
        await until(lambda: prober.health is Health.READY)
    untrusted = FakeApiServer(ssl_context=context)
    await untrusted.start()
    async with probing(untrusted) as prober:  # system CAs only: the certificate is refused
        await until(lambda: prober.health is Health.UNREACHABLE)
        assert "certificate" in prober.last_error.lower()


async def test_a_stalled_event_loop_never_declares_a_healthy_member_unreachable():
    """Our own loop blocked past the probe timeout, probe after probe (a long step, a full GC,
    a starved CPU): the member answered, we could not read it. Those probes are inconclusive,
    never failures; a member that really hangs is still declared unreachable."""
    server = FakeApiServer()
    await server.start()
    async with probing(server, thresholds=Thresholds(failure=2, success=1)) as prober:
        await until(lambda: prober.health is Health.READY)
        loop = asyncio.get_running_loop()
        for _ in range(8):  # each stall longer than the timeout, right as probes are in flight
            await asyncio.sleep(PERIOD / 2)
            loop.call_soon(time.sleep, 2 * PERIOD)
        await asyncio.sleep(3 * PERIOD)
        assert [h for _, h in prober.changes] == [Health.READY]
        assert prober.counters.inconclusive >= 1 and prober.counters.failures == 0
        server.mode = "hang"  # now the member itself stops answering; our loop runs freely
        await until(lambda: prober.health is Health.UNREACHABLE, timeout=10 * PERIOD + 2)
        assert "no answer within" in prober.last_error


async def test_an_inconclusive_probe_is_followed_by_another_at_once():
    """A probe made inconclusive by our own stall is asked again at once, not a period later:
    a member that hangs while our loop is often stalled is still declared soon."""
    server = FakeApiServer()
    await server.start()
    period = 30.0  # no periodic probe comes during the test
    async with probing(server, period=period, timeout=PERIOD) as prober:
        await until(lambda: prober.counters.probes >= 1)
        server.mode = "hang"
        before = prober.counters.probes
        prober.poke()  # a probe now, into the hung member ...
        await asyncio.sleep(PERIOD / 2)
        time.sleep(2 * PERIOD)  # ... that times out while our loop is stalled: inconclusive
        await until(lambda: prober.counters.inconclusive >= 1, timeout=5)
        await until(lambda: prober.counters.probes >= before + 2, timeout=5 * PERIOD,
                    what="a probe right after the inconclusive one")
