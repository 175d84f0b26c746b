"""service_view: export rules, publish modes, readiness and validation, as tables."""

from __future__ import annotations

import pytest

from fed_dns.model import Backend, Port, Publish, ServiceKey, ServiceView
from fed_dns.watch.parse import REASONS, Rejection, WatchOptions, service_view

HTTP = {"name": "http", "port": 80, "protocol": "TCP"}
EXPORT = {"fed-dns.io/export": "true"}


def svc(*, name="web", namespace="ns", type="ClusterIP", cluster_ip="10.0.0.1", cluster_ips=None,
        ports=(HTTP,), annotations=EXPORT, lb=(), external_name=None):
    spec = {"type": type, "ports": list(ports)}
    if type != "ExternalName":
        spec["clusterIP"] = cluster_ip
        spec["clusterIPs"] = list(cluster_ips) if cluster_ips else [cluster_ip]
    if external_name:
        spec["externalName"] = external_name
    return {"kind": "Service", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace, "annotations": dict(annotations)},
            "spec": spec, "status": {"loadBalancer": {"ingress": list(lb)}}}


def eps(*endpoints, ports=(HTTP,), address_type="IPv4", service="web"):
    """endpoints: (ip, ready, hostname); ready None leaves the condition out."""
    out = []
    for ip, ready, hostname in endpoints:
        e = {"addresses": [ip], "conditions": {} if ready is None else {"ready": ready}}
        if hostname:
            e["hostname"] = hostname
        out.append(e)
    return {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1", "addressType": address_type,
            "metadata": {"name": f"{service}-x", "namespace": "ns",
                         "labels": {"kubernetes.io/service-name": service}},
            "endpoints": out, "ports": list(ports)}


P80 = (Port(name="http", port=80),)
KEY = ServiceKey(namespace="ns", name="web")


def view(*backends, ready=True, probe=None):
    return ServiceView(key=KEY, backends=tuple(backends), ready=ready, probe=probe)


def b(address, hostname=None, ports=P80):
    return Backend(address=address, hostname=hostname, ports=ports)


CASES = {
    "clusterip-auto": (svc(), [eps(("10.1.0.1", True, None))], {}, view(b("10.0.0.1"))),
    "clusterip-no-ready-endpoint": (svc(), [eps(("10.1.0.1", False, None))], {}, view(b("10.0.0.1"), ready=False)),
    "clusterip-no-slices": (svc(), [], {}, view(b("10.0.0.1"), ready=False)),
    "ready-condition-missing-counts-as-ready": (svc(), [eps(("10.1.0.1", None, None))], {}, view(b("10.0.0.1"))),
    "dual-stack-clusterips": (svc(cluster_ips=["10.0.0.1", "fd00::1"]), [eps(("10.1.0.1", True, None))], {},
                              view(b("10.0.0.1"), b("fd00::1"))),
    "headless-auto-endpoints-with-hostnames": (
        svc(cluster_ip="None"),
        [eps(("10.1.0.2", True, "db-1"), ("10.1.0.1", True, "db-0"), ("10.1.0.3", False, "db-2"))], {},
        view(b("10.1.0.1", "db-0"), b("10.1.0.2", "db-1"))),
    "headless-dual-stack-slices": (
        svc(cluster_ip="None"),
        [eps(("10.1.0.1", True, "db-0")), eps(("fd00::7", True, "db-0"), address_type="IPv6")], {},
        view(b("10.1.0.1", "db-0"), b("fd00::7", "db-0"))),
    "headless-fqdn-slice-ignored": (
        svc(cluster_ip="None"), [eps(("x.example.com", True, None), address_type="FQDN")], {},
        view(ready=False)),
    "headless-no-ready": (svc(cluster_ip="None"), [eps(("10.1.0.1", False, None))], {}, view(ready=False)),
    "endpoints-port-union-across-slices": (
        svc(annotations={**EXPORT, "fed-dns.io/publish": "endpoints"}),
        [eps(("10.1.0.1", True, None)), eps(("10.1.0.1", True, None), ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])],
        {}, view(b("10.1.0.1", ports=(Port(name="dns", port=53, protocol="UDP"), Port(name="http", port=80))))),
    "loadbalancer-auto-ip-and-hostname": (
        svc(type="LoadBalancer", lb=[{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]),
        [eps(("10.1.0.1", True, None))], {}, view(b("203.0.113.9"), b("lb.example.com"))),
    "loadbalancer-pending": (svc(type="LoadBalancer"), [eps(("10.1.0.1", True, None))], {}, view()),
    "annotation-clusterip-on-lb": (
        svc(type="LoadBalancer", lb=[{"ip": "203.0.113.9"}], annotations={**EXPORT, "fed-dns.io/publish": "clusterip"}),
        [eps(("10.1.0.1", True, None))], {}, view(b("10.0.0.1"))),
    "option-endpoints": (svc(), [eps(("10.1.0.1", True, "h"))], {"publish": Publish.ENDPOINTS}, view(b("10.1.0.1", "h"))),
    "option-loadbalancer-on-clusterip-is-empty": (svc(), [eps(("10.1.0.1", True, None))],
                                                 {"publish": Publish.LOADBALANCER}, view()),
    "externalname-cname-always-ready": (svc(type="ExternalName", external_name="db.example.com.", ports=()), [], {},
                                        view(Backend(address="db.example.com"))),
    "probe-annotation": (svc(annotations={**EXPORT, "fed-dns.io/probe": " http:/healthz "}), [eps(("10.1.0.1", True, None))],
                         {}, view(b("10.0.0.1"), probe="http:/healthz")),
    "unnamed-port": (svc(ports=[{"port": 8080}]), [eps(("10.1.0.1", True, None))], {},
                     view(b("10.0.0.1", ports=(Port(name="", port=8080),)))),
}


