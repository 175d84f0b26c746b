"""kubectl, unchanged, against a simulated cluster (HTTPS: kubectl sends tokens only over TLS)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil

import pytest

from fed_dns.sim import objects
from tests.sim.conftest import serving



def test_kubectl_is_installed():
    """`make test` installs it (Debian's kubernetes-client) when missing: never a silent skip."""
    assert shutil.which("kubectl"), "kubectl is not on PATH: run `make test`, which installs it"

MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata:
  name: ns
---
apiVersion: v1
kind: Service
metadata:
  name: mysql
  namespace: ns
  annotations:
    fed-dns.io/export: "true"
spec:
  ports:
  - name: mysql
    port: {port}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: mysql-1
  namespace: ns
  labels:
    kubernetes.io/service-name: mysql
addressType: IPv4
ports:
- name: mysql
  port: {port}
endpoints:
{endpoints}
"""


def manifest(*, port: int, ips: list[str]) -> str:
    eps = "\n".join(f'- addresses: ["{ip}"]\n  conditions: {{ready: true}}' for ip in ips)
    return MANIFEST.format(port=port, endpoints=eps)


@pytest.fixture
async def tls_sim(tmp_path):
    async with serving(tmp_path, name="c9", use_tls=True) as cluster:
        yield cluster


@pytest.fixture
def kubectl(tls_sim, tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), KUBECONFIG="")

    async def run(*args: str, stdin: str | None = None, ok: bool = True) -> str:
        proc = await asyncio.create_subprocess_exec(
            "kubectl", "--kubeconfig", str(tmp_path / "kubeconfig"),
            "--cache-dir", str(tmp_path / "cache"), *args, env=env,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None),
                                              60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        if ok:
            assert proc.returncode == 0, err.decode()
        return out.decode() + (err.decode() if not ok else "")

    return run


async def test_get_svc_all_namespaces(tls_sim, kubectl):
    tls_sim.apply(objects.service(name="web", namespace="shop", ports=[("http", 80)],
                                  type="LoadBalancer", lb_ips=["192.0.2.7"]))
    out = await kubectl("get", "svc", "-A")
    header, row = out.splitlines()
    assert header.split() == ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP",
                              "PORT(S)", "AGE"]
    assert row.split()[:6] == ["shop", "web", "LoadBalancer",
                               tls_sim.get(kind="svc", namespace="shop",
                                           name="web")["spec"]["clusterIP"],
                               "192.0.2.7", "80/TCP"]
    doc = json.loads(await kubectl("get", "services", "-n", "shop", "-o", "json"))
    assert doc["items"][0]["metadata"]["name"] == "web"


async def test_apply_reapply_get_and_delete(tls_sim, kubectl, tmp_path):
    path = tmp_path / "mysql.yaml"
    path.write_text(manifest(port=3306, ips=["10.1.0.1"]))
    out = await kubectl("apply", "-f", str(path))
    assert "service/mysql created" in out and "endpointslice.discovery.k8s.io/mysql-1 created" in out
    svc = tls_sim.get(kind="Service", namespace="ns", name="mysql")
    assert svc["metadata"]["annotations"]["fed-dns.io/export"] == "true"
    assert "kubectl.kubernetes.io/last-applied-configuration" in svc["metadata"]["annotations"]

    path.write_text(manifest(port=3307, ips=["10.1.0.1", "10.1.0.2"]))
    out = await kubectl("apply", "-f", str(path))
    assert "service/mysql configured" in out and "namespace/ns unchanged" in out
    svc = tls_sim.get(kind="Service", namespace="ns", name="mysql")
    assert [(p["name"], p["port"]) for p in svc["spec"]["ports"]] == [("mysql", 3307)]
    es = tls_sim.get(kind="EndpointSlice", namespace="ns", name="mysql-1")
    assert [e["addresses"] for e in es["endpoints"]] == [["10.1.0.1"], ["10.1.0.2"]]

    out = await kubectl("get", "endpointslices", "-n", "ns")
    assert out.split()[5:9] == ["mysql-1", "IPv4", "3307", "10.1.0.1,10.1.0.2"]

    out = await kubectl("delete", "svc", "mysql", "-n", "ns")
    assert 'service "mysql" deleted' in out
    assert tls_sim.get(kind="Service", namespace="ns", name="mysql") is None
    out = await kubectl("get", "svc", "mysql", "-n", "ns", ok=False)
    assert 'services "mysql" not found' in out

    await kubectl("apply", "-f", str(path))
    out = await kubectl("delete", "-f", str(path))  # the namespace first, then its objects
    assert 'namespace "ns" deleted' in out
    assert 'endpointslice.discovery.k8s.io "mysql-1" deleted' in out
    assert tls_sim.get(kind="Namespace", name="ns") is None  # kubectl waited for it


async def test_scale_deployment(tls_sim, kubectl):
    tls_sim.apply(objects.deployment(name="x", namespace="ns", replicas=1))
    assert "x" in await kubectl("get", "all", "-n", "ns")
    out = await kubectl("scale", "deployment", "x", "-n", "ns", "--replicas=3")
    assert "deployment.apps/x scaled" in out
    d = tls_sim.get(kind="Deployment", namespace="ns", name="x")
    assert d["spec"]["replicas"] == 3 and d["status"]["readyReplicas"] == 3
    tls_sim.ready_limit = 2
    out = await kubectl("get", "deploy", "x", "-n", "ns")
    assert out.splitlines()[1].split()[:2] == ["x", "2/3"]


async def test_wrong_token_is_refused(tls_sim, kubectl, tmp_path):
    doc = tls_sim.kubeconfig()
    doc["users"][0]["user"]["token"] = "wrong"
    (tmp_path / "kubeconfig").write_text(json.dumps(doc))
    out = await kubectl("get", "svc", ok=False)
    assert "Unauthorized" in out or "provide credentials" in out
