"""Reaching a member the way its kubeconfig says: URL, TLS settings, credentials."""

import ssl

import kubernetes.client

from fed_dns.federation import kubeapi
from fed_dns.federation.health import Thresholds
from fed_dns.federation.prober import ClusterProber
from fed_dns.model import Health
from tests.etcd.helpers import running, until
from tests.federation.fake_api import FakeApiServer


def configuration(**fields) -> kubernetes.client.Configuration:
    cfg = kubernetes.client.Configuration(host=fields.pop("host", "https://10.0.0.1:6443"))
    for name, value in fields.items():
        setattr(cfg, name, value)
    return cfg


def test_endpoint_of_plain_http_and_https():
    assert kubeapi.endpoint(configuration(host="http://127.0.0.1:8080/")).ssl is False
    secure = kubeapi.endpoint(configuration(tls_server_name="api.internal"))
    assert isinstance(secure.ssl, ssl.SSLContext) and secure.ssl.verify_mode == ssl.CERT_REQUIRED
    assert secure.server_hostname == "api.internal"
    insecure = kubeapi.endpoint(configuration(verify_ssl=False))
    assert insecure.ssl.verify_mode == ssl.CERT_NONE and not insecure.ssl.check_hostname


def test_credentials_never_reach_the_url_or_the_repr():
    endpoint = kubeapi.endpoint(configuration(host="https://admin:hunter2@10.0.0.1:6443/prefix/"))
    assert endpoint.base_url == "https://10.0.0.1:6443/prefix"
    assert "hunter2" not in repr(endpoint)


def test_auth_headers_carry_the_bearer_token():
    cfg = configuration(api_key={"authorization": "tok"}, api_key_prefix={"authorization": "Bearer"})
    assert kubeapi.auth_headers(cfg) == {"authorization": "Bearer tok"}
    assert kubeapi.auth_headers(configuration()) == {}


async def test_a_refreshed_token_is_used_as_exec_credential_plugins_refresh_it():
    server = FakeApiServer(token="fresh")
    await server.start()
    client = server.client(token="stale")
    refreshed = []

    def refresh(cfg):  # what kubernetes.config does for exec plugins and expiring tokens
        refreshed.append(True)
        cfg.api_key = {"authorization": "fresh"}

    client.configuration.refresh_api_key_hook = refresh
    prober = ClusterProber(name="c1", api_client=client, period=0.1, timeout=0.5,
                           thresholds=Thresholds(success=1))
    try:
        async with running(prober.run()):
            await until(lambda: prober.health is Health.READY)
        assert refreshed
    finally:
        client.close()
        await server.stop()