@pytest.mark.parametrize(("service", "slices", "options", "expected"), CASES.values(), ids=CASES.keys())
def test_service_view(service, slices, options, expected):
    assert service_view(service=service, slices=slices, options=WatchOptions(**options)) == expected


EXPORTS = {
    "annotated": (EXPORT, "ns", {}, True),
    "annotated-in-excluded-namespace": (EXPORT, "kube-system", {}, True),
    "not-annotated": ({}, "ns", {}, False),
    "annotation-not-true": ({"fed-dns.io/export": "yes"}, "ns", {}, False),
    "annotation-upper-case-true": ({"fed-dns.io/export": "True"}, "ns", {}, True),
    "export-all": ({}, "ns", {"export_all": True}, True),
    "export-all-opt-out": ({"fed-dns.io/export": "false"}, "ns", {"export_all": True}, False),
    "export-all-default-excludes-kube-system": ({}, "kube-system", {"export_all": True}, False),
    "export-all-include-glob": ({}, "team-a", {"export_all": True, "include": ("team-*",)}, True),
    "export-all-include-glob-miss": ({}, "other", {"export_all": True, "include": ("team-*",)}, False),
    "export-all-exclude-glob": ({}, "team-a", {"export_all": True, "exclude": ("team-?",)}, False),
}


@pytest.mark.parametrize(("annotations", "namespace", "options", "exported"), EXPORTS.values(), ids=EXPORTS.keys())
def test_export_rules(annotations, namespace, options, exported):
    result = service_view(service=svc(namespace=namespace, annotations=annotations), slices=[],
                          options=WatchOptions(**options))
    assert (result is not None) == exported
    assert not isinstance(result, Rejection)


HEADLESS = {"cluster_ip": "None"}
LB = {"type": "LoadBalancer"}
EXT = {"type": "ExternalName", "ports": ()}

