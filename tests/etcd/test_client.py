"""EtcdSettings and connect(): endpoints, auth, failures, and secrets kept out of messages."""

from __future__ import annotations

import pytest
from aetcd import rpc

from fed_dns.etcd.client import EtcdError, EtcdSettings, connect, parse_endpoint, redact
from fed_dns.etcd.mirror import ZoneMirror
from tests.etcd.helpers import running, until
from tests.support import free_port

SECRET = "s3cr3t-Pa55word"


@pytest.mark.parametrize("url, host, port, tls", [
    ("http://127.0.0.1:2379", "127.0.0.1", 2379, False),
    ("https://etcd.example:2381", "etcd.example", 2381, True),
    ("127.0.0.1:4001", "127.0.0.1", 4001, False),
    ("http://[::1]:2379", "::1", 2379, False),
    ("http://etcd", "etcd", 2379, False),
])
def test_parse_endpoint(url, host, port, tls):
    endpoint = parse_endpoint(url)
    assert (endpoint.host, endpoint.port, endpoint.tls) == (host, port, tls)


@pytest.mark.parametrize("url", ["ftp://x:1", "http://", "http://host:notaport"])
def test_bad_endpoints_are_refused(url):
    with pytest.raises(ValueError):
        EtcdSettings(endpoints=(url,))


def test_settings_never_show_the_password():
    settings = EtcdSettings(endpoints=("http://127.0.0.1:2379",), username="u", password=SECRET)
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert redact(f"http://u:{SECRET}@10.0.0.1:2379/x") == "http://10.0.0.1:2379/x"
    with pytest.raises(ValueError):
        EtcdSettings(username="u")


async def test_connect_tries_every_endpoint(etcd_server):
    dead = f"http://127.0.0.1:{free_port()}"
    client = await connect(EtcdSettings(endpoints=(dead, etcd_server.url), timeout=1.0))
    try:
        await client.put(b"/test-connect/x", b"1")
        assert (await client.get(b"/test-connect/x")).value == b"1"
    finally:
        await client.delete(b"/test-connect/x")
        await client.close()


async def test_unreachable_names_each_endpoint():
    a, b = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    with pytest.raises(EtcdError) as err:
        await connect(EtcdSettings(endpoints=(a, b), timeout=0.5))
    assert a in str(err.value) and b in str(err.value)


async def enable_auth(url: str) -> None:
    """root:SECRET on a fresh etcd, and auth switched on (through the raw gRPC API)."""
    channel = rpc.insecure_channel(url.split("//")[1])
    try:
        auth = rpc.AuthStub(channel)
        await auth.UserAdd(rpc.AuthUserAddRequest(name="root", password=SECRET))
        await auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user="root", role="root"))
        await auth.AuthEnable(rpc.AuthEnableRequest())
    finally:
        await channel.close()


async def test_auth_works_and_a_wrong_password_never_leaks(etcd_fresh, prefix):
    await enable_auth(etcd_fresh.url)
    good = EtcdSettings(endpoints=(etcd_fresh.url,), username="root", password=SECRET)
    client = await connect(good)
    try:
        await client.put(f"{prefix}a".encode(), b"1")
    finally:
        await client.close()

    wrong = "wrong-" + SECRET
    bad = EtcdSettings(endpoints=(etcd_fresh.url,), username="root", password=wrong, timeout=1)
    with pytest.raises(EtcdError) as err:
        await connect(bad)
    message = str(err.value)
    assert etcd_fresh.url in message and "authentication failed" in message
    assert wrong not in message and SECRET not in message

    anonymous = ZoneMirror(settings=EtcdSettings(endpoints=(etcd_fresh.url,), timeout=1),
                           prefix=prefix)
    async with running(anonymous.run()):
        await until(lambda: anonymous.last_error, what="an error")
        assert not anonymous.connected and SECRET not in anonymous.last_error

    mirror = ZoneMirror(settings=good, prefix=prefix)
    async with running(mirror.run()):
        await until(lambda: mirror.connected, what="authenticated mirror")
        assert dict(mirror.snapshot) == {f"{prefix}a": b"1"}
