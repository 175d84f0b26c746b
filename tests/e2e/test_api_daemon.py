"""The federation API of `fed-dns run` itself, with real kubectl and a real etcd: every format
applied through one daemon and read through another, `kubectl edit` (a patch), a watch on one
daemon seeing a write made through the other, `kubectl get clusters` from the daemon's own
view of its members, a restart that reads everything back from etcd, and no secret (the API
token, a Secret's data) in either daemon's log or /status."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
import uuid

import pytest
import yaml

from fed_dns.app.api import api_prefix
from tests.apiserver.test_kubectl_api import KARMADA, KUBEFED, PREFS, TOMCAT
from tests.e2e.harness import Daemon, etcd_items, timed
from tests.e2e.test_daemon_replicas import kubeconfig_of, kubectl
from tests.e2e.test_daemon_replicas import sims  # noqa: F401 - the fixture: c1, c2 on TLS
from tests.support import REPO, fed_dns_command, free_port, stop_process

pytestmark = pytest.mark.slow

FORMATS = {  # kubectl's name of each object applied -> the manifest that holds it
    "replicaset.apps/tomcat": TOMCAT.format(api="apps/v1", prefs=PREFS, replicas=4),
    "replicaset.apps/tomcat-v1beta1": TOMCAT.format(api="extensions/v1beta1", prefs=PREFS,
                                                    replicas=2).replace(
        "name: tomcat\n", "name: tomcat-v1beta1\n", 1),
    "federateddeployment.types.kubefed.io/web": KUBEFED,
    "deployment.apps/nginx": KARMADA,
}
NAMES = {"federateddeployment.types.kubefed.io/web",
         "replicaschedulingpreference.scheduling.kubefed.io/web", "deployment.apps/nginx",
         "propagationpolicy.policy.karmada.io/nginx", "overridepolicy.policy.karmada.io/nginx",
         "replicaset.apps/tomcat", "replicaset.apps/tomcat-v1beta1"}
RESOURCES = "rs,deploy,fdeploy,rsp,pp,op"

# `kubectl edit`'s editor: sets one field of the YAML it is handed (kubectl then sends the
# difference as a patch).
EDITOR = """
import sys, yaml
path, field, value = sys.argv[1], sys.argv[2].split("."), int(sys.argv[3])
doc = yaml.safe_load(open(path))
target = doc
for key in field[:-1]:
    target = target[key]
