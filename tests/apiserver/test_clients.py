"""`fed-dns kubeconfig` and the official `kubernetes` Python client (dynamic client)."""

from __future__ import annotations

import asyncio
import json
import subprocess

import kubernetes
import pytest
import yaml
from kubernetes.dynamic import DynamicClient

from fed_dns.app.api import ApiServer
from tests.apiserver.test_kubectl_api import MEMBERS, api_config
from tests.support import fed_dns_command


def test_kubeconfig_command_prints_a_working_kubeconfig(tmp_path):
    config_file = tmp_path / "fed-dns.yaml"
    config_file.write_text(yaml.safe_dump({"api": {"enabled": True, "listen": "127.0.0.1:7443",
                                                   "dir": str(tmp_path / "api")}}))
    out = subprocess.run(fed_dns_command("kubeconfig", "--config", str(config_file)),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    doc = yaml.safe_load(out.stdout)
    assert doc["current-context"] == "federation"
    assert doc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:7443"
    token = (tmp_path / "api" / "token").read_text().strip()
    assert doc["users"][0]["user"]["token"] == token
    assert (tmp_path / "api" / "tls.key").stat().st_mode & 0o777 == 0o600
    assert token not in out.stderr
    # a second run keeps the same credentials
    again = subprocess.run(fed_dns_command("kubeconfig", "--config", str(config_file)),
                           capture_output=True, text=True, timeout=60)
    assert yaml.safe_load(again.stdout) == doc


async def test_dynamic_client(tmp_path, etcd_server):
    config = api_config(tmp_path, etcd_url=etcd_server.url, owner="fed-dns/dynamic-client.")
    server = ApiServer(config=config, members=lambda: MEMBERS)
    await server.start()
    try:
        from fed_dns.app import apicreds
        doc = apicreds.kubeconfig(server=server.url, creds=apicreds.ensure(config.api))
        (tmp_path / "kc").write_text(json.dumps(doc))

        def use() -> tuple[int, list[str], list[str]]:
            api = kubernetes.config.new_client_from_config(config_file=str(tmp_path / "kc"))
            try:
                dyn = DynamicClient(api)
                rs = dyn.resources.get(api_version="apps/v1", kind="ReplicaSet")
                body = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "metadata": {"name": "dyn"},
                        "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                                 "template": {"metadata": {"labels": {"a": "b"}},
                                              "spec": {"containers": [{"name": "c",
                                                                       "image": "i"}]}}}}
                rs.create(body=body, namespace="default")
                rs.patch(name="dyn", namespace="default", body={"spec": {"replicas": 3}},
                         content_type="application/merge-patch+json")
                got = rs.get(name="dyn", namespace="default")
                clusters = dyn.resources.get(api_version="federation/v1beta1", kind="Cluster")
                names = [c.metadata.name for c in clusters.get().items]
                rs.delete(name="dyn", namespace="default")
                left = [r.metadata.name for r in rs.get(namespace="default").items]
                return got.spec.replicas, names, left
            finally:
                api.close()

        replicas, names, left = await asyncio.to_thread(use)
        assert (replicas, names, left) == (3, ["c1", "c2"], [])
    finally:
        await server.close()


@pytest.mark.parametrize("command", ["apply", "get", "delete"])
def test_the_old_object_commands_are_gone(command):
    """kubectl does their job now (README: The federation API)."""
    out = subprocess.run(fed_dns_command(command, "-f", "rs.yaml"), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and f"invalid choice: '{command}'" in out.stderr
