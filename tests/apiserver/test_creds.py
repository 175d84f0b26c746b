"""The federation API's credentials: generated once (mode 0600) even by processes starting
together, or taken from the files the config names (several tokens, a CA of their own)."""

from __future__ import annotations

import ssl
import subprocess
import threading
from pathlib import Path

import aiohttp
import pytest
import yaml

from fed_dns.apiserver import tls
from fed_dns.app import apicreds
from fed_dns.app.api import ApiServer
from fed_dns.config import parse
from tests.support import fed_dns_command, free_port


def test_processes_starting_together_make_one_set_of_credentials(tmp_path):
    section = parse({"api": {"dir": str(tmp_path / "api")}}).api
    start = threading.Barrier(6)
    got: list = []
    failed: list = []

    def one() -> None:
        start.wait()
        try:
            got.append(apicreds.ensure(section))
        except Exception as exc:  # noqa: BLE001 - reported below
            failed.append(repr(exc))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert failed == []
    token = (tmp_path / "api" / "token").read_text().strip()
    assert {c.tokens for c in got} == {(token,)}
    assert {c.ca_pem for c in got} == {(tmp_path / "api" / "tls.crt").read_bytes()}
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
        got[0].cert_file, got[0].key_file)  # the key is the certificate's
    assert sorted(p.name for p in (tmp_path / "api").iterdir()) == \
        [".lock", "tls.crt", "tls.key", "token"]
    for name in ("tls.crt", "tls.key", "token"):
        assert (tmp_path / "api" / name).stat().st_mode & 0o777 == 0o600


def _files(tmp_path: Path) -> dict:
    made = tls.self_signed("127.0.0.1")
    (tmp_path / "own").mkdir()
    for name, data in (("server.crt", made.cert_pem), ("server.key", made.key_pem),
                       ("tokens", b"# one a line\nfirst-token\n\nsecond-token\n")):
        (tmp_path / "own" / name).write_bytes(data)
    return {"cert_file": str(tmp_path / "own" / "server.crt"),
            "key_file": str(tmp_path / "own" / "server.key"),
            "ca_file": str(tmp_path / "own" / "server.crt"),
            "token_file": str(tmp_path / "own" / "tokens")}


async def test_configured_files_are_used_and_every_token_is_accepted(tmp_path):
    config = parse({"api": {"listen": f"127.0.0.1:{free_port()}", "dir": str(tmp_path / "api"),
                            **_files(tmp_path)}})
    server = ApiServer(config=config)
    await server.start()
    try:
        creds = apicreds.ensure(config.api)
        assert creds.tokens == ("first-token", "second-token")
        assert not (tmp_path / "api").exists()  # nothing generated
        context = ssl.create_default_context(cadata=creds.ca_pem.decode())
        async with aiohttp.ClientSession() as session:
            async def status(token: str) -> int:
                async with session.get(f"{server.url}/api/v1/namespaces", ssl=context,
                                       headers={"Authorization": f"Bearer {token}"}) as resp:
                    return resp.status

            assert [await status(t) for t in ("first-token", "second-token", "# one a line",
                                             "")] == [200, 200, 401, 401]
    finally:
        await server.close()


@pytest.mark.parametrize("given", ["cert_file", "key_file"])
def test_a_certificate_without_its_key_is_refused(tmp_path, given):
    files = _files(tmp_path)
    config_file = tmp_path / "fed-dns.yaml"
    config_file.write_text(yaml.safe_dump({"api": {given: files[given],
                                                   "dir": str(tmp_path / "api")}}))
    out = subprocess.run(fed_dns_command("kubeconfig", "--config", str(config_file)),
                         capture_output=True, text=True, timeout=60)
    missing = {"cert_file": "key_file", "key_file": "cert_file"}[given]
    assert out.returncode == 2, out.stderr
    assert f"{config_file}: api.{missing}: expected " in out.stderr  # as check-config says
    assert f"to go with api.{given}" in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""
