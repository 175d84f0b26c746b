"""`fed-dns check-config FILE` as users run it: exit 0 / 2, readable output, no traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from tests.support import REPO, fed_dns_command


def check(path: Path | str, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(fed_dns_command("check-config", str(path)), capture_output=True, text=True,
                          cwd=REPO, timeout=60, env={**os.environ, **(env or {})})


def test_example_config_passes(tmp_path: Path) -> None:
    result = check("config/fed-dns.yaml", env={"KUBECONFIG": str(tmp_path / "none")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [
        "config/fed-dns.yaml: OK", "  zone: fed.example.com. (owner fed-dns/fed.example.com., ttl 5s)"]
    assert "clusters: none listed: the kubeconfig contexts, not usable here" in result.stdout
    assert result.stderr == ""


TOKEN = "s3cr3t-token-value"


def kubeconfig(path: Path, *names: str) -> Path:
    """A usable kubeconfig (token auth, loopback servers) with one context per name."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": names[0],
        "clusters": [{"name": n, "cluster": {"server": f"https://127.0.0.1:{6443 + i}"}}
                     for i, n in enumerate(names)],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [{"name": n, "context": {"cluster": n, "user": "u"}} for n in names]}))
    return path


def test_summary_lists_clusters(tmp_path: Path) -> None:
    kc = kubeconfig(tmp_path / "kc", "c1", "c2")
    path = tmp_path / "c.yaml"
    path.write_text(f"zone: Fed.Test\nclusters: [{{name: c1, region: us, kubeconfig: {kc}, context: c1}},"
                    f" {{name: c2, kubeconfig: {kc}, context: c2}}]\n"
                    "etcd: {endpoints: [http://127.0.0.1:2379]}\n")
    result = check(path)
    assert result.returncode == 0, result.stderr
    assert "  zone: fed.test. (owner fed-dns/fed.test., ttl 5s)" in result.stdout
    assert "  clusters: c1 (us), c2" in result.stdout
    assert "  etcd: http://127.0.0.1:2379" in result.stdout


def test_kubeconfig_contexts_in_summary(tmp_path: Path) -> None:
    kc = kubeconfig(tmp_path / "kc", "east", "west")
    path = tmp_path / "c.yaml"
    path.write_text("zone: fed.test.\n")
    result = check(path, env={"KUBECONFIG": str(kc)})
    assert result.returncode == 0, result.stderr
    assert "  clusters: none listed: the kubeconfig contexts: east, west" in result.stdout


def test_members_that_cannot_be_loaded_are_problems_with_exit_2(tmp_path: Path) -> None:
    kc = kubeconfig(tmp_path / "kc", "c1")
    path = tmp_path / "c.yaml"
    path.write_text(f"clusters: [{{name: c1, kubeconfig: {kc}, context: c1}},"
                    f" {{name: c2, kubeconfig: {tmp_path / 'nope'}}},"
                    f" {{name: c3, kubeconfig: {kc}, context: elsewhere}}]\n")
    result = check(path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{path}: clusters[1]: cluster 'c2': kubeconfig '{tmp_path / 'nope'}'")
    assert "file not found" in lines[0]
    assert lines[1].startswith(f"{path}: clusters[2]: cluster 'c3'") and "unknown context 'elsewhere'" in lines[1]
    assert lines[2:] == [f"{path}: 2 problems"]
    assert TOKEN not in result.stderr and "Traceback" not in result.stderr


def test_every_problem_listed_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("zone: fed.test.\n"
                    "clusters:\n  - {name: c1}\n  - {name: Bad_Name}\n"
                    "health: {period: -1s}\n"
                    "etcd: {username: root, password: [hunter2-secret], endpoints: ['127.0.0.1:2379']}\n"
                    "dns: {listen: '::1:53'}\n"
                    "colour: blue\n")
    result = check(path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines == [
        f"{path}: clusters[1].name: expected a lower-case DNS label (RFC 1123), got 'Bad_Name'",
        f"{path}: health.period: expected a duration that is not negative, got '-1s'",
        f"{path}: dns.listen: expected host:port like '127.0.0.1:5353' or '[::1]:5353' "
        "(put an IPv6 address in brackets), got '::1:53'",
        f"{path}: etcd.endpoints[0]: expected a URL like 'http://127.0.0.1:2379', got '127.0.0.1:2379'",
        f"{path}: etcd.password: expected a string",
        f"{path}: colour: unknown key (expected one of: zone, owner_id, ttl, publish, export, namespaces, "
        "all_unhealthy, clusters, health, dns, etcd, http, api, leader_election, topology, watch, reconcile, "
            "unschedulable_after)",
        f"{path}: 6 problems",
    ]
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr


def test_missing_file_exit_2(tmp_path: Path) -> None:
    result = check(tmp_path / "missing.yaml")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{tmp_path / 'missing.yaml'}: cannot read the file: No such file or directory",
        f"{tmp_path / 'missing.yaml'}: 1 problem"]


def test_yaml_error_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("zone: a\n  ttl: 5s: x\n")
    result = check(path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}:2: YAML syntax error: mapping values are not allowed here")
    assert "Traceback" not in result.stderr


def test_api_certificate_without_its_key(tmp_path: Path) -> None:
    """Reported with the other problems, not only when `run` starts the API."""
    (tmp_path / "api.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    path = tmp_path / "api.yaml"
    path.write_text(yaml.safe_dump({"zone": "fed.test.", "clusters": [],
                                    "api": {"cert_file": str(tmp_path / "api.crt")}}))
    result = check(path, env={"KUBECONFIG": str(tmp_path / "none")})
    assert result.returncode == 2, result.stdout
    assert result.stderr.splitlines() == [
        f"{path}: api.key_file: expected the certificate's key file to go with api.cert_file",
        f"{path}: 1 problem"]
