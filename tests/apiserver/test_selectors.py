"""labelSelector / fieldSelector parsing as the API server does it."""

from __future__ import annotations

import pytest

from fed_dns.apiserver.selectors import field_selector, label_selector
from fed_dns.apiserver.status import ApiError


def obj(labels=None, name="n", namespace="ns"):
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels or {}}}


@pytest.mark.parametrize("selector, labels, expected", [
    ("app=web", {"app": "web"}, True),
    ("app==web", {"app": "db"}, False),
    ("app!=web", {}, True),
    ("app in (web, db)", {"app": "db"}, True),
    ("app notin (web,db)", {"app": "db"}, False),
    ("app notin (web,db)", {}, True),
    ("app", {"app": ""}, True),
    ("!app", {"app": "x"}, False),
    ("app=web,tier in (a,b),!legacy", {"app": "web", "tier": "b"}, True),
    ("kubernetes.io/service-name=mysql", {"kubernetes.io/service-name": "mysql"}, True),
    ("", {"x": "y"}, True),
])
def test_label_selector(selector, labels, expected):
    match = label_selector(selector)
    assert (match is None or match(obj(labels))) is expected


def test_field_selector():
    match = field_selector("metadata.name=a,metadata.namespace!=kube-system")
    assert match(obj(name="a"))
    assert not match(obj(name="b"))
    assert not match(obj(name="a", namespace="kube-system"))
    assert field_selector(None) is None


@pytest.mark.parametrize("bad", ["a in b", "=x", "!a in (b)"])
def test_bad_label_selector_is_400(bad):
    with pytest.raises(ApiError) as exc:
        label_selector(bad)
    assert exc.value.code == 400


def test_bad_field_selector_is_400():
    with pytest.raises(ApiError) as exc:
        field_selector("metadata.name")
    assert exc.value.code == 400
