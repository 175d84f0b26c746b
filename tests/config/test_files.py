"""Reading files: unreadable, YAML errors with their line, duplicate keys, the example config."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from fed_dns.config import ConfigError, load
from tests.support import REPO

EXAMPLE = REPO / "config" / "fed-dns.yaml"


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(path)
    return [str(p) for p in caught.value.problems]


def test_example_config_is_valid_and_all_defaults() -> None:
    config = load(EXAMPLE)
    assert config == load(Path("/dev/null"))  # every key shows its default


def test_example_config_shows_every_key() -> None:
    text = EXAMPLE.read_text()
    config = load(EXAMPLE)
    for name, section in config:
        assert f"{name}:" in text, name
        if isinstance(section, BaseModel):
            for key in type(section).model_fields:
                assert f"{key}:" in text, f"{name}.{key}"
    for key in ("name", "kubeconfig", "context", "region", "zone_label", "weight"):
        assert f"#    {key}:" in text or f"#  - {key}:" in text, key


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert _problems(path) == [f"{path}: cannot read the file: No such file or directory"]


def test_directory(tmp_path: Path) -> None:
    assert _problems(tmp_path) == [f"{tmp_path}: cannot read the file: Is a directory"]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"zone: \xff\xfe\n")
    assert _problems(path) == [f"{path}: expected UTF-8 text (bad byte at offset 6)"]


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("zone: a\n  ttl: 5s: x\n", 2, "mapping values are not allowed here"),
    ("zone: a\nclusters:\n  - name: c1\n name: c2\n", 4, "YAML syntax error"),
    ("dns: {listen: 1\n", 2, "YAML syntax error"),
    ("zone: \"open\n", 2, "YAML syntax error"),
    ("a: 1\n---\nb: 2\n", 2, "expected a single document"),
    ("\tzone: x\n", 1, "YAML syntax error"),
])
def test_yaml_syntax_errors_name_the_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    (problem,) = _problems(path)
    assert problem.startswith(f"{path}:{line}: ")
    assert fragment in problem


def test_yaml_error_never_quotes_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("etcd:\n  password: hunter2-secret: oops\n")
    (problem,) = _problems(path)
    assert problem.startswith(f"{path}:2: YAML syntax error")
    assert "hunter2" not in problem


def test_duplicate_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("zone: a.\nttl: 5s\nzone: b.\n")
    assert _problems(path) == [f"{path}:3: duplicate key 'zone' (first at line 1)"]


def test_field_problems_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("zone: fed.test.\nclusters:\n  - {name: c1}\n  - {name: Bad_Name}\n")
    assert _problems(path) == [
        f"{path}: clusters[1].name: expected a lower-case DNS label (RFC 1123), got 'Bad_Name'"]


def test_top_level_list(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("- zone: a\n")
    (problem,) = _problems(path)
    assert problem.startswith(f"{path}: expected a mapping of config keys at the top level")


def test_yaml_spelling_of_the_spec_example(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "zone: fed.example.com.\n"
        "clusters:\n  - {name: c1, kubeconfig: ~/.kube/config, context: c1, region: us-east, weight: 1}\n"
        "health: {period: 1s, timeout: 1s, failure_threshold: 3, success_threshold: 2}\n"
        "dns: {listen: 127.0.0.1:5353, workers: 1, tcp_idle_timeout: 10s, max_tcp_connections: 1000}\n"
        "etcd: {endpoints: [], prefix: /skydns}\n"
        "topology: {mode: off, subnets: {}}\n")
    config = load(path)
    assert config.topology.mode == "off"
    assert config.clusters[0].kubeconfig.endswith("/.kube/config")
    assert not config.clusters[0].kubeconfig.startswith("~")
