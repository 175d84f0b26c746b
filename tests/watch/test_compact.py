"""The compact path (compact.py + decide.py + the index) against the definition, parse.service_view.

The watcher parses each object once into its compact form and decides from those; these
tests hold that to give what `parse.service_view` gives on the raw objects: the tables of
test_parse, random hostile objects (hypothesis), and random event sequences through the index.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fed_dns.model import Port, Publish, ServiceKey
from fed_dns.watch import decide, parse, stream
from fed_dns.watch.compact import ENDPOINT_SLICES, SERVICES, Malformed, parse_object
from fed_dns.watch.index import ClusterObjects
from fed_dns.watch.parse import SERVICE_NAME_LABEL, WatchOptions, service_view
from tests.watch import test_parse as tables


def compact_view(service, slices, options, cluster=""):
    return decide.service_view(service=parse_object(kind=SERVICES, obj=service),
                               slices=[parse_object(kind=ENDPOINT_SLICES, obj=s) for s in slices],
                               options=options, cluster=cluster)


# -- the tables of test_parse ------------------------------------------------------------------

@pytest.mark.parametrize(("service", "slices", "options", "expected"), tables.CASES.values(), ids=tables.CASES.keys())
def test_publish_modes_and_readiness_table(service, slices, options, expected):
    assert compact_view(service, slices, WatchOptions(**options)) == expected


@pytest.mark.parametrize(("annotations", "namespace", "options", "exported"), tables.EXPORTS.values(),
                         ids=tables.EXPORTS.keys())
def test_export_rules_table(annotations, namespace, options, exported):
    service = tables.svc(namespace=namespace, annotations=annotations)
    assert compact_view(service, [], WatchOptions(**options)) == service_view(
        service=service, slices=[], options=WatchOptions(**options))
    assert (compact_view(service, [], WatchOptions(**options)) is not None) == exported


@pytest.mark.parametrize(("service", "slices", "reason", "words"), tables.REJECTS.values(), ids=tables.REJECTS.keys())
def test_rejections_table(service, slices, reason, words):
    got = compact_view(service, slices, WatchOptions(), cluster="c1")
    assert got == service_view(service=service, slices=slices, options=WatchOptions(), cluster="c1")
    assert got.reason == reason and words in got.detail


@pytest.mark.parametrize(("service", "slices", "expected"), tables.ACCEPTED.values(), ids=tables.ACCEPTED.keys())
def test_accepted_table(service, slices, expected):
    assert compact_view(service, slices, WatchOptions()) == expected


# -- which flaw wins, and what is never read: the definition's order, case by case --------------

svc, eps, b, view = tables.svc, tables.eps, tables.b, tables.view
BAD_PORT = [{"name": "a.b", "port": 1}]
DNS = {"name": "dns", "port": 53, "protocol": "UDP"}
AS_ENDPOINTS = {**tables.EXPORT, "fed-dns.io/publish": "endpoints"}
RULES = {  # service, slices, reason (None: published) and a word of the detail
    "ready-reads-the-first-ready-slices-ports": (svc(), [eps(("10.1.0.1", True, None), ports=BAD_PORT)],
                                                "invalid-port-name", "a.b"),
    "ready-reads-no-later-slice": (svc(), [eps(("10.1.0.1", True, None)), eps(("10.1.0.2", True, None), ports=BAD_PORT)],
                                   None, ""),
    "ports-of-a-slice-without-ready-endpoints-unread": (svc(annotations=AS_ENDPOINTS),
                                                        [eps(("10.1.0.1", False, None), ports=BAD_PORT)], None, ""),
    "names-before-addresses": (svc(name="Web"), [eps(("x.example", True, None))], "invalid-service-name", ""),
    "publish-before-addresses": (svc(annotations={**tables.EXPORT, "fed-dns.io/publish": "x"}),
                                 [eps(("x.example", True, None))], "invalid-publish-annotation", ""),
    "first-slices-bad-address-wins": (svc(), [eps(("a.example", True, None)), eps(("b.example", True, None))],
                                      "invalid-endpoint-address", "a.example"),
    "addresses-before-cluster-ips": (svc(cluster_ip="c.example"), [eps(("a.example", True, None))],
                                     "invalid-endpoint-address", "a.example"),
    "cluster-ips-unread-in-endpoints-mode": (svc(cluster_ip="c.example", annotations=AS_ENDPOINTS),
                                             [eps(("10.1.0.1", True, None))], None, ""),
    "ingress-unread-in-clusterip-mode": (svc(lb=[{"ip": "x"}]), [], None, ""),
    "addresses-before-ports": (svc(ports=BAD_PORT, cluster_ip="c.example"), [], "invalid-cluster-ip", ""),
    "external-name-before-its-ports": (svc(type="ExternalName", external_name="a_b", ports=BAD_PORT), [],
                                       "invalid-external-name", ""),
    "external-name-reads-no-slice": (svc(type="ExternalName", external_name="db.example.com"),
                                     [eps(("x.example", True, None))], None, ""),
    "a-slices-ports-before-its-hostnames": (svc(annotations=AS_ENDPOINTS),
                                            [eps(("10.1.0.1", True, "Bad_0"), ports=BAD_PORT)], "invalid-port-name", ""),
    "an-earlier-slices-hostname-before-a-later-slices-ports": (
        svc(annotations=AS_ENDPOINTS), [eps(("10.1.0.1", True, "Bad_0")), eps(("10.1.0.2", True, None), ports=BAD_PORT)],
        "invalid-endpoint-hostname", "Bad_0"),
    "a-not-ready-endpoints-hostname-unread": (svc(annotations=AS_ENDPOINTS),
                                              [eps(("10.1.0.1", True, None), ("10.1.0.2", False, "Bad_0"))], None, ""),
}


@pytest.mark.parametrize(("service", "slices", "reason", "word"), RULES.values(), ids=RULES.keys())
def test_which_flaw_wins_and_what_is_never_read(service, slices, reason, word):
    got = compact_view(service, slices, WatchOptions(), cluster="c1")
    assert got == service_view(service=service, slices=slices, options=WatchOptions(), cluster="c1")
    assert getattr(got, "reason", None) == reason and word in getattr(got, "detail", "")


def test_an_address_in_several_slices_gets_their_ports_and_its_first_hostname():
    slices = [eps(("10.1.0.1", True, None)), eps(("10.1.0.1", True, "db-0"), ports=[DNS]),
              eps(("10.1.0.1", True, "db-1"))]
    expected = view(b("10.1.0.1", "db-0", ports=(Port(name="dns", port=53, protocol="UDP"), *tables.P80)))
    assert compact_view(svc(annotations=AS_ENDPOINTS), slices, WatchOptions()) == expected


def test_the_slice_that_changed_last_is_read_last():
    index = ClusterObjects()
    index.apply(kind=SERVICES, type="ADDED", obj=parse_object(kind=SERVICES, obj=svc()))
    for name, address in (("s1", "a.example"), ("s2", "b.example"), ("s1", "c.example")):
        raw = eps((address, True, None))
        raw["metadata"]["name"] = name
        index.apply(kind=ENDPOINT_SLICES, type="MODIFIED", obj=parse_object(kind=ENDPOINT_SLICES, obj=raw))
    got = index.view_of(key=tables.KEY, options=WatchOptions(), cluster="c1")
    assert "b.example" in got.detail  # s1 changed after s2: s2's flaw is read first


# -- random objects: hostile values in the API's types -----------------------------------------

def mostly(valid: list, hostile: list) -> st.SearchStrategy:
    """One of `valid` five times in six, else one of `hostile`: most objects then have no
    flaw or one, so the rules of which flaw wins and what is never read get exercised."""
    return st.integers(0, 5).flatmap(lambda n: st.sampled_from(valid if n else hostile))


LABELS = mostly(["ns", "web", "db-0", "team-a", "kube-system"], ["", "NS", "a" * 64, "-x", "a_b", "é"])
V4, V6 = ["10.1.0.1", "10.1.0.2", "10.1.0.3"], ["fd00::7", "fd00:0::7", "::"]
HOSTILE = ["999.1.1.1", "010.1.0.1", "x.example", "", "fe80::1%eth0", "1.2.3.4.5", "10.1.0.1 "]
ADDRESSES = mostly(V4 + V6, HOSTILE)
DNS_NAMES = mostly(["db.example.com.", "DB.Example.com", ".".join(["a" * 63] * 4)[:253]],
                  ["lb_1.example.com", "x..y", "a" * 300, "", ".", "-a.b"])
MODES = mostly(["auto", "endpoints", " Endpoints ", "clusterip", "loadbalancer"], ["everything", ""])
HOSTNAMES = mostly(["db-0", "db-1", ""], ["Pod_0", "a" * 64])


def optional(fields: dict) -> st.SearchStrategy[dict]:
    """Dicts with any subset of `fields` (name -> strategy)."""
    return st.fixed_dictionaries({}, optional=fields)


PORTS = st.lists(optional({"name": mostly(["", "http", "dns"], ["h.ttp", "HTTP"]),
                           "port": st.one_of(st.none(), st.sampled_from([53, 80, 8080])),
                           "protocol": st.sampled_from(["TCP", "UDP", ""])}), max_size=3)
ANNOTATIONS = st.fixed_dictionaries(
    {"fed-dns.io/export": mostly(["true", "True", " TRUE "], ["false", "yes", ""])},
    optional={"fed-dns.io/publish": MODES, "fed-dns.io/probe": st.sampled_from(["tcp", " http:/healthz ", "", " "]),
              "other": st.text(max_size=5)})
INGRESS = optional({"ip": st.one_of(ADDRESSES, st.integers(0, 5)), "hostname": st.one_of(DNS_NAMES, st.none())})


@st.composite
def services(draw, *, name=LABELS, namespace=LABELS):
    meta = draw(optional({"namespace": namespace, "resourceVersion": st.just("7")}))
    meta["name"], meta["annotations"] = draw(name), draw(ANNOTATIONS)
    spec = draw(optional({"type": st.sampled_from(["ClusterIP", "LoadBalancer", "ExternalName", "NodePort", ""]),
                          "clusterIP": st.one_of(ADDRESSES, st.just("None")),
                          "clusterIPs": st.lists(st.one_of(ADDRESSES, st.just("None")), max_size=3),
                          "ports": PORTS, "externalName": st.one_of(DNS_NAMES, st.integers(0, 3))}))
    status = draw(optional({"loadBalancer": optional({"ingress": st.lists(INGRESS, max_size=3)})}))
    return {"metadata": meta, "spec": spec, "status": status}


def endpoints(addresses: st.SearchStrategy) -> st.SearchStrategy[list]:
    return st.lists(optional({"addresses": st.lists(addresses, max_size=2),
                              "conditions": optional({"ready": st.one_of(st.booleans(), st.none()),
                                                      "serving": st.booleans()}),
                              "hostname": HOSTNAMES}), max_size=4)


@st.composite
def slices(draw, *, names=st.sampled_from(["s1", "s2", "s3"]), owners=st.sampled_from(["web", "db", ""])):
    labels = draw(optional({SERVICE_NAME_LABEL: owners, "other": st.just("x")}))
    meta = {"name": draw(names), "namespace": "ns", "labels": labels, "resourceVersion": draw(st.sampled_from("123"))}
    family = draw(st.sampled_from(["IPv4", "IPv6", "FQDN", "Bogus", None]))
    addresses = mostly(V6 if family == "IPv6" else V4, HOSTILE + (V4 if family == "IPv6" else V6))
    body = draw(optional({"ports": PORTS, "endpoints": endpoints(addresses)}))
    return {"metadata": meta, **body, **({"addressType": family} if family else {})}


OPTIONS = st.builds(WatchOptions, publish=st.sampled_from(list(Publish)), export_all=st.booleans(),
                    include=st.sampled_from([("*",), ("team-*",), ("ns", "web")]),
                    exclude=st.sampled_from([("kube-system",), ("team-?",), ()]))


@settings(max_examples=400, deadline=None)
@given(service=services(), slices=st.lists(slices(), max_size=4), options=OPTIONS)
def test_compact_path_gives_what_the_definition_gives(service, slices, options):
    expected = service_view(service=service, slices=slices, options=options, cluster="c1")
    event(type(expected).__name__)
    assert compact_view(service, slices, options, cluster="c1") == expected


# -- random objects: anything where a field should be ------------------------------------------

JUNK = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.floats(allow_nan=False),
                              st.text(max_size=3)),
                    lambda inner: st.one_of(st.lists(inner, max_size=2), st.dictionaries(st.text(max_size=2), inner,
                                                                                       max_size=2)), max_leaves=4)


def paths(value, here: tuple = ()) -> list[tuple]:
    """Every node's path (dict keys and list indexes) in `value`, itself first."""
    out = [here]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        out += paths(child, (*here, key))
    return out


