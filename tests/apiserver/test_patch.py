"""Patch bodies: JSON merge patch, strategic merge (as kubectl apply sends it), JSON patch."""

from __future__ import annotations

import pytest

from fed_dns.apiserver import patch
from fed_dns.apiserver.status import ApiError

SVC = {"metadata": {"name": "s", "labels": {"a": "1", "b": "2"}},
       "spec": {"ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53}],
                "selector": {"app": "s"}}}


@pytest.mark.parametrize("body, expected", [
    ({"metadata": {"labels": {"a": None}}}, {"b": "2"}),
    ({"metadata": {"labels": {"c": "3"}}}, {"a": "1", "b": "2", "c": "3"}),
    ({"metadata": {"labels": None}}, None),
], ids=["null-deletes", "adds", "drops-map"])
def test_merge_patch_labels(body, expected):
    out = patch.apply(content_type="application/merge-patch+json", target=SVC, body=body)
    assert out["metadata"].get("labels") == expected
    assert SVC["metadata"]["labels"] == {"a": "1", "b": "2"}  # target untouched


def test_merge_patch_replaces_lists():
    out = patch.merge_patch(SVC, {"spec": {"ports": [{"port": 443}]}})
    assert out["spec"]["ports"] == [{"port": 443}]


def test_strategic_merges_lists_on_their_key_and_honours_directives():
    # What kubectl apply sends when a port changes (recorded with kubectl -v=8).
    body = {"spec": {"$setElementOrder/ports": [{"port": 53}, {"port": 8080}],
                     "ports": [{"name": "http2", "port": 8080}, {"$patch": "delete", "port": 80}]}}
    out = patch.apply(content_type="application/strategic-merge-patch+json; charset=utf-8",
                      target=SVC, body=body)
    assert out["spec"]["ports"] == [{"name": "dns", "port": 53}, {"name": "http2", "port": 8080}]
    merged = patch.strategic_merge_patch(SVC, {"spec": {"ports": [{"port": 53, "protocol": "UDP"}]}})
    assert merged["spec"]["ports"][1] == {"name": "dns", "port": 53, "protocol": "UDP"}
    replaced = patch.strategic_merge_patch(SVC, {"spec": {"$patch": "replace", "type": "X"}})
    assert replaced["spec"] == {"type": "X"}
    retained = patch.strategic_merge_patch(SVC, {"spec": {"$retainKeys": ["ports"], "type": "Y"}})
    assert set(retained["spec"]) == {"ports"}


def test_strategic_atomic_lists_are_replaced():
    es = {"endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]}
    out = patch.strategic_merge_patch(es, {"ports": [{"port": 81}]}, atomic_lists=True)
    assert out["ports"] == [{"port": 81}]


def test_strategic_primitive_merge_list_and_delete_from_it():
    obj = {"metadata": {"finalizers": ["a", "b"]}}
    out = patch.strategic_merge_patch(obj, {"metadata": {"finalizers": ["c"]}})
    assert out["metadata"]["finalizers"] == ["a", "b", "c"]
    out = patch.strategic_merge_patch(obj, {"metadata": {"$deleteFromPrimitiveList/finalizers":
                                                         ["a"]}})
    assert out["metadata"]["finalizers"] == ["b"]


def test_json_patch_operations():
    ops = [
        {"op": "add", "path": "/spec/ports/0", "value": {"port": 1}},
        {"op": "remove", "path": "/spec/ports/2"},
        {"op": "replace", "path": "/metadata/labels/a", "value": "9"},
        {"op": "move", "from": "/metadata/labels/b", "path": "/metadata/labels/moved"},
        {"op": "copy", "from": "/spec/selector", "path": "/metadata/annotations"},
        {"op": "add", "path": "/metadata/labels/x~1y", "value": "slash"},
        {"op": "test", "path": "/metadata/name", "value": "s"},
    ]
    out = patch.apply(content_type="application/json-patch+json", target=SVC, body=ops)
    assert [p["port"] for p in out["spec"]["ports"]] == [1, 80]
    assert out["metadata"]["labels"] == {"a": "9", "moved": "2", "x/y": "slash"}
    assert out["metadata"]["annotations"] == {"app": "s"}


@pytest.mark.parametrize("ops, code", [
    ([{"op": "test", "path": "/metadata/name", "value": "other"}], 422),
    ([{"op": "remove", "path": "/nope/x"}], 422),
    ([{"op": "frobnicate", "path": "/a"}], 400),
    ({"op": "add"}, 400),
], ids=["test-fails", "missing-path", "unknown-op", "not-a-list"])
def test_json_patch_errors(ops, code):
    with pytest.raises(ApiError) as exc:
        patch.json_patch(SVC, ops)
    assert exc.value.code == code


def test_unsupported_patch_type_is_415():
    with pytest.raises(ApiError) as exc:
        patch.apply(content_type="application/apply-patch+yaml", target=SVC, body={})
    assert exc.value.code == 415
