"""federation.joining: Cluster objects of the three formats -> members (pure)."""

from __future__ import annotations

import base64

import pytest

from fed_dns.federation import joining
from fed_dns.federation.joining import (FEDERATION_V1, KARMADA, KUBEFED, Credentials, Join,
                                        Refusal, SecretRef)

TOKEN = "s3cr3t-token-value"
PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def b64(value: bytes | str) -> str:
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode()


def obj(name="c4", namespace="", labels=None, created="2026-01-01T00:00:00Z", **spec) -> dict:
    meta = {"name": name, "uid": f"uid-{name}-{namespace}", "creationTimestamp": created,
            "labels": labels or {}}
    if namespace:
        meta["namespace"] = namespace
    return {"metadata": meta, "spec": spec}


READS = [
    pytest.param(FEDERATION_V1, obj(serverAddressByClientCIDRs=[
        {"clientCIDR": "10.0.0.0/8", "serverAddress": "https://inner:6443"},
        {"clientCIDR": "0.0.0.0/0", "serverAddress": "outer:6443"}], secretRef={"name": "s"}),
        ("https://outer:6443", SecretRef(namespace="default", name="s"), b"", False),
        id="v1-every-client-address-with-scheme"),
    pytest.param(KUBEFED, obj(namespace="kube-federation-system", apiEndpoint="https://m:6443",
                              caBundle=b64(PEM), secretRef={"name": "s"}),
                 ("https://m:6443", SecretRef(namespace="kube-federation-system", name="s"),
                  PEM, False), id="kubefed-secret-in-its-namespace"),
    pytest.param(KARMADA, obj(apiEndpoint="https://m:6443", insecureSkipTLSVerification=True,
                              secretRef={"namespace": "karmada-cluster", "name": "s"}),
                 ("https://m:6443", SecretRef(namespace="karmada-cluster", name="s"), b"", True),
                 id="karmada-insecure"),
    pytest.param(KARMADA, obj(apiEndpoint="https://m:6443", secretRef={"name": "s"}),
                 Refusal(reason="NoSecret", message="spec.secretRef names no Secret"),
                 id="karmada-secret-without-namespace"),
    pytest.param(KUBEFED, obj(secretRef={"name": "s"}),
                 Refusal(reason="NoEndpoint", message="spec.apiEndpoint is empty"), id="no-endpoint"),
    pytest.param(KUBEFED, obj(apiEndpoint="https://m", caBundle="%%", secretRef={"name": "s"}),
                 Refusal(reason="InvalidCABundle", message="spec.caBundle is not base64"),
                 id="bad-ca-bundle"),
]


@pytest.mark.parametrize(("fmt", "cluster", "want"), READS)
def test_read_join(fmt, cluster, want):
    got = joining.read_join(fmt, cluster)
    if isinstance(want, Refusal):
        assert got == want
    else:
        assert (got.endpoint, got.secret, got.ca_bundle, got.insecure) == want
        assert (got.name, got.format) == ("c4", fmt)


def test_region_and_zone_come_from_the_topology_labels():
    j = joining.read_join(KARMADA, obj(labels={joining.REGION: "eu", joining.ZONE: "eu-1a"},
                                       apiEndpoint="https://m", secretRef={"namespace": "n",
                                                                           "name": "s"}))
    assert (j.region, j.zone) == ("eu", "eu-1a")
    assert dict(j.labels) == {joining.REGION: "eu", joining.ZONE: "eu-1a"}


def join(fmt=KUBEFED, name="c4", created="2026-01-01T00:00:00Z", namespace="ns", ca=b""):
    return Join(name=name, format=fmt, namespace=namespace, uid=f"{fmt}{namespace}{name}",
                created=created, endpoint="https://m", secret=SecretRef(namespace="ns", name="s"),
                ca_bundle=ca)


CREDENTIALS = [
    pytest.param(join(), None, Refusal(reason="SecretNotFound", message="secret ns/s not found"),
                 id="missing-secret"),
    pytest.param(join(), {"data": {"other": b64("x")}},
                 Refusal(reason="InvalidSecret", message="secret ns/s has no key 'token'"),
                 id="no-token-key"),
    pytest.param(join(ca=PEM), {"data": {"token": b64(TOKEN + "\n")}},
                 Credentials(endpoint="https://m", token=TOKEN, ca_pem=PEM, secrets=(TOKEN,)),
                 id="kubefed-token-and-spec-ca"),
    pytest.param(join(KARMADA), {"data": {"token": b64(TOKEN), "caBundle": b64(PEM)}},
                 Credentials(endpoint="https://m", token=TOKEN, ca_pem=PEM, secrets=(TOKEN,)),
                 id="karmada-ca-from-the-secret"),
    pytest.param(join(KARMADA), {"stringData": {"token": TOKEN}},
                 Credentials(endpoint="https://m", token=TOKEN, secrets=(TOKEN,)),
                 id="string-data"),
    pytest.param(join(FEDERATION_V1), {"data": {"token": b64(TOKEN)}},
                 Refusal(reason="InvalidSecret", message="secret ns/s has no key 'kubeconfig'"),
                 id="v1-needs-a-kubeconfig"),
]


