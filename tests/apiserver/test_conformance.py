"""One conformance table for both stores (memory, etcd): what kube-apiserver's storage
guarantees and the handlers rely on."""

from __future__ import annotations

import pytest

from fed_dns.apiserver.selectors import both, field_selector, label_selector
from fed_dns.apiserver.status import ApiError
from fed_dns.apiserver.storage import GENERATED_ALPHABET
from tests.apiserver.conftest import CONFIG_MAP, DEPLOYMENT, NAMESPACE, events


def cm(name: str, *, ns: str = "default", labels: dict | None = None, data: dict | None = None,
       rv: str | None = None) -> dict:
    meta: dict = {"name": name, "namespace": ns, "labels": labels or {}}
    if rv:
        meta["resourceVersion"] = rv
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {}}


def deploy(name: str, *, replicas: int = 1, rv: str | None = None, status: dict | None = None) \
        -> dict:
    obj = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}}}
    if rv:
        obj["metadata"]["resourceVersion"] = rv
    if status is not None:
        obj["status"] = status
    return obj


async def test_create_then_get_fills_metadata(backend):
    s = backend.storage
    created = await s.create(CONFIG_MAP, cm("a", data={"k": "v"}))
    meta = created.obj["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and meta["generation"] == 1
    got = await s.get(CONFIG_MAP, namespace="default", name="a")
    assert got.obj == created.obj
    assert int(meta["resourceVersion"]) > 0
    with pytest.raises(ApiError) as exc:
        await s.create(CONFIG_MAP, cm("a"))
    assert (exc.value.code, exc.value.status["reason"]) == (409, "AlreadyExists")
    assert await s.get(CONFIG_MAP, namespace="other", name="a") is None


async def test_cluster_scoped_kind(backend):
    s = backend.storage
    await s.create(NAMESPACE, {"metadata": {"name": "team-a", "namespace": "ignored"}})
    got = await s.get(NAMESPACE, namespace="", name="team-a")
    assert "namespace" not in got.obj["metadata"]
    assert [x.obj["metadata"]["name"] for x in
            (await s.list(NAMESPACE, namespace=None, matcher=None)).items] == ["team-a"]


SELECTORS = [
    pytest.param("tier=web", None, ["a", "c"], id="label-equals"),
    pytest.param("tier!=web", None, ["b", "d"], id="label-not-equals"),
    pytest.param("tier in (db,cache)", None, ["b"], id="label-set"),
    pytest.param("!tier", None, ["d"], id="label-absent"),
    pytest.param(None, "metadata.name=c", ["c"], id="field-name"),
    pytest.param("tier=web", "metadata.namespace=default", ["a"], id="label-and-field"),
]


@pytest.mark.parametrize(("labels", "fields", "expected"), SELECTORS)
async def test_list_with_selectors(backend, labels, fields, expected):
    s = backend.storage
    await s.create(CONFIG_MAP, cm("a", labels={"tier": "web"}))
    await s.create(CONFIG_MAP, cm("b", labels={"tier": "db"}))
    await s.create(CONFIG_MAP, cm("c", ns="prod", labels={"tier": "web"}))
    await s.create(CONFIG_MAP, cm("d"))
    listing = await s.list(CONFIG_MAP, namespace=None,
                           matcher=both(label_selector(labels), field_selector(fields)))
    assert sorted(x.obj["metadata"]["name"] for x in listing.items) == expected


async def test_list_one_namespace(backend):
    s = backend.storage
    await s.create(CONFIG_MAP, cm("a"))
    await s.create(CONFIG_MAP, cm("a", ns="prod"))
    listing = await s.list(CONFIG_MAP, namespace="prod", matcher=None)
    assert [x.obj["metadata"]["namespace"] for x in listing.items] == ["prod"]


@pytest.mark.parametrize("limit", [1, 2, 3, 7], ids=lambda n: f"limit-{n}")
async def test_list_pages(backend, limit):
    s = backend.storage
    names = [f"cm-{i}" for i in range(7)]
    for name in names:
        await s.create(CONFIG_MAP, cm(name, labels={"odd": str(int(name[-1]) % 2)}))
    seen, after, revision, pages = [], None, None, 0
    while True:
        listing = await s.list(CONFIG_MAP, namespace="default", matcher=None, after=after,
                               limit=limit, revision=revision)
        pages += 1
        assert len(listing.items) <= limit
        seen += [x.obj["metadata"]["name"] for x in listing.items]
        revision = revision or listing.revision
        assert listing.revision == revision
        after = listing.after
        if after is None:
            break
    assert seen == names
    assert pages == -(-len(names) // limit)


async def test_list_pages_with_a_selector_fill_the_limit(backend):
    s = backend.storage
    for i in range(9):
        await s.create(CONFIG_MAP, cm(f"cm-{i}", labels={"odd": str(i % 2)}))
    first = await s.list(CONFIG_MAP, namespace=None, matcher=label_selector("odd=1"), limit=3)
    assert [x.obj["metadata"]["name"] for x in first.items] == ["cm-1", "cm-3", "cm-5"]
    rest = await s.list(CONFIG_MAP, namespace=None, matcher=label_selector("odd=1"), limit=3,
                        after=first.after, revision=first.revision)
    assert [x.obj["metadata"]["name"] for x in rest.items] == ["cm-7"]
    assert rest.after is None


async def test_update_compare_and_swap(backend):
    s = backend.storage
    first = await s.create(CONFIG_MAP, cm("a", data={"v": "1"}))
    rv1 = first.obj["metadata"]["resourceVersion"]
    second = await s.update(CONFIG_MAP, cm("a", data={"v": "2"}, rv=rv1))
    rv2 = second.obj["metadata"]["resourceVersion"]
    assert int(rv2) > int(rv1)
    assert second.obj["metadata"]["uid"] == first.obj["metadata"]["uid"]
    with pytest.raises(ApiError) as exc:
        await s.update(CONFIG_MAP, cm("a", data={"v": "stale"}, rv=rv1))
    assert (exc.value.code, exc.value.status["reason"]) == (409, "Conflict")
    got = await s.get(CONFIG_MAP, namespace="default", name="a")
    assert got.obj["data"] == {"v": "2"}
    # without a resourceVersion: last write wins
    third = await s.update(CONFIG_MAP, cm("a", data={"v": "3"}))
    assert third.obj["data"] == {"v": "3"}
    with pytest.raises(ApiError) as exc:
        await s.update(CONFIG_MAP, cm("missing"))
    assert exc.value.code == 404


async def test_generation_and_status(backend):
    s = backend.storage
    d = await s.create(DEPLOYMENT, deploy("web", status={"replicas": 9}))
    assert "status" not in d.obj or d.obj["status"] in ({}, None)  # create drops status
    d = await s.update(DEPLOYMENT, deploy("web", replicas=3))
    assert d.obj["metadata"]["generation"] == 2
    d = await s.update(DEPLOYMENT, dict(d.obj, status={"replicas": 3, "readyReplicas": 2}),
                       subresource="status")
    assert d.obj["status"]["readyReplicas"] == 2 and d.obj["metadata"]["generation"] == 2
    # a main-resource update keeps the status; a status update keeps the spec
    d = await s.update(DEPLOYMENT, dict(deploy("web", replicas=4), status={"replicas": 0}))
    assert d.obj["status"]["readyReplicas"] == 2 and d.obj["spec"]["replicas"] == 4
    d = await s.update(DEPLOYMENT, dict(deploy("web", replicas=99), status={"replicas": 4}),
                       subresource="status")
    assert d.obj["spec"]["replicas"] == 4 and d.obj["status"] == {"replicas": 4}


async def test_delete(backend):
    s = backend.storage
    created = await s.create(CONFIG_MAP, cm("a"))
    rv = created.obj["metadata"]["resourceVersion"]
    await s.update(CONFIG_MAP, cm("a", data={"x": "y"}))
    with pytest.raises(ApiError) as exc:
        await s.delete(CONFIG_MAP, namespace="default", name="a",
                       preconditions={"resourceVersion": rv})
    assert exc.value.code == 409
    gone = await s.delete(CONFIG_MAP, namespace="default", name="a")
    assert gone.obj["data"] == {"x": "y"}
    assert int(gone.obj["metadata"]["resourceVersion"]) > int(rv)
    assert await s.get(CONFIG_MAP, namespace="default", name="a") is None
    with pytest.raises(ApiError) as exc:
        await s.delete(CONFIG_MAP, namespace="default", name="a")
    assert exc.value.code == 404


async def test_watch_from_a_resource_version(backend):
    s = backend.storage
    a = await s.create(CONFIG_MAP, cm("a"))
    rv = int(a.obj["metadata"]["resourceVersion"])
    await s.update(CONFIG_MAP, cm("a", data={"n": "1"}))
    await s.create(CONFIG_MAP, cm("b"))
    w = await s.watch(CONFIG_MAP, namespace=None, matcher=None, resource_version=rv)
    await s.delete(CONFIG_MAP, namespace="default", name="a")
    got = await events(w, 3)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == \
        [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in got]
    assert rvs == sorted(rvs) and rvs[0] > rv
    s.unwatch(w)


async def test_watch_without_a_resource_version_starts_with_the_objects(backend):
    s = backend.storage
    await s.create(CONFIG_MAP, cm("a"))
    w = await s.watch(CONFIG_MAP, namespace="default", matcher=None, resource_version=None)
    await s.create(CONFIG_MAP, cm("b", ns="other"))  # another namespace: not seen
    await s.create(CONFIG_MAP, cm("c"))
    got = await events(w, 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == \
        [("ADDED", "a"), ("ADDED", "c")]
    s.unwatch(w)


async def test_watch_with_a_selector_sees_objects_enter_and_leave(backend):
    s = backend.storage
    a = await s.create(CONFIG_MAP, cm("a", labels={"tier": "db"}))
    w = await s.watch(CONFIG_MAP, namespace=None, matcher=label_selector("tier=web"),
                      resource_version=int(a.obj["metadata"]["resourceVersion"]))
    await s.update(CONFIG_MAP, cm("a", labels={"tier": "web"}))
    await s.update(CONFIG_MAP, cm("a", labels={"tier": "web"}, data={"k": "v"}))
    await s.update(CONFIG_MAP, cm("a", labels={"tier": "db"}))
    got = await events(w, 3)
    assert [e["type"] for e in got] == ["ADDED", "MODIFIED", "DELETED"]
    s.unwatch(w)


async def test_watch_from_a_compacted_revision_is_gone(fresh_backend):
    s = fresh_backend.storage
    a = await s.create(CONFIG_MAP, cm("a"))
    old = int(a.obj["metadata"]["resourceVersion"])
    for i in range(3):
        await s.update(CONFIG_MAP, cm("a", data={"i": str(i)}))
    await fresh_backend.compact()
    with pytest.raises(ApiError) as exc:
        await s.watch(CONFIG_MAP, namespace=None, matcher=None, resource_version=old)
    assert (exc.value.code, exc.value.status["reason"]) == (410, "Expired")
    # the newest revision still works
    latest = await s.get(CONFIG_MAP, namespace="default", name="a")
    w = await s.watch(CONFIG_MAP, namespace=None, matcher=None,
                      resource_version=int(latest.obj["metadata"]["resourceVersion"]))
    await s.delete(CONFIG_MAP, namespace="default", name="a")
    assert [e["type"] for e in await events(w, 1)] == ["DELETED"]
    s.unwatch(w)


async def test_bookmark_revision_covers_what_the_watcher_saw(backend):
    s = backend.storage
    w = await s.watch(CONFIG_MAP, namespace=None, matcher=None, resource_version=None)
    created = await s.create(CONFIG_MAP, cm("a"))
    await events(w, 1)
    assert s.bookmark_revision(w) >= int(created.obj["metadata"]["resourceVersion"])
    s.unwatch(w)


async def test_a_list_continued_past_a_compaction_is_gone(fresh_backend):
    s = fresh_backend.storage
    for name in ("a", "b", "c"):
        await s.create(CONFIG_MAP, cm(name))
    first = await s.list(CONFIG_MAP, namespace=None, matcher=None, limit=1)
    assert first.after is not None
    await s.update(CONFIG_MAP, cm("a", data={"k": "v"}))
    await fresh_backend.compact()
    with pytest.raises(ApiError) as exc:
        await s.list(CONFIG_MAP, namespace=None, matcher=None, limit=1, after=first.after,
                     revision=first.revision)
    assert (exc.value.code, exc.value.status["reason"]) == (410, "Expired")
    assert "continue parameter is too old" in exc.value.status["message"]
    # a new list works
    assert len((await s.list(CONFIG_MAP, namespace=None, matcher=None)).items) == 3


async def test_watch_sending_initial_events_ends_them_with_a_bookmark(backend):
    s = backend.storage
    await s.create(CONFIG_MAP, cm("a"))
    last = await s.create(CONFIG_MAP, cm("b"))
    w = await s.watch(CONFIG_MAP, namespace=None, matcher=None, resource_version=None,
                      send_initial=True)
    await s.delete(CONFIG_MAP, namespace="default", name="a")
    got = await events(w, 4)
    assert [(e["type"], e["object"]["metadata"].get("name")) for e in got] == \
        [("ADDED", "a"), ("ADDED", "b"), ("BOOKMARK", None), ("DELETED", "a")]
    mark = got[2]["object"]["metadata"]
    assert mark["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert int(mark["resourceVersion"]) >= int(last.obj["metadata"]["resourceVersion"])
    s.unwatch(w)


async def test_generate_name(backend):
    s = backend.storage
    names = set()
    for _ in range(3):
        made = await s.create(CONFIG_MAP, {"metadata": {"generateName": "job-",
                                                        "namespace": "default"}})
        names.add(made.obj["metadata"]["name"])
    assert len(names) == 3
    assert all(n.startswith("job-") and len(n) == 9 and
               set(n[4:]) <= set(GENERATED_ALPHABET) for n in names)
    long = await s.create(CONFIG_MAP, {"metadata": {"generateName": "x" * 70,
                                                    "namespace": "default"}})
    assert len(long.obj["metadata"]["name"]) == 63
    assert await s.get(CONFIG_MAP, namespace="default", name=long.obj["metadata"]["name"])
