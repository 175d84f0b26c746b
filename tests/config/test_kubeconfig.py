"""With no clusters in the config, the members are the contexts of the current kubeconfig."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from fed_dns.config import ConfigError, parse
from fed_dns.model import ClusterSpec

TOKEN = "sekrit-token-value"


def kubeconfig(path: Path, *contexts: str, current: str | None = None) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": c, "cluster": {"server": "https://127.0.0.1:6443"}} for c in contexts],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [{"name": c, "context": {"cluster": c, "user": "u"}} for c in contexts],
        "current-context": current or (contexts[0] if contexts else ""),
    }))
    return path


def specs(environ: dict[str, str]) -> tuple[ClusterSpec, ...]:
    return parse({}, source="t").cluster_specs(environ=environ)


def problems(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        specs(environ)
    text = str(caught.value)
    assert TOKEN not in text
    return text.splitlines()


def test_contexts_become_members(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = kubeconfig(tmp_path / "kc", "c1", "c2", "c3")
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert parse({}, source="t").cluster_specs() == tuple(
        ClusterSpec(name=c, kubeconfig=str(path), context=c) for c in ("c1", "c2", "c3"))


def test_home_kube_config_without_kubeconfig_env(tmp_path: Path) -> None:
    (tmp_path / ".kube").mkdir()
    path = kubeconfig(tmp_path / ".kube" / "config", "east")
    assert specs({"HOME": str(tmp_path)}) == (ClusterSpec(name="east", kubeconfig=str(path), context="east"),)


def test_several_files_merge_first_wins(tmp_path: Path) -> None:
    a = kubeconfig(tmp_path / "a", "c1", "c2")
    b = kubeconfig(tmp_path / "b", "c2", "c3")
    listed = os.pathsep.join([str(a), str(tmp_path / "missing"), str(b)])
    assert specs({"KUBECONFIG": listed}) == tuple(
        ClusterSpec(name=c, kubeconfig=None, context=c) for c in ("c1", "c2", "c3"))


def test_configured_clusters_ignore_kubeconfig(tmp_path: Path) -> None:
    config = parse({"clusters": [{"name": "x"}]}, source="t")
    assert config.cluster_specs(environ={"KUBECONFIG": str(tmp_path / "missing")}) == (ClusterSpec(name="x"),)


def test_context_name_not_a_label(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "kc", "ok", "arn:aws:eks:us-east-1:1:cluster/prod", "Dev_Cluster")
    lines = problems({"KUBECONFIG": str(path)})
    assert lines[0].startswith(f"{path}: contexts[1].name: expected a lower-case DNS label (RFC 1123) "
                               "to use as a cluster name, got 'arn:aws:eks:us-east-1:1:cluster/prod'")
    assert lines[1].startswith(f"{path}: contexts[2].name: ")
    assert "list the clusters in the config" in lines[1]
    assert len(lines) == 2


def test_no_kubeconfig(tmp_path: Path) -> None:
    missing = tmp_path / "none"
    (line,) = problems({"KUBECONFIG": str(missing)})
    assert line.startswith(f"{missing}: no such file (with no clusters in the config, the members are "
                           "the contexts of the current kubeconfig)")


def test_no_contexts(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "kc")
    assert problems({"KUBECONFIG": str(path)}) == [
        f"{path}: no contexts (with no clusters in the config, the members are the contexts of the current kubeconfig)"]


@pytest.mark.parametrize(("text", "expected"), [
    ("users:\n- name: u\n  user: {token: sekrit-token-value\n", ":4: YAML syntax error"),
    ("- a\n", ": expected a kubeconfig (a mapping), got a list"),
    ("contexts: {a: 1}\n", ": contexts: expected a list, got a mapping"),
    ("contexts:\n- {context: {}}\n", ": contexts[0].name: expected a context name"),
])
def test_broken_kubeconfig(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "kc"
    path.write_text(text)
    (line,) = problems({"KUBECONFIG": str(path)})
    assert line.startswith(f"{path}{expected}")
