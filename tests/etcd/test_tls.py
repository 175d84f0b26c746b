"""connect() over TLS, with a CA and a client certificate, against a real etcd."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from fed_dns.etcd.client import EtcdError, EtcdSettings, connect
from tests.support import LOOPBACK, free_port, stop_process

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_pki(directory: Path) -> None:
    openssl("req", "-x509", *EC, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
            "-subj", "/CN=fed-dns test CA", cwd=directory)
    (directory / "san.cnf").write_text(f"subjectAltName=IP:{LOOPBACK}\n"
                                       "extendedKeyUsage=serverAuth,clientAuth\n")
    for name in ("server", "client"):
        openssl("req", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}", cwd=directory)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "1",
                "-extfile", "san.cnf", cwd=directory)


@pytest.fixture
def tls_etcd(tmp_path):
    assert shutil.which("openssl"), "openssl makes the test certificates; `make test` installs it"
    make_pki(tmp_path)
    port, peer = free_port(), free_port()
    url = f"https://{LOOPBACK}:{port}"
    proc = subprocess.Popen([
        shutil.which("etcd") or "etcd", "--name", "tls", "--data-dir", str(tmp_path / "data"),
        "--listen-client-urls", url, "--advertise-client-urls", url,
        "--listen-peer-urls", f"http://{LOOPBACK}:{peer}",
        "--initial-advertise-peer-urls", f"http://{LOOPBACK}:{peer}",
        "--initial-cluster", f"tls=http://{LOOPBACK}:{peer}",
        "--cert-file", str(tmp_path / "server.crt"), "--key-file", str(tmp_path / "server.key"),
        "--trusted-ca-file", str(tmp_path / "ca.crt"), "--client-cert-auth",
        "--log-level", "error",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield url, tmp_path
    finally:
        stop_process(proc)


async def test_tls_with_a_client_certificate(tls_etcd):
    url, pki = tls_etcd
    settings = EtcdSettings(endpoints=(url,), ca_file=str(pki / "ca.crt"),
                            cert_file=str(pki / "client.crt"), key_file=str(pki / "client.key"),
                            timeout=2.0)
    deadline = time.monotonic() + 20
    while True:  # etcd takes a moment to come up
        try:
            client = await connect(settings)
            break
        except EtcdError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    try:
        await client.put(b"/tls/a", b"1")
        assert (await client.get(b"/tls/a")).value == b"1"
    finally:
        await client.close()

    # Without our client certificate etcd refuses; the error names the endpoint.
    no_cert = EtcdSettings(endpoints=(url,), ca_file=str(pki / "ca.crt"), timeout=1.0)
    with pytest.raises(EtcdError) as err:
        await connect(no_cert)
    assert url in str(err.value)


async def test_an_unreadable_ca_file_is_a_clear_error(tmp_path):
    settings = EtcdSettings(endpoints=("https://127.0.0.1:1",), ca_file=str(tmp_path / "no.pem"))
    with pytest.raises(EtcdError, match="no.pem"):
        await connect(settings)