@pytest.mark.parametrize(("j", "secret", "want"), CREDENTIALS)
def test_credentials_of(j, secret, want):
    got = joining.credentials_of(j, secret)
    assert got == want
    assert TOKEN not in repr(got) and TOKEN not in str(getattr(got, "message", ""))


def test_the_oldest_object_holds_a_name_and_config_names_are_refused():
    old = join(KARMADA, created="2026-01-01T00:00:00Z", namespace="")
    young = join(KUBEFED, created="2026-02-01T00:00:00Z")
    config = join(KUBEFED, name="c1")
    held, refused = joining.winners([young, old, config], reserved={"c1"})
    assert held == {"c4": old}
    assert refused[(KUBEFED, "ns", "c4")].reason == "NameConflict"
    assert "already joined by cluster.karmada.io/v1alpha1 c4" in refused[(KUBEFED, "ns", "c4")].message
    assert "config file" in refused[(KUBEFED, "ns", "c1")].message


CONDITIONS = [
    pytest.param(dict(health="ready"), ("True", "ClusterReady"), id="ready"),
    pytest.param(dict(health="ready", synced=False), ("Unknown", "ClusterNotSynced"), id="listing"),
    pytest.param(dict(health="ready", synced=False, message="services: HTTP 401 Unauthorized"),
                 ("False", "Unauthorized"), id="probe-open-watch-refused"),
    pytest.param(dict(health="ready", synced=False, message="HTTP 403 Forbidden"),
                 ("False", "Forbidden"), id="forbidden"),
    pytest.param(dict(health="unreachable", message="GET /readyz: timeout"),
                 ("False", "ClusterNotReachable"), id="unreachable"),
    pytest.param(dict(health="unknown"), ("Unknown", "ClusterStateUnknown"), id="unknown"),
    pytest.param(dict(health="ready", refusal=Refusal(reason="SecretNotFound", message="m")),
                 ("False", "SecretNotFound"), id="refused"),
]


@pytest.mark.parametrize(("given", "want"), CONDITIONS)
def test_ready_condition(given, want):
    c = joining.ready_condition(**given)
    assert (c["type"], c["status"], c["reason"]) == ("Ready", *want)


def kubeconfig(user: dict, cluster: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Config", "current-context": "m",
            "contexts": [{"name": "m", "context": {"cluster": "m", "user": "u"}}],
            "clusters": [{"name": "m", "cluster": {"server": "https://m:6443",
                                                   **(cluster or {})}}],
            "users": [{"name": "u", "user": user}]}


KUBECONFIGS = [
    pytest.param(kubeconfig({"token": TOKEN}, {"certificate-authority-data": b64(PEM)}), None,
                 id="inline-token-and-ca"),
    pytest.param(kubeconfig({"client-certificate-data": b64(PEM), "client-key-data": b64("k")}),
                 None, id="inline-client-certificate"),
    pytest.param(kubeconfig({"username": "admin", "password": TOKEN}), None, id="basic-auth"),
    pytest.param(kubeconfig({"exec": {"command": "/bin/sh", "args": ["-c", "id"],
                                      "apiVersion": "client.authentication.k8s.io/v1"}}),
                 "user 'u' uses exec", id="exec-plugin"),
    pytest.param(kubeconfig({"auth-provider": {"name": "gcp", "config": {"cmd-path": "/bin/sh"}}}),
                 "user 'u' uses auth-provider", id="auth-provider"),
    pytest.param(kubeconfig({"tokenFile": "/var/lib/fed-dns/api/token"}),
                 "user 'u' uses tokenFile", id="token-file"),
    pytest.param(kubeconfig({"client-certificate": "/etc/c.crt", "client-key": "/etc/c.key"}),
                 "user 'u' uses client-certificate, client-key", id="key-files"),
    pytest.param(kubeconfig({"token": TOKEN}, {"certificate-authority": "/etc/ca.crt"}),
                 "cluster 'm' uses certificate-authority", id="ca-file"),
    pytest.param({"users": "not-a-list", "clusters": 3}, None, id="odd-shapes-are-no-crash"),
]


@pytest.mark.parametrize(("doc", "want"), KUBECONFIGS)
def test_a_joined_kubeconfig_carries_its_credentials_inline(doc, want):
    got = joining.kubeconfig_refusal(doc)
    if want is None:
        assert got is None
    else:
        assert got.reason == "UnsupportedKubeconfig" and got.message.startswith(want)
        assert "no commands, no local files" in got.message and TOKEN not in got.message