target[field[-1]] = value
open(path, "w").write(yaml.safe_dump(doc))
"""


def daemon(tmp_path, name: str, sims, etcd_url: str, *, zone: str) -> Daemon:
    (tmp_path / name).mkdir()
    return Daemon(tmp=tmp_path / name, sims=sims, etcd_url=etcd_url, zone=zone,
                  extra={"api": {"enabled": True, "listen": f"127.0.0.1:{free_port()}",
                                 "dir": str(tmp_path / "api")}})


def ok(kc: str, *args: str, stdin: str | None = None, env: dict | None = None) -> str:
    result = kubectl(kc, *args, stdin=stdin) if env is None else subprocess.run(
        ["kubectl", "--kubeconfig", kc, *args], input=stdin, capture_output=True, text=True,
        timeout=30, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def edit(kc: str, tmp_path, resource: str, field: str, value: int) -> None:
    """`kubectl edit` with an editor that sets `field` to `value` (kubectl runs
    `$KUBE_EDITOR <file>`)."""
    script = tmp_path / "editor.py"
    script.write_text(EDITOR)
    wrapper = tmp_path / "editor.sh"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$1" {field} {value}\n')
    wrapper.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBE_EDITOR": str(wrapper)}
    out = ok(kc, "edit", resource, env=env)
    assert "edited" in out, out


def stop_watch(proc: subprocess.Popen) -> None:
    stop_process(proc)
    proc.stdout.close()
    proc.stderr.close()


def test_kubectl_on_two_daemons_one_etcd_with_a_restart(tmp_path, sims, etcd_server):  # noqa: F811
    zone = f"api-{uuid.uuid4().hex[:8]}.example.com."
    a = daemon(tmp_path, "a", sims, etcd_server.url, zone=zone)
    b = daemon(tmp_path, "b", sims, etcd_server.url, zone=zone)
    secret_value = secrets.token_hex(16)
    watch = None
    try:
        a.start()
        b.start()
        kc_a = kubeconfig_of(a, tmp_path / "a.kubeconfig")
        kc_b = kubeconfig_of(b, tmp_path / "b.kubeconfig")
        token = (tmp_path / "api" / "token").read_text().strip()
        for name in ("token", "tls.key"):
            assert (tmp_path / "api" / name).stat().st_mode & 0o777 == 0o600

        # every format through a, read through b; the first as README shows it
        first, *rest = FORMATS.values()
        command = shlex.join(fed_dns_command("kubeconfig", "--config", str(a.config_path)))
        readme = subprocess.run(
            ["bash", "-c", f"{command} --output federation.kubeconfig && "
             "kubectl --kubeconfig federation.kubeconfig apply -f -"],
            input=first, capture_output=True, text=True, timeout=60, cwd=tmp_path,
            env=dict(os.environ, PYTHONPATH=str(REPO)))
        assert readme.returncode == 0 and "created" in readme.stdout, readme.stderr
        assert (tmp_path / "federation.kubeconfig").stat().st_mode & 0o777 == 0o600
        for manifest in rest:
            ok(kc_a, "apply", "-f", "-", stdin=manifest)
        assert set(ok(kc_b, "get", RESOURCES, "-o", "name").split()) == NAMES
        rows = ok(kc_b, "get", "rs").splitlines()
        assert rows[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
        assert {r.split()[0]: r.split()[1] for r in rows[1:]} == {"tomcat": "4",
                                                                  "tomcat-v1beta1": "2"}
        # the extensions/v1beta1 ReplicaSet is stored as apps/v1, under kube-apiserver's key
        stored = etcd_items(etcd_server.url, api_prefix(f"fed-dns/{zone}") + "apps/replicasets/")
        assert {k.rsplit("/", 1)[1]: v["apiVersion"] for k, v in stored.items()} == \
            {"tomcat": "apps/v1", "tomcat-v1beta1": "apps/v1"}
        assert all("resourceVersion" not in v["metadata"] for v in stored.values())

        # the members as the daemon sees them
        timed(lambda: [r.split()[:2] for r in ok(kc_b, "get", "clusters").splitlines()[1:]]
              == [["c1", "ready"], ["c2", "ready"]], timeout=15, what="both members ready")
        header = ok(kc_b, "get", "clusters").splitlines()[0].split()
        assert header == ["NAME", "HEALTH", "REGION", "SYNCED", "AGE"]
        ready = json.loads(ok(kc_a, "get", "cluster", "c1", "-o", "json"))["status"]["conditions"]
        assert [(c["type"], c["status"], c["reason"]) for c in ready] == \
            [("Ready", "True", "ClusterReady")]

        # admission knows the daemon's members: a weight for c9 is refused, nothing stored
        refused = kubectl(kc_a, "apply", "-f", "-", stdin=TOMCAT.format(
            api="apps/v1", prefs='{"clusters": {"c9": {"weight": 1}}}', replicas=1).replace(
            "name: tomcat\n", "name: refused\n", 1))
        assert refused.returncode != 0 and "clusters[c9]" in refused.stderr, refused.stderr
        assert "refused" not in ok(kc_b, "get", "rs", "-o", "name")

        # a watch on b sees an edit made through a (the watch starts from its list's
        # resourceVersion: its first line is the object as listed)
        watch = subprocess.Popen(
            ["kubectl", "--kubeconfig", kc_b, "get", "deploy", "nginx", "--watch",
             "-o", "jsonpath={.spec.replicas}{\"\\n\"}", "--request-timeout=30s"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert watch.stdout.readline().strip() == "2"
        edit(kc_a, tmp_path, "deploy/nginx", "spec.replicas", 5)
        seen = []
        while "5" not in seen:  # the replica loop's status writes show as lines of 2
            line = watch.stdout.readline()
            assert line, f"watch ended: {watch.stderr.read() if watch.poll() is not None else ''}"
            seen.append(line.strip())
        stop_watch(watch)
        watch = None
        edit(kc_b, tmp_path, "rsp/web", "spec.totalReplicas", 9)  # a custom kind: merge patch
        assert json.loads(ok(kc_a, "get", "rsp", "web", "-o", "json"))["spec"]["totalReplicas"] == 9

        ok(kc_a, "create", "secret", "generic", "db", f"--from-literal=password={secret_value}")
        ok(kc_b, "delete", "-f", "-", stdin=KUBEFED)
        gone = kubectl(kc_a, "get", "fdeploy", "web")
        assert gone.returncode != 0 and "NotFound" in gone.stderr

        # restart a: everything comes back from etcd
        a.stop()
        a.start()
        assert set(ok(kc_a, "get", RESOURCES, "-o", "name").split()) == \
            NAMES - {"federateddeployment.types.kubefed.io/web",
                     "replicaschedulingpreference.scheduling.kubefed.io/web"}
        assert json.loads(ok(kc_a, "get", "deploy", "nginx", "-o", "json"))["spec"][
            "replicas"] == 5
        assert "secret/db" in ok(kc_a, "get", "secrets", "-o", "name")

        # no secret in either daemon's /status or log (debug level)
        for d in (a, b):
            shown = json.dumps(d.status())
            assert token not in shown and secret_value not in shown
        for d in (a, b):
            log = d.log_path.read_text(errors="replace")
            assert token not in log and secret_value not in log
            assert "federation API on https://127.0.0.1:" in log
    finally:
        if watch is not None:
            stop_watch(watch)
        a.stop()
        b.stop()
