"""Real kubectl against the federation API component (fed_dns.app.api): HTTPS, a bearer
token, the memory store and the etcd store (restart, two servers on one etcd)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid

import pytest

from fed_dns.apiserver.clusters import ClusterState
from fed_dns.app import apicreds
from fed_dns.app.api import ApiServer
from fed_dns.config import parse
from tests.support import free_port

MEMBERS = (ClusterState(name="c1", region="eu", health="ready", synced=True,
                        since="2024-01-01T00:00:00Z", created="2024-01-01T00:00:00Z"),
           ClusterState(name="c2", region="us", health="unreachable", message="probe timed out"))

TOMCAT = """
apiVersion: {api}
kind: ReplicaSet
metadata:
  name: tomcat
  labels: {{app: tomcat}}
  annotations:
    federation.kubernetes.io/replica-set-preferences: '{prefs}'
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: tomcat}}}}
  template:
    metadata: {{labels: {{app: tomcat}}}}
    spec:
      containers:
      - name: fed-tomcat
        image: tomcat:9
        resources: {{requests: {{cpu: 200m, memory: 500Mi}}}}
        ports: [{{containerPort: 80}}]
"""
PREFS = '{"rebalance": true, "clusters": {"c1": {"weight": 1}, "c2": {"weight": 1}}}'

KUBEFED = """
apiVersion: types.kubefed.io/v1beta1
kind: FederatedDeployment
metadata: {name: web, namespace: default}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      replicas: 3
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec: {containers: [{name: web, image: nginx:1.25}]}
  placement: {clusters: [{name: c1}, {name: c2}]}
  overrides:
  - clusterName: c2
    clusterOverrides: [{path: "/spec/replicas", value: 1}]
---
apiVersion: scheduling.kubefed.io/v1alpha1
kind: ReplicaSchedulingPreference
metadata: {name: web, namespace: default}
spec:
  targetKind: FederatedDeployment
  totalReplicas: 6
  clusters: {c1: {weight: 2}, "*": {weight: 1, minReplicas: 1, maxReplicas: 4}}
"""

KARMADA = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: nginx, labels: {app: nginx}}
spec:
  replicas: 2
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec: {containers: [{name: nginx, image: nginx:1.25}]}
---
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: nginx}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: nginx}]
  placement:
    clusterAffinity: {clusterNames: [c1, c2]}
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Weighted
      weightPreference:
        staticWeightList:
        - {targetCluster: {clusterNames: [c1]}, weight: 1}
        - {targetCluster: {clusterNames: [c2]}, weight: 2}
---
apiVersion: policy.karmada.io/v1alpha1
kind: OverridePolicy
metadata: {name: nginx}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: nginx}]
  overrideRules:
  - targetCluster: {clusterNames: [c2]}
    overriders:
      plaintext: [{path: /spec/replicas, operator: replace, value: 1}]
      imageOverrider: [{component: Registry, operator: replace, value: registry.eu}]
"""


def api_config(tmp_path, *, etcd_url: str | None, owner: str = "fed-dns/test.") -> object:
    data = {"owner_id": owner,
            "api": {"enabled": True, "listen": f"127.0.0.1:{free_port()}",
                    "dir": str(tmp_path / "api")}}
    if etcd_url:
        data["etcd"] = {"endpoints": [etcd_url]}
    return parse(data)


