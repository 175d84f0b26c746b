"""kubeconfig.load: the client's own loading, and clear errors that never show a credential."""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from fed_dns.model import ClusterSpec
from fed_dns.watch.kubeconfig import KubeconfigError, load, redact, secret_values

TOKEN = "s3cr3t-token-value-0123456789"


def kubeconfig(*, user: dict, server="http://127.0.0.1:1", context="c1") -> dict:
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "k", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": context, "context": {"cluster": "k", "user": "u"}}],
    }


def write(tmp_path, doc, name="config") -> str:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return str(path)


def test_bearer_token(tmp_path):
    client = load(ClusterSpec(name="c1", kubeconfig=write(tmp_path, kubeconfig(user={"token": TOKEN}))))
    try:
        assert client.configuration.host == "http://127.0.0.1:1"
        assert client.configuration.api_key["BearerToken"] == f"Bearer {TOKEN}"
    finally:
        client.close()


def test_current_context_is_the_default_and_context_is_chosen(tmp_path):
    doc = kubeconfig(user={"token": TOKEN})
    doc["clusters"].append({"name": "k2", "cluster": {"server": "http://127.0.0.1:2"}})
    doc["contexts"].append({"name": "c2", "context": {"cluster": "k2", "user": "u"}})
    path = write(tmp_path, doc)
    for context, host in ((None, "http://127.0.0.1:1"), ("c2", "http://127.0.0.1:2")):
        client = load(ClusterSpec(name="m", kubeconfig=path, context=context))
        assert client.configuration.host == host
        client.close()


def test_exec_plugin_gives_the_token(tmp_path):
    plugin = tmp_path / "plugin.py"
    plugin.write_text("import json\nprint(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1',"
                      " 'kind': 'ExecCredential', 'status': {'token': 'from-exec'}}))\n")
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
                     "args": [str(plugin)], "interactiveMode": "Never"}}
    client = load(ClusterSpec(name="c1", kubeconfig=write(tmp_path, kubeconfig(user=user))))
    assert client.configuration.api_key["BearerToken"] == "Bearer from-exec"
    client.close()


def test_client_certificate_and_ca_files_are_handed_to_the_client(tmp_path):
    for name in ("ca.crt", "client.crt", "client.key"):
        (tmp_path / name).write_text("-----BEGIN X-----\n-----END X-----\n")
    doc = kubeconfig(user={"client-certificate": str(tmp_path / "client.crt"),
                           "client-key": str(tmp_path / "client.key")},
                     server="https://127.0.0.1:1")
    doc["clusters"][0]["cluster"]["certificate-authority"] = str(tmp_path / "ca.crt")
    client = load(ClusterSpec(name="c1", kubeconfig=write(tmp_path, doc)))
    c = client.configuration
    assert (c.ssl_ca_cert, c.cert_file, c.key_file) == (
        str(tmp_path / "ca.crt"), str(tmp_path / "client.crt"), str(tmp_path / "client.key"))
    client.close()


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope")
    with pytest.raises(KubeconfigError) as err:
        load(ClusterSpec(name="east", kubeconfig=path))
    assert str(err.value) == f"cluster 'east': kubeconfig {path!r}: file not found"


def test_bad_yaml_does_not_echo_the_file(tmp_path):
    path = write(tmp_path, f"users:\n- name: u\n  user: {{token: {TOKEN}\n  : : [\n")
    with pytest.raises(KubeconfigError) as err:
        load(ClusterSpec(name="east", kubeconfig=path))
    message = str(err.value)
    assert message.startswith(f"cluster 'east': kubeconfig {path!r}: ") and "not valid YAML at line" in message
    assert TOKEN not in message


def test_unknown_context_lists_the_known_ones(tmp_path):
    path = write(tmp_path, kubeconfig(user={"token": TOKEN}))
    with pytest.raises(KubeconfigError) as err:
        load(ClusterSpec(name="east", kubeconfig=path, context="west"))
    assert str(err.value) == f"cluster 'east': kubeconfig {path!r}: unknown context 'west' (contexts: 'c1')"


def test_not_a_mapping(tmp_path):
    with pytest.raises(KubeconfigError, match="not a kubeconfig"):
        load(ClusterSpec(name="east", kubeconfig=write(tmp_path, "- just\n- a list\n")))


def test_failing_exec_plugin_is_an_error_without_secrets(tmp_path):
    plugin = tmp_path / "plugin.py"
    plugin.write_text(f"import sys\nsys.stderr.write('denied for {TOKEN}')\nsys.exit(3)\n")
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                     "command": sys.executable, "args": [str(plugin)],
                     "env": [{"name": "SECRET", "value": TOKEN}]}}
    path = write(tmp_path, kubeconfig(user=user))
    with pytest.raises(KubeconfigError) as err:
        load(ClusterSpec(name="east", kubeconfig=path))
    assert str(err.value) == (f"cluster 'east': kubeconfig {path!r}, context 'c1': "
                              "the exec credential plugin gave no credentials")


def test_client_errors_name_the_cluster_and_file(tmp_path):
    doc = kubeconfig(user={"token": TOKEN}, server="https://127.0.0.1:1")
    doc["clusters"][0]["cluster"]["certificate-authority"] = str(tmp_path / "missing-ca.crt")
    path = write(tmp_path, doc)
    with pytest.raises(KubeconfigError) as err:
        load(ClusterSpec(name="east", kubeconfig=path))
    message = str(err.value)
    assert message.startswith(f"cluster 'east': kubeconfig {path!r}, context 'c1': ")
    assert "missing-ca.crt" in message and TOKEN not in message


def test_redact_hides_every_secret_value():
    doc = kubeconfig(user={"token": TOKEN, "client-key-data": "a2V5LWRhdGE="})
    text = f"failed with {TOKEN} and a2V5LWRhdGE= in it"
    assert redact(text, secrets=secret_values([doc])) == "failed with <redacted> and <redacted> in it"


def test_kubeconfig_env_is_used_when_the_spec_has_no_file(tmp_path, monkeypatch):
    path = write(tmp_path, json.dumps(kubeconfig(user={"token": TOKEN})))
    monkeypatch.setenv("KUBECONFIG", path)
    client = load(ClusterSpec(name="c1"))
    assert client.configuration.host == "http://127.0.0.1:1"
    client.close()