def replaced(value, path: tuple, new):
    """`value` with the node at `path` replaced by `new` (copies along the path)."""
    if not path:
        return new
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = replaced(value[head], tuple(rest), new)
    return copy


def outcome(fn):
    try:
        return "value", fn()
    except Exception as exc:  # noqa: BLE001 - the kind of failure is compared
        return "raises", type(exc).__name__


@settings(max_examples=400, deadline=None)
@given(service=services(), slices=st.lists(slices(), max_size=2), options=OPTIONS, data=st.data())
def test_objects_of_the_wrong_shape_are_malformed_or_decided_as_the_definition_does(service, slices, options, data):
    objects = [service, *slices]
    n = data.draw(st.integers(0, len(objects) - 1))
    objects[n] = replaced(objects[n], data.draw(st.sampled_from(paths(objects[n]))), data.draw(JUNK))
    service, *slices = objects
    try:
        compact = [parse_object(kind=SERVICES, obj=service),
                   *(parse_object(kind=ENDPOINT_SLICES, obj=s) for s in slices)]
    except Malformed:
        event("malformed")
        return  # the stream reports it: an error of that member
    expected = outcome(lambda: service_view(service=service, slices=slices, options=options, cluster="c1"))
    event(f"accepted, the definition: {expected[0] if expected[0] == 'raises' else type(expected[1]).__name__}")
    assert outcome(lambda: decide.service_view(service=compact[0], slices=compact[1:], options=options,
                                               cluster="c1")) == expected