class Kubectl:
    def __init__(self, kubeconfig) -> None:
        self.kubeconfig = str(kubeconfig)

    async def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return await asyncio.to_thread(
            subprocess.run, ["kubectl", "--kubeconfig", self.kubeconfig, *args],
            input=stdin, capture_output=True, text=True, timeout=60)

    async def ok(self, *args: str, stdin: str | None = None) -> str:
        result = await self(*args, stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout


async def started(config, tmp_path, name: str = "kubeconfig") -> tuple[ApiServer, Kubectl]:
    server = ApiServer(config=config, members=lambda: MEMBERS, bookmark_interval=0.3)
    await server.start()
    creds = apicreds.ensure(config.api)
    doc = apicreds.kubeconfig(server=server.url, creds=creds)
    (tmp_path / name).write_text(json.dumps(doc))
    return server, Kubectl(tmp_path / name)


@pytest.fixture(params=["memory", "etcd"])
async def api(request, tmp_path):
    url = request.getfixturevalue("etcd_server").url if request.param == "etcd" else None
    config = api_config(tmp_path, etcd_url=url, owner=f"fed-dns/{uuid.uuid4().hex[:8]}.")
    server, kubectl = await started(config, tmp_path)
    try:
        yield server, kubectl, config
    finally:
        await server.close()


@pytest.mark.parametrize("api_version", ["apps/v1", "extensions/v1beta1"])
async def test_federation_v1_replicaset(api, api_version):
    _, kubectl, _ = api
    out = await kubectl.ok("create", "-f", "-",
                           stdin=TOMCAT.format(api=api_version, prefs=PREFS, replicas=4))
    assert "replicaset" in out and "tomcat created" in out
    table = await kubectl.ok("get", "rs", "tomcat")
    assert table.split("\n")[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert table.split("\n")[1].split()[:2] == ["tomcat", "4"]
    obj = json.loads(await kubectl.ok("get", "replicasets.apps", "tomcat", "-o", "json"))
    assert obj["apiVersion"] == "apps/v1" and obj["spec"]["replicas"] == 4
    await kubectl.ok("patch", "rs", "tomcat", "--type=merge", "-p", '{"spec":{"replicas":6}}')
    await kubectl.ok("scale", "rs", "tomcat", "--replicas=5")
    obj = json.loads(await kubectl.ok("get", "rs", "tomcat", "-o", "json"))
    assert obj["spec"]["replicas"] == 5
    await kubectl.ok("delete", "rs", "tomcat")
    result = await kubectl("get", "rs", "tomcat")
    assert result.returncode != 0 and "NotFound" in result.stderr


async def test_kubefed_and_karmada_formats(api):
    _, kubectl, _ = api
    await kubectl.ok("apply", "-f", "-", stdin=KUBEFED)
    await kubectl.ok("apply", "-f", "-", stdin=KARMADA)
    names = await kubectl.ok("get", "federateddeployments,rsp,deploy,pp,op", "-o", "name")
    assert set(names.split()) == {
        "federateddeployment.types.kubefed.io/web",
        "replicaschedulingpreference.scheduling.kubefed.io/web",
        "deployment.apps/nginx", "propagationpolicy.policy.karmada.io/nginx",
        "overridepolicy.policy.karmada.io/nginx"}
    deploy = await kubectl.ok("get", "deploy", "nginx")
    assert deploy.split("\n")[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    # apply again with a change: kubectl's three-way patch goes through
    await kubectl.ok("apply", "-f", "-", stdin=KARMADA.replace("replicas: 2", "replicas: 3"))
    assert json.loads(await kubectl.ok("get", "deploy", "nginx", "-o", "json"))["spec"][
        "replicas"] == 3
    await kubectl.ok("delete", "-f", "-", stdin=KUBEFED)


async def test_clusters_are_listed_read_only(api):
    _, kubectl, _ = api
    table = await kubectl.ok("get", "clusters")
    rows = [line.split() for line in table.strip().split("\n")]
    assert rows[0] == ["NAME", "HEALTH", "REGION", "SYNCED", "AGE"]
    assert [r[:4] for r in rows[1:]] == [["c1", "ready", "eu", "True"],
                                        ["c2", "unreachable", "us", "False"]]
    obj = json.loads(await kubectl.ok("get", "cluster", "c2", "-o", "json"))
    ready = obj["status"]["conditions"][0]
    assert (ready["type"], ready["status"], ready["message"]) == \
        ("Ready", "False", "probe timed out")
    result = await kubectl("delete", "cluster", "c1")
    assert result.returncode != 0


REJECTED = [
    pytest.param(TOMCAT.format(api="apps/v1", prefs=PREFS, replicas=-1), "spec.replicas",
                 "must be greater than or equal to 0", id="negative-replicas"),
    pytest.param(TOMCAT.format(api="apps/v1", prefs="{not json", replicas=1),
                 "replica-set-preferences", "must be JSON", id="bad-preferences-json"),
    pytest.param(TOMCAT.format(api="apps/v1", prefs='{"clusters": {"c9": {"weight": 1}}}',
                               replicas=1), "clusters[c9]", "Not found", id="unknown-cluster"),
    pytest.param(TOMCAT.format(api="apps/v1",
                               prefs='{"clusters": {"c1": {"minReplicas": 3, "maxReplicas": 1}}}',
                               replicas=1), "clusters[c1].minReplicas",
                 "less than or equal to maxReplicas", id="min-over-max"),
    pytest.param(TOMCAT.format(api="apps/v1", prefs='{"clusters": {"c1": {"weight": -2}}}',
                               replicas=1), "clusters[c1].weight",
                 "greater than or equal to 0", id="negative-weight"),
    pytest.param(KARMADA.split("---")[1].replace(
        "resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: nginx}]",
        "resourceSelectors: []"), "spec.resourceSelectors", "Required value",
        id="karmada-without-selectors"),
    pytest.param(KUBEFED.split("---")[0].replace('path: "/spec/replicas"', 'path: "spec"'),
                 "spec.overrides[0].clusterOverrides[0].path", "JSON pointer",
                 id="kubefed-bad-override-path"),
    pytest.param(TOMCAT.format(api="apps/v1", prefs=PREFS, replicas=1).replace(
        "name: tomcat", "name: Tomcat_1"), "metadata.name", "RFC 1123", id="bad-name"),
]


@pytest.mark.parametrize(("manifest", "field", "text"), REJECTED)
async def test_rejections(api, manifest, field, text):
    _, kubectl, _ = api
    result = await kubectl("apply", "-f", "-", stdin=manifest)
    assert result.returncode != 0
    assert field in result.stderr and text in result.stderr, result.stderr
    for kind in ("rs", "fdeploy", "pp"):
        assert (await kubectl.ok("get", kind, "-o", "name")).strip() == ""


async def test_without_a_token_401(api, tmp_path):
    server, _, config = api
    doc = apicreds.kubeconfig(server=server.url, creds=apicreds.ensure(config.api))
    doc["users"][0]["user"]["token"] = "wrong"
    (tmp_path / "bad").write_text(json.dumps(doc))
    result = await Kubectl(tmp_path / "bad")("get", "rs")
    assert result.returncode != 0 and ("provide credentials" in result.stderr
                                      or "(Unauthorized)" in result.stderr)  # kubectl words it either way
    assert (tmp_path / "api" / "token").stat().st_mode & 0o777 == 0o600


async def test_etcd_restart_and_two_servers(etcd_server, tmp_path):
    config = api_config(tmp_path, etcd_url=etcd_server.url,
                        owner=f"fed-dns/{uuid.uuid4().hex[:8]}.")
    first, kubectl = await started(config, tmp_path, "k1")
    try:
        await kubectl.ok("apply", "-f", "-", stdin=KARMADA)
    finally:
        await first.close()
    again, kubectl = await started(config, tmp_path, "k1")  # "restart": same etcd, same owner
    other_config = parse({**json.loads(config.model_dump_json()),
                          "api": {**json.loads(config.api.model_dump_json()),
                                  "listen": f"127.0.0.1:{free_port()}"}})
    other, kubectl2 = await started(other_config, tmp_path, "k2")
    try:
        assert "nginx" in await kubectl.ok("get", "deploy", "nginx", "-o", "name")
        assert "nginx" in await kubectl2.ok("get", "pp", "nginx", "-o", "name")
        # `get NAME --watch` prints the object, then watches from "0" (now, starting with
        # the object as it is then): a write made after the first line is seen whenever the
        # watch request itself arrives
        watch = await asyncio.create_subprocess_exec(
            "kubectl", "--kubeconfig", kubectl2.kubeconfig, "get", "deploy", "nginx", "--watch",
            "-o", "jsonpath={.spec.replicas}{\"\\n\"}", "--request-timeout=20s",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            assert (await asyncio.wait_for(watch.stdout.readline(), 15)).strip() == b"2"
            await kubectl.ok("scale", "deploy", "nginx", "--replicas=7")
            seen = [(await asyncio.wait_for(watch.stdout.readline(), 15)).strip()]
            if seen[0] == b"2":  # the watch's initial event came before the scale
                seen.append((await asyncio.wait_for(watch.stdout.readline(), 15)).strip())
            assert seen[-1] == b"7", seen
        finally:
            watch.kill()
            await watch.wait()
        assert json.loads(await kubectl2.ok("get", "deploy", "nginx", "-o", "json"))["spec"][
            "replicas"] == 7
    finally:
        await other.close()
        await again.close()


async def test_kubectl_create_with_generate_name(api):
    """Admission checks the generated name (a name was required before it was made)."""
    _, kubectl, _ = api
    manifest = TOMCAT.format(api="apps/v1", prefs=PREFS, replicas=1).replace(
        "name: tomcat\n", "generateName: tomcat-\n", 1)
    out = await kubectl.ok("create", "-f", "-", stdin=manifest)
    assert out.startswith("replicaset.apps/tomcat-") and out.strip().endswith(" created"), out
    assert (await kubectl.ok("get", "rs", "-o", "name")).strip() == out.split()[0]


SERVICE = """
apiVersion: v1
kind: Service
metadata:
  name: web
  annotations: {fed-dns.io/export: "true"}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
"""


async def test_services(api):
    """The v1 Service kind, as kubectl uses it: apply, get columns, edit by apply, delete;
    a bad one refused with its fields and nothing stored."""
    _, kubectl, _ = api
    assert "service/web created" in await kubectl.ok("apply", "-f", "-", stdin=SERVICE)
    rows = [r.split() for r in (await kubectl.ok("get", "svc")).strip().splitlines()]
    assert rows[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert rows[1][:5] == ["web", "ClusterIP", "<none>", "<none>", "80/TCP"]
    assert "service/web" in (await kubectl.ok("get", "all", "-o", "name")).split()
    # kubectl apply again with a second port: its strategic merge patch (ports by port)
    await kubectl.ok("apply", "-f", "-", stdin=SERVICE.replace(
        "[{name: http, port: 80}]", "[{name: http, port: 80}, {name: dns, port: 53, "
        "protocol: UDP}]"))
    obj = json.loads(await kubectl.ok("get", "service", "web", "-o", "json"))
    assert obj["spec"]["ports"] == [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80},
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}]
    assert obj["metadata"]["annotations"]["fed-dns.io/export"] == "true"

    bad = SERVICE.replace("name: web", "name: bad").replace(
        "[{name: http, port: 80}]", "[{name: http, port: 70000, protocol: ICMP}]").replace(
        "spec:", "spec:\n  type: Internal")
    result = await kubectl("apply", "-f", "-", stdin=bad)
    assert result.returncode != 0
    for text in ("spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535",
                 'spec.ports[0].protocol: Unsupported value: "ICMP"',
                 'spec.type: Unsupported value: "Internal"'):
        assert text in result.stderr, result.stderr
    no_ports = await kubectl("apply", "-f", "-", stdin=SERVICE.replace("name: web", "name: bad")
                             .replace("  ports: [{name: http, port: 80}]\n", ""))
    assert no_ports.returncode != 0 and "spec.ports: Required value" in no_ports.stderr
    assert (await kubectl.ok("get", "svc", "-o", "name")).split() == ["service/web"]
    await kubectl.ok("delete", "svc", "web")
    assert (await kubectl.ok("get", "svc", "-o", "name")).strip() == ""
