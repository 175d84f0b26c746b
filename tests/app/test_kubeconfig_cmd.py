"""`fed-dns kubeconfig --config C --output FILE`: the file is mode 0600 from its creation (a
new file renamed over FILE, whatever the umask or FILE's old mode), and kubectl uses it as
is against the federation API."""

from __future__ import annotations

import json
import os
import shlex
import subprocess

import yaml

from fed_dns.app.api import ApiServer
from fed_dns.config import parse
from tests.apiserver.test_kubectl_api import MEMBERS, Kubectl
from tests.support import REPO, fed_dns_command, free_port


def config_data(tmp_path) -> dict:
    return {"zone": "fed.test.", "owner_id": "fed-dns/kubeconfig-test.", "clusters": [],
            "api": {"enabled": True, "listen": f"127.0.0.1:{free_port()}",
                    "dir": str(tmp_path / "api")}}


def kubeconfig_cmd(tmp_path, *args: str, umask: str = "000") -> subprocess.CompletedProcess:
    """The command as a user runs it, under `umask` (000: anything not set 0600 on purpose
    would come out world-readable)."""
    command = shlex.join(fed_dns_command("kubeconfig", *args))
    return subprocess.run(["bash", "-c", f"umask {umask}; exec {command}"], capture_output=True,
                          text=True, cwd=REPO, timeout=60,
                          env=dict(os.environ, KUBECONFIG=str(tmp_path / "none")))


async def test_output_file_is_private_and_kubectl_uses_it(tmp_path):
    data = config_data(tmp_path)
    config_path = tmp_path / "fed-dns.yaml"
    config_path.write_text(yaml.safe_dump(data))
    out = tmp_path / "federation.kubeconfig"
    out.write_text("old, readable by anyone\n")
    out.chmod(0o666)
    before = out.stat().st_ino

    result = kubeconfig_cmd(tmp_path, "--config", str(config_path), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # the token goes to the file only
    assert out.stat().st_mode & 0o777 == 0o600
    assert out.stat().st_ino != before  # a new file renamed over it, never rewritten in place
    assert {p.name for p in tmp_path.iterdir()} == {"api", "federation.kubeconfig",
                                                    "fed-dns.yaml"}  # nothing left aside
    doc = json.loads(out.read_text())
    assert doc["current-context"] == "federation"
    token = (tmp_path / "api" / "token").read_text().strip()
    assert doc["users"][0]["user"]["token"] == token

    # printed (no --output), it is the same kubeconfig
    printed = kubeconfig_cmd(tmp_path, "--config", str(config_path))
    assert printed.returncode == 0 and json.loads(printed.stdout) == doc

    # kubectl reads the file as is (several times: a file, not a pipe)
    server = ApiServer(config=parse(data), members=lambda: MEMBERS)
    await server.start()
    try:
        table = await Kubectl(out).ok("get", "clusters")
        assert [r.split()[0] for r in table.strip().splitlines()[1:]] == ["c1", "c2"]
    finally:
        await server.close()


def test_unwritable_output_is_one_line_and_exit_1(tmp_path):
    config_path = tmp_path / "fed-dns.yaml"
    config_path.write_text(yaml.safe_dump(config_data(tmp_path)))
    (tmp_path / "file").write_text("")
    result = kubeconfig_cmd(tmp_path, "--config", str(config_path),
                            "--output", str(tmp_path / "file" / "kc"))
    assert result.returncode == 1
    assert result.stderr.startswith(f"fed-dns kubeconfig: cannot write {tmp_path / 'file' / 'kc'}")
    assert "Traceback" not in result.stderr and "token" not in result.stderr