def test_a_malformed_object_is_a_stream_error_that_names_no_value():
    line = b'{"type": "ADDED", "object": {"metadata": {"name": "web"}, "spec": {"ports": [{"port": "secret"}]}}}'
    with pytest.raises(stream.StreamError, match=r"^watch: a services object is malformed \(ValueError\)$"):
        stream._event(line, SERVICES)
    with pytest.raises(stream.StreamError, match="malformed"):
        stream._event(b'{"type": "MODIFIED", "object": ["not", "an", "object"]}', ENDPOINT_SLICES)
    assert stream._event(b'{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}', SERVICES) == (
        "BOOKMARK", {"metadata": {"resourceVersion": "9"}})


# -- random event sequences through the index ----------------------------------------------------

class Reference:
    """The index as it was: raw objects, slices in the order they last changed."""

    def __init__(self) -> None:
        self.services: dict[ServiceKey, dict] = {}
        self.slices: dict[tuple[str, str], dict] = {}

    @staticmethod
    def owner(obj: dict) -> ServiceKey | None:
        name = (obj["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
        return ServiceKey(namespace=obj["metadata"]["namespace"], name=name) if name else None

    def apply(self, kind: str, type_: str, obj: dict) -> set[ServiceKey]:
        meta = obj["metadata"]
        if kind == SERVICES:
            key = ServiceKey(namespace=meta.get("namespace") or "", name=meta["name"])
            self.services.pop(key, None)
            if type_ != "DELETED":
                self.services[key] = obj
            return {key}
        old = self.slices.pop((meta["namespace"], meta["name"]), None)
        if type_ != "DELETED":
            self.slices[(meta["namespace"], meta["name"])] = obj
        return {k for k in (old and self.owner(old), None if type_ == "DELETED" else self.owner(obj)) if k}

    def view(self, key: ServiceKey, options: WatchOptions):
        if key not in self.services:
            return None
        return service_view(service=self.services[key], slices=[s for s in self.slices.values() if self.owner(s) == key],
                            options=options, cluster="c1")


EVENTS = st.lists(st.one_of(
    st.tuples(st.just(SERVICES), st.sampled_from(["ADDED", "MODIFIED", "DELETED"]),
              services(name=st.sampled_from(["web", "db"]), namespace=st.just("ns"))),
    st.tuples(st.just(ENDPOINT_SLICES), st.sampled_from(["ADDED", "MODIFIED", "DELETED"]), slices()),
    st.tuples(st.just("relist"), st.just(""), st.lists(slices(), max_size=3))), max_size=12)


@settings(max_examples=200, deadline=None)
@given(events=EVENTS, options=OPTIONS)
def test_index_of_compact_objects_follows_the_raw_index(events, options):
    index, reference = ClusterObjects(), Reference()
    for kind, type_, obj in events:
        if kind == "relist":  # the reference re-lists as the index does: changed rv or no rv
            compact = [parse_object(kind=ENDPOINT_SLICES, obj=s) for s in obj]
            fresh = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in obj}
            expected = set()
            for ident in [i for i in reference.slices if i not in fresh]:
                expected |= reference.apply(ENDPOINT_SLICES, "DELETED", reference.slices[ident])
            for ident, s in fresh.items():
                old = reference.slices.get(ident)
                if old is None or old["metadata"]["resourceVersion"] != s["metadata"]["resourceVersion"]:
                    expected |= reference.apply(ENDPOINT_SLICES, "MODIFIED", s)
            assert index.replace(kind=ENDPOINT_SLICES, objects=compact) == expected
        else:
            got = index.apply(kind=kind, type=type_, obj=parse_object(kind=kind, obj=obj))
            assert got == reference.apply(kind, type_, obj)
        for name in ("web", "db", "other"):
            key = ServiceKey(namespace="ns", name=name)
            assert index.view_of(key=key, options=options, cluster="c1") == reference.view(key, options)
