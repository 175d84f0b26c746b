"""The pure parts under the watcher: backoff, the object index and its re-list diff, errors."""

from __future__ import annotations

import kubernetes.client
import pytest
import urllib3

from fed_dns.model import ServiceKey
from fed_dns.watch import backoff, stream
from fed_dns.watch.compact import CompactService, CompactSlice, parse_object
from fed_dns.watch.index import ENDPOINT_SLICES, SERVICES, ClusterObjects
from fed_dns.watch.parse import WatchOptions

BACKOFF = {
    "first-no-jitter": (0, 0.0, 0.25),
    "first-full-jitter": (0, 0.999999, 0.5),
    "third": (2, 0.0, 1.0),
    "capped": (10, 0.999999, 30.0),
    "huge-attempt-capped": (10_000, 0.0, 15.0),
}


@pytest.mark.parametrize(("attempt", "jitter", "expected"), BACKOFF.values(), ids=BACKOFF.keys())
def test_backoff(attempt, jitter, expected):
    assert backoff.delay(attempt=attempt, initial=0.5, maximum=30.0, jitter=jitter) == pytest.approx(expected)


def raw_svc(name, rv, namespace="ns"):
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": rv,
                         "annotations": {"fed-dns.io/export": "true"}},
            "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}}


def raw_eps(name, service, rv, ready=True):
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"port": 80}],
            "endpoints": [{"addresses": ["10.1.0.1"], "conditions": {"ready": ready}}]}


def svc(name, rv, namespace="ns"):
    return parse_object(kind=SERVICES, obj=raw_svc(name, rv, namespace))


def eps(name, service, rv, ready=True):
    return parse_object(kind=ENDPOINT_SLICES, obj=raw_eps(name, service, rv, ready))


def key(name):
    return ServiceKey(namespace="ns", name=name)


def test_slice_events_touch_their_service_and_a_relabelled_slice_touches_both():
    objs = ClusterObjects()
    assert objs.apply(kind=SERVICES, type="ADDED", obj=svc("a", "1")) == {key("a")}
    assert objs.apply(kind=ENDPOINT_SLICES, type="ADDED", obj=eps("s1", "a", "2")) == {key("a")}
    assert objs.view_of(key=key("a"), options=WatchOptions(), cluster="c").ready
    assert objs.apply(kind=ENDPOINT_SLICES, type="MODIFIED", obj=eps("s1", "b", "3")) == {key("a"), key("b")}
    assert not objs.view_of(key=key("a"), options=WatchOptions(), cluster="c").ready
    assert objs.apply(kind=ENDPOINT_SLICES, type="DELETED", obj=eps("s1", "b", "4")) == {key("b")}
    assert objs.view_of(key=key("gone"), options=WatchOptions(), cluster="c") is None


def test_relist_diff_deletes_what_is_gone_and_touches_only_changes():
    objs = ClusterObjects()
    objs.replace(kind=SERVICES, objects=[svc("a", "1"), svc("b", "2"), svc("c", "3")])
    objs.replace(kind=ENDPOINT_SLICES, objects=[eps("a-1", "a", "4"), eps("b-1", "b", "5")])
    assert objs.replace(kind=SERVICES, objects=[svc("a", "1"), svc("c", "9"), svc("d", "10")]) == {
        key("b"), key("c"), key("d")}
    assert set(objs.services) == {key("a"), key("c"), key("d")}
    assert objs.replace(kind=ENDPOINT_SLICES, objects=[eps("a-1", "a", "4")]) == {key("b")}
    assert set(objs.slices) == {("ns", "a-1")}


def test_compact_forms_keep_what_parsing_reads():
    full = dict(raw_svc("a", "1"), status={"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}, "conditions": []})
    full["metadata"]["managedFields"] = [{"manager": "x"}]
    full["spec"]["sessionAffinity"] = "None"
    small = parse_object(kind=SERVICES, obj=full)
    assert isinstance(small, CompactService) and not hasattr(small, "__dict__")
    assert (small.ingress, small.cluster_ips, small.resource_version) == (("1.2.3.4",), ("10.0.0.1",), "1")
    e = raw_eps("s", "a", "1")
    e["endpoints"][0]["nodeName"] = "n1"
    e["endpoints"].append({"addresses": ["10.1.0.2"], "conditions": {"ready": False}})
    small = parse_object(kind=ENDPOINT_SLICES, obj=e)
    assert isinstance(small, CompactSlice) and small.service == "a"
    assert (small.ready, small.hostnames) == (("10.1.0.1",), None)  # the ready ones


def test_equal_ports_and_names_are_shared_between_objects():
    one, two = svc("web-service", "1"), svc("web-service", "2")
    assert one.ports is two.ports and one.key.name is two.key.name
    assert eps("a-1", "a", "1").ports is eps("b-1", "b", "1").ports


def _raising(status):
    def method(**_):
        raise kubernetes.client.ApiException(status=status, reason="x")
    return method


def test_http_410_is_gone_and_other_statuses_are_stream_errors():
    with pytest.raises(stream.Gone):
        stream._request(_raising(410), {})
    with pytest.raises(stream.StreamError, match="HTTP 403"):
        stream._request(_raising(403), {})


DESCRIBE = {
    "refused": (urllib3.exceptions.MaxRetryError(None, "/api/v1/services", reason=urllib3.exceptions.NewConnectionError(
        None, "Failed to establish a new connection: [Errno 111] Connection refused")),
        "NewConnectionError: [Errno 111] Connection refused"),
    "stream-error": (stream.StreamError("no event or bookmark for 60s"), "no event or bookmark for 60s"),
    "other": (ValueError("boom"), "ValueError: boom"),
}


@pytest.mark.parametrize(("exc", "text"), DESCRIBE.values(), ids=DESCRIBE.keys())
def test_describe(exc, text):
    assert stream.describe(exc) == text
