"""`fed-dns sim` as a subprocess: serves until SIGTERM/SIGINT, exit codes for bad usage."""

from __future__ import annotations

import signal
import socket
import subprocess

import kubernetes
import pytest
import yaml

from tests.support import LOOPBACK, fed_dns_command, free_port


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(fed_dns_command("sim", *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_serves_until_signal_and_writes_kubeconfig(tmp_path, sig):
    port = free_port()
    path = tmp_path / "c7.kubeconfig"
    proc = _start("--name", "c7", "--listen", f"{LOOPBACK}:{port}", "--kubeconfig", str(path),
                  "--token", "s3cret")
    try:
        first = proc.stdout.readline()
        second = proc.stdout.readline()
        assert f"https://{LOOPBACK}:{port}" in first, first + proc.stderr.read()
        assert str(path) in second and "s3cret" not in first + second
        doc = yaml.safe_load(path.read_text())
        assert doc["current-context"] == "c7"
        assert doc["contexts"][0]["name"] == "c7"
        assert doc["users"][0]["user"]["token"] == "s3cret"
        client = kubernetes.config.new_client_from_config(config_file=str(path), context="c7")
        try:
            names = [n.metadata.name for n in kubernetes.client.CoreV1Api(client)
                     .list_namespace().items]
        finally:
            client.close()
        assert "default" in names
    finally:
        code = _stop(proc, sig)
    assert code == 0


@pytest.mark.parametrize("args, needle", [
    (["--name", "Bad_Name"], "--name"),
    (["--name", "c1", "--listen", "nowhere"], "--listen"),
    (["--name", "c1", "--listen", "127.0.0.1:99999"], "--listen"),
], ids=["bad-name", "no-port", "port-out-of-range"])
def test_bad_usage_exits_2(tmp_path, args, needle):
    proc = subprocess.run(fed_dns_command("sim", *args, "--kubeconfig", str(tmp_path / "k")),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "k").exists()


def test_port_in_use_exits_1(tmp_path):
    with socket.socket() as busy:
        busy.bind((LOOPBACK, 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(fed_dns_command("sim", "--name", "c1", "--listen",
                                              f"{LOOPBACK}:{port}", "--kubeconfig",
                                              str(tmp_path / "k")),
                              capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and "cannot listen" in proc.stderr