# (service, slices, reason code, words of the detail): the detail names the value, the code never does.
REJECTS = {
    "upper-case-service": (svc(name="Web"), [], "invalid-service-name", "upper case"),
    "64-char-service": (svc(name="a" * 64), [], "invalid-service-name", "longer than 63 bytes"),
    "upper-case-namespace": (svc(namespace="NS"), [], "invalid-namespace", "upper case"),
    "dot-in-service-port-name": (svc(ports=[{"name": "h.ttp", "port": 80}]), [], "invalid-port-name",
                                 "bad character '.': 'h.ttp'"),
    "dot-in-slice-port-name": (svc(**HEADLESS), [eps(("10.1.0.1", True, None), ports=[{"name": "a.b", "port": 1}])],
                               "invalid-port-name", "'a.b'"),
    "bad-hostname": (svc(**HEADLESS), [eps(("10.1.0.1", True, "Pod_0"))], "invalid-endpoint-hostname", "'Pod_0'"),
    "unknown-publish-mode": (svc(annotations={**EXPORT, "fed-dns.io/publish": "everything"}), [],
                             "invalid-publish-annotation", "'everything'"),
    # addresses of an IPv4/IPv6 slice: IPs of that family only (once written as a CNAME host)
    "hostname-in-ipv4-slice": (svc(**HEADLESS), [eps(("evil.attacker.example", True, None))],
                               "invalid-endpoint-address", "not an IPv4 address: 'evil.attacker.example'"),
    "octet-out-of-range": (svc(**HEADLESS), [eps(("10.1.0.1", True, None), ("999.1.1.1", True, None))],
                           "invalid-endpoint-address", "'999.1.1.1'"),
    "leading-zero-octet": (svc(**HEADLESS), [eps(("010.1.0.1", True, None))], "invalid-endpoint-address", "'010.1.0.1'"),
    "ipv6-in-ipv4-slice": (svc(**HEADLESS), [eps(("fd00::1", True, None))], "invalid-endpoint-address", "IPv4"),
    "ipv4-in-ipv6-slice": (svc(**HEADLESS), [eps(("10.1.0.1", True, None), address_type="IPv6")],
                           "invalid-endpoint-address", "not an IPv6 address"),
    "scoped-ipv6": (svc(**HEADLESS), [eps(("fe80::1%eth0", True, None), address_type="IPv6")],
                    "invalid-endpoint-address", "'fe80::1%eth0'"),
    "empty-string-address": (svc(**HEADLESS), [eps(("", True, None))], "invalid-endpoint-address", "''"),
    "not-ready-endpoint-checked-too": (svc(**HEADLESS), [eps(("10.1.0.1", True, None), ("x.example", False, None))],
                                       "invalid-endpoint-address", "'x.example'"),
    "bad-slice-of-a-clusterip-service": (svc(), [eps(("evil.attacker.example", True, None))],
                                         "invalid-endpoint-address", "evil"),
    "long-value-shortened": (svc(**HEADLESS), [eps(("a" * 5000, True, None))], "invalid-endpoint-address", "..."),
    # load-balancer ingress: `ip` an IP, `hostname` a DNS name
    "ingress-ip-is-a-name": (svc(**LB, lb=[{"ip": "evil.attacker.example"}]), [], "invalid-loadbalancer-ip",
                             "not an IP address: 'evil.attacker.example'"),
    "ingress-ip-out-of-range": (svc(**LB, lb=[{"ip": "203.0.113.9"}, {"ip": "999.1.1.1"}]), [],
                                "invalid-loadbalancer-ip", "'999.1.1.1'"),
    "ingress-ip-not-a-string": (svc(**LB, lb=[{"ip": 3}]), [], "invalid-loadbalancer-ip", "3"),
    "ingress-hostname-underscore": (svc(**LB, lb=[{"hostname": "lb_1.example.com"}]), [],
                                    "invalid-loadbalancer-hostname", "bad character '_'"),
    "ingress-hostname-empty-label": (svc(**LB, lb=[{"hostname": "lb..example.com"}]), [],
                                     "invalid-loadbalancer-hostname", "empty label"),
    "ingress-hostname-254-bytes": (svc(**LB, lb=[{"hostname": ".".join(["a" * 63] * 4)[:254]}]), [],
                                   "invalid-loadbalancer-hostname", "longer than 253 bytes"),
    "ingress-hostname-64-byte-label": (svc(**LB, lb=[{"hostname": "a" * 64 + ".example.com"}]), [],
                                       "invalid-loadbalancer-hostname", "longer than 63 bytes"),
    "ingress-hostname-slash": (svc(**LB, lb=[{"hostname": "a/b.example.com"}]), [],
                               "invalid-loadbalancer-hostname", "bad character '/'"),
    # ExternalName: a DNS name
    "externalname-space": (svc(**EXT, external_name="db example.com"), [], "invalid-external-name", "' '"),
    "externalname-leading-hyphen": (svc(**EXT, external_name="-db.example.com"), [], "invalid-external-name",
                                    "hyphen"),
    "externalname-only-a-dot": (svc(**EXT, external_name="."), [], "invalid-external-name", "empty name"),
    "externalname-wildcard": (svc(**EXT, external_name="*.example.com"), [], "invalid-external-name", "'*'"),
    # clusterIPs: IPs
    "clusterip-is-a-name": (svc(cluster_ip="evil.attacker.example"), [], "invalid-cluster-ip", "evil"),
    "second-clusterip-bad": (svc(cluster_ips=["10.0.0.1", "fd00::1::2"]), [], "invalid-cluster-ip", "'fd00::1::2'"),
}


