"""Parsing the probe annotation and choosing probe targets from cluster views."""

import pytest

from fed_dns.federation import targets
from fed_dns.model import Backend, ClusterView, Port, ServiceKey, ServiceView


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param("", None, id="empty"),
        pytest.param("tcp", ("tcp", ""), id="tcp"),
        pytest.param(" tcp ", ("tcp", ""), id="tcp-spaces"),
        pytest.param("http:/healthz", ("http", "/healthz"), id="http-path"),
        pytest.param("http:", ("http", "/"), id="http-root"),
        pytest.param("http:healthz", None, id="http-relative"),
        pytest.param("udp", None, id="udp"),
        pytest.param("http:/a b", None, id="space-in-path"),
        pytest.param("grpc:/x", None, id="other-scheme"),
    ],
)
def test_parse(annotation, expected):
    assert targets.parse(annotation) == expected


def test_from_views_takes_every_backend_of_probed_services_on_its_first_tcp_port():
    web, db, plain = (ServiceKey(namespace="ns", name=n) for n in ("web", "db", "plain"))
    tcp80, udp53, tcp5432 = Port(name="http", port=80), Port(name="dns", port=53, protocol="UDP"), Port(name="pg", port=5432)
    view = ClusterView(cluster="c1", synced=True, services={
        web: ServiceView(key=web, probe="http:/ready", backends=(
            Backend(address="10.0.0.1", ports=(udp53, tcp80)), Backend(address="10.0.0.2", ports=(udp53,)))),
        db: ServiceView(key=db, probe="tcp", backends=(Backend(address="fd00::7", ports=(tcp5432,)),)),
        plain: ServiceView(key=plain, backends=(Backend(address="10.0.0.9", ports=(tcp80,)),)),
    })
    assert targets.from_views(views=[view]) == {
        ("c1", web, "10.0.0.1"): ("http", 80, "/ready"),
        ("c1", db, "fd00::7"): ("tcp", 5432, ""),
    }


TCP80 = Port(name="http", port=80)
UDP53 = Port(name="dns", port=53, protocol="UDP")
WEB = ServiceKey(namespace="ns", name="web")


@pytest.mark.parametrize(("service", "expected"), [
    pytest.param(ServiceView(key=WEB, backends=(Backend(address="10.0.0.1", ports=(TCP80,)),)), {},
                 id="no-probe"),
    pytest.param(ServiceView(key=WEB, probe="udp", backends=(Backend(address="10.0.0.1", ports=(TCP80,)),)), {},
                 id="invalid-probe"),
    pytest.param(ServiceView(key=WEB, probe="tcp"), {}, id="no-backends"),
    pytest.param(ServiceView(key=WEB, probe="tcp", backends=(Backend(address="10.0.0.1", ports=(UDP53,)),)), {},
                 id="udp-only"),
    pytest.param(ServiceView(key=WEB, probe="http:/ready", backends=(
        Backend(address="10.0.0.1", ports=(UDP53, TCP80)), Backend(address="10.0.0.2", ports=(TCP80,)))),
        {("c1", WEB, "10.0.0.1"): ("http", 80, "/ready"), ("c1", WEB, "10.0.0.2"): ("http", 80, "/ready")},
        id="every-backend-first-tcp-port"),
])
def test_of_service(service, expected):
    assert targets.of_service(cluster="c1", view=service) == expected
