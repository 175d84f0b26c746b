"""The failover path over TLS with client certificates and username/password auth, against
a real 3-member etcd started that way: the client moves past a killed member, stays
authenticated, and the password appears in no log line, error, repr or state."""

from __future__ import annotations

import asyncio
import logging
import shutil

import pytest
from aetcd import rpc

from fed_dns.etcd.client import EtcdSettings, connect
from fed_dns.etcd.mirror import ZoneMirror
from fed_dns.etcd.writer import Writer
from fed_dns.model import Changes
from tests.etcd.cluster import etcd_cluster
from tests.etcd.helpers import running, until
from tests.etcd.test_tls import make_pki

SECRET = "cl0ster-S3cret-pw"


async def test_tls_and_auth_survive_a_failover_and_never_show_the_password(tmp_path, caplog,
                                                                           prefix):
    assert shutil.which("openssl"), "openssl makes the test certificates"
    make_pki(tmp_path)
    tls = ["--cert-file", str(tmp_path / "server.crt"), "--key-file", str(tmp_path / "server.key"),
           "--trusted-ca-file", str(tmp_path / "ca.crt"), "--client-cert-auth"]
    pki = dict(ca_file=str(tmp_path / "ca.crt"), cert_file=str(tmp_path / "client.crt"),
               key_file=str(tmp_path / "client.key"))
    caplog.set_level(logging.DEBUG, logger="fed_dns")
    with etcd_cluster(extra=tls, scheme="https", directory=tmp_path / "cluster") as cluster:
        anonymous = EtcdSettings(endpoints=cluster.urls, timeout=2.0, **pki)
        admin = None
        for _ in range(100):  # the members come up (no plain-http health check over TLS)
            try:
                admin = await connect(anonymous)
                break
            except Exception:  # noqa: BLE001 - not up yet
                await asyncio.sleep(0.2)
        assert admin is not None, "the TLS cluster did not come up"
        try:
            await admin.auth_stub.UserAdd(rpc.AuthUserAddRequest(name="root", password=SECRET))
            await admin.auth_stub.UserGrantRole(rpc.AuthUserGrantRoleRequest(user="root",
                                                                             role="root"))
            await admin.auth_stub.AuthEnable(rpc.AuthEnableRequest())
        finally:
            await admin.close()

        settings = EtcdSettings(endpoints=cluster.urls, timeout=1.0, username="root",
                                password=SECRET, **pki)
        client = await connect(settings)
        mirror = ZoneMirror(settings=settings, prefix=prefix, probe_interval=0.2)
        writer = Writer(client=client, timeout=1.0, epoch_key=f"/epoch-{prefix}")
        try:
            async with running(mirror.run()):
                await writer.apply(Changes(puts={f"{prefix}a": b"1"}))
                await until(lambda: mirror.get(f"{prefix}a") == b"1", timeout=10,
                            what="the mirror over TLS with auth")
                used = client.endpoint
                cluster.kill(cluster.urls.index(used))
                await writer.apply(Changes(puts={f"{prefix}b": b"2"}))  # retried elsewhere
                assert client.endpoint != used and client.failovers >= 1
                await until(lambda: mirror.get(f"{prefix}b") == b"2", timeout=10,
                            what="the mirror after the failover")
                states = [repr(client), repr(settings), str(client.last_error),
                          str(mirror.stats()), str(writer.last_error)]
        finally:
            await client.close()

        wrong = EtcdSettings(endpoints=cluster.urls, timeout=1.0, username="root",
                             password="wrong-" + SECRET, **pki)
        with pytest.raises(Exception) as err:
            await connect(wrong)
        assert "authentication failed" in str(err.value)
        states.append(str(err.value))

    logged = caplog.text
    assert "moving to the next endpoint" in logged  # the failover was logged
    for text in (*states, logged):
        assert SECRET not in text