@pytest.mark.parametrize(("service", "slices", "reason", "detail"), REJECTS.values(), ids=REJECTS.keys())
def test_rejections(service, slices, reason, detail):
    result = service_view(service=service, slices=slices, options=WatchOptions(), cluster="c1")
    meta = service["metadata"]
    assert isinstance(result, Rejection)
    assert (result.cluster, result.kind, result.name, result.reason) == (
        "c1", "Service", f"{meta['namespace']}/{meta['name']}", reason)
    assert reason in REASONS
    assert detail in result.detail
    assert len(result.detail) < 200


ACCEPTED = {
    "ingress-hostname-upper-case-and-dot": (svc(**LB, lb=[{"hostname": "LB.Example.com."}]), [],
                                            view(b("lb.example.com"), ready=False)),
    "ingress-ip-wins-over-hostname": (svc(**LB, lb=[{"ip": "203.0.113.9", "hostname": "not a name"}]), [],
                                      view(b("203.0.113.9"), ready=False)),
    "ingress-ipv6": (svc(**LB, lb=[{"ip": "2001:db8::1"}]), [], view(b("2001:db8::1"), ready=False)),
    "ingress-hostname-253-bytes": (svc(**LB, lb=[{"hostname": ".".join(["a" * 63] * 4)[:253]}]), [],
                                   view(b(".".join(["a" * 63] * 4)[:253]), ready=False)),
    "externalname-digits-and-hyphens": (svc(**EXT, external_name="db-1.0.example.com"), [],
                                        view(Backend(address="db-1.0.example.com"))),
    "ipv6-slice-canonical-forms": (svc(**HEADLESS), [eps(("fd00:0::7", True, None), address_type="IPv6")],
                                   view(b("fd00:0::7"))),
    "fqdn-slice-not-published-not-checked": (svc(**HEADLESS), [eps(("Not A Name", True, None), address_type="FQDN")],
                                             view(ready=False)),
}


@pytest.mark.parametrize(("service", "slices", "expected"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_valid_names_and_addresses_are_published(service, slices, expected):
    assert service_view(service=service, slices=slices, options=WatchOptions()) == expected


def test_reason_codes_are_a_fixed_set_of_plain_codes():
    assert all(code.startswith("invalid-") and code.replace("-", "").isalpha() for code in REASONS)


def test_unexported_hostile_names_are_not_rejections():
    assert service_view(service=svc(name="BAD", annotations={}), slices=[], options=WatchOptions()) is None


def test_options_are_frozen_with_documented_defaults():
    o = WatchOptions()
    assert (o.publish, o.export_all, o.include, o.exclude) == (Publish.AUTO, False, ("*",), ("kube-system",))
    assert (o.inactivity_timeout, o.backoff_initial, o.backoff_max, o.bookmarks) == (60.0, 0.5, 30.0, True)
    with pytest.raises(AttributeError):
        o.publish = Publish.CLUSTERIP  # type: ignore[misc]
