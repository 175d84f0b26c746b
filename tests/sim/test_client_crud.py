"""The official kubernetes client lists, reads, creates, updates, patches and deletes."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes.client.rest import ApiException

from fed_dns.sim import objects

pytestmark = pytest.mark.asyncio


def _mysql(sim, *, ns="ns"):
    sim.apply(objects.service(name="mysql", namespace=ns, ports=[("mysql", 3306)],
                              annotations={"fed-dns.io/export": "true"}))
    sim.apply(objects.endpoint_slice(service="mysql", namespace=ns,
                                     endpoints=[("10.1.0.1", True, None),
                                                ("10.1.0.2", False, "mysql-1")],
                                     ports=[("mysql", 3306)]))


async def test_list_services_and_slices(sim, core, disco):
    _mysql(sim)
    sim.apply(objects.service(name="web", namespace="other", type="LoadBalancer",
                              lb_ips=["192.0.2.1"], lb_hostnames=["lb.example.com"]))
    services = await asyncio.to_thread(core.list_service_for_all_namespaces)
    assert [(s.metadata.namespace, s.metadata.name) for s in services.items] == \
        [("ns", "mysql"), ("other", "web")]
    assert int(services.metadata.resource_version) == sim.resource_version
    mysql = services.items[0]
    assert mysql.metadata.annotations == {"fed-dns.io/export": "true"}
    assert mysql.spec.ports[0].name == "mysql" and mysql.spec.ports[0].port == 3306
    assert mysql.spec.cluster_ip and mysql.metadata.uid and mysql.metadata.creation_timestamp
    web = services.items[1]
    assert [(i.ip, i.hostname) for i in web.status.load_balancer.ingress] == \
        [("192.0.2.1", None), (None, "lb.example.com")]

    slices = await asyncio.to_thread(disco.list_namespaced_endpoint_slice, "ns")
    (es,) = slices.items
    assert es.metadata.labels["kubernetes.io/service-name"] == "mysql"
    assert [(e.addresses, e.conditions.ready, e.hostname) for e in es.endpoints] == \
        [(["10.1.0.1"], True, None), (["10.1.0.2"], False, "mysql-1")]
    assert es.ports[0].name == "mysql" and es.address_type == "IPv4"
    everywhere = await asyncio.to_thread(disco.list_endpoint_slice_for_all_namespaces)
    assert len(everywhere.items) == 1


async def test_selectors_and_paging(sim, core):
    for i in range(7):
        sim.apply(objects.service(name=f"s{i}", namespace="ns",
                                  labels={"tier": "db" if i % 2 else "web"}))
    db = await asyncio.to_thread(core.list_namespaced_service, "ns", label_selector="tier=db")
    assert [s.metadata.name for s in db.items] == ["s1", "s3", "s5"]
    notdb = await asyncio.to_thread(core.list_namespaced_service, "ns",
                                    label_selector="tier notin (db),tier")
    assert [s.metadata.name for s in notdb.items] == ["s0", "s2", "s4", "s6"]
    one = await asyncio.to_thread(core.list_service_for_all_namespaces,
                                  field_selector="metadata.name=s4")
    assert [s.metadata.name for s in one.items] == ["s4"]

    names, token, rvs = [], None, set()
    while True:
        page = await asyncio.to_thread(core.list_namespaced_service, "ns", limit=3,
                                       _continue=token)
        names += [s.metadata.name for s in page.items]
        rvs.add(page.metadata.resource_version)
        token = page.metadata._continue
        if not token:
            break
    assert names == [f"s{i}" for i in range(7)]
    assert len(rvs) == 1


async def test_create_conflict_update_patch_delete(sim, core):
    body = objects.service(name="api", namespace="default", ports=[("http", 80)])
    created = await asyncio.to_thread(core.create_namespaced_service, "default", body)
    assert created.metadata.generation == 1
    with pytest.raises(ApiException) as exc:
        await asyncio.to_thread(core.create_namespaced_service, "default", body)
    assert exc.value.status == 409 and '"AlreadyExists"' in exc.value.body

    # PUT with a stale resourceVersion: 409 Conflict.
    stale = created.to_dict()
    sim.apply(dict(sim.get(kind="Service", namespace="default", name="api"),
                   metadata={**sim.get(kind="Service", namespace="default",
                                       name="api")["metadata"], "labels": {"x": "y"}}))
    created.metadata.labels = {"a": "b"}
    with pytest.raises(ApiException) as exc:
        await asyncio.to_thread(core.replace_namespaced_service, "api", "default", created)
    assert exc.value.status == 409 and '"Conflict"' in exc.value.body
    assert stale["metadata"]["resource_version"] != sim.get(
        kind="Service", namespace="default", name="api")["metadata"]["resourceVersion"]

    fresh = await asyncio.to_thread(core.read_namespaced_service, "api", "default")
    fresh.metadata.labels = {"a": "b"}
    replaced = await asyncio.to_thread(core.replace_namespaced_service, "api", "default", fresh)
    assert replaced.metadata.labels == {"a": "b"}
    assert int(replaced.metadata.resource_version) > int(fresh.metadata.resource_version)

    # The client sends dict bodies to patch as strategic merge by default.
    patched = await asyncio.to_thread(
        core.patch_namespaced_service, "api", "default",
        {"metadata": {"annotations": {"fed-dns.io/export": "true"}},
         "spec": {"ports": [{"name": "metrics", "port": 9090}]}})
    assert patched.metadata.annotations == {"fed-dns.io/export": "true"}
    assert [p.port for p in patched.spec.ports] == [80, 9090]  # merged on "port"
    assert patched.metadata.generation == 2

    deleted = await asyncio.to_thread(core.delete_namespaced_service, "api", "default")
    assert deleted.metadata.name == "api"
    assert sim.get(kind="Service", namespace="default", name="api") is None
    with pytest.raises(ApiException) as exc:
        await asyncio.to_thread(core.read_namespaced_service, "api", "default")
    assert exc.value.status == 404 and '"NotFound"' in exc.value.body


async def test_merge_and_json_patch(sim, core):
    sim.apply(objects.service(name="db", namespace="ns", labels={"a": "1", "b": "2"}))

    def call(body, ctype):
        return core.patch_namespaced_service("db", "ns", body, _content_type=ctype).to_dict()

    merged = await asyncio.to_thread(call, {"metadata": {"labels": {"a": None, "c": "3"}}},
                                     "application/merge-patch+json")
    assert merged["metadata"]["labels"] == {"b": "2", "c": "3"}
    jp = await asyncio.to_thread(call, [{"op": "replace", "path": "/metadata/labels/b",
                                         "value": "9"},
                                        {"op": "add", "path": "/spec/ports/-",
                                         "value": {"port": 81}}],
                                 "application/json-patch+json")
    assert jp["metadata"]["labels"] == {"b": "9", "c": "3"}
    assert [p["port"] for p in jp["spec"]["ports"]] == [80, 81]
    with pytest.raises(ApiException) as exc:
        await asyncio.to_thread(call, [{"op": "test", "path": "/metadata/name", "value": "x"}],
                                "application/json-patch+json")
    assert exc.value.status == 422


async def test_create_in_missing_namespace_is_404(sim, core):
    with pytest.raises(ApiException) as exc:
        await asyncio.to_thread(core.create_namespaced_service, "nowhere",
                                objects.service(name="x", namespace="nowhere"))
    assert exc.value.status == 404 and "namespaces" in exc.value.body
    await asyncio.to_thread(core.create_namespace, objects.namespace(name="nowhere"))
    await asyncio.to_thread(core.create_namespaced_service, "nowhere",
                            objects.service(name="x", namespace="nowhere"))
    await asyncio.to_thread(core.delete_namespace, "nowhere")
    assert sim.get(kind="Namespace", name="nowhere")["status"]["phase"] == "Terminating"
    # Terminating for a moment (contents still there, nothing new accepted), then gone.
    assert sim.get(kind="Service", namespace="nowhere", name="x") is not None
    with pytest.raises(ApiException) as exc:
        await asyncio.to_thread(core.create_namespaced_service, "nowhere",
                                objects.service(name="y", namespace="nowhere"))
    assert exc.value.status == 403 and "being terminated" in exc.value.body
    for _ in range(100):
        if sim.get(kind="Namespace", name="nowhere") is None:
            break
        await asyncio.sleep(0.05)
    assert sim.get(kind="Service", namespace="nowhere", name="x") is None
    assert sim.get(kind="Namespace", name="nowhere") is None


async def test_invalid_name_is_422(sim, core):
    with pytest.raises(ApiException) as exc:
        await asyncio.to_thread(core.create_namespaced_service, "default",
                                objects.service(name="Bad_Name", namespace="default"))
    assert exc.value.status == 422 and '"Invalid"' in exc.value.body


async def test_configmaps_and_secrets_round_trip(sim, core):
    """Members hold the ConfigMaps and Secrets that follow a federated workload."""
    from kubernetes import client as k8s

    sim.apply(objects.namespace(name="ns"))
    cm = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="conf", namespace="ns"), data={"a": "1"})
    await asyncio.to_thread(core.create_namespaced_config_map, "ns", cm)
    secret = k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="pw", namespace="ns"),
                          data={"password": "aHVudGVyMg=="}, type="Opaque")
    await asyncio.to_thread(core.create_namespaced_secret, "ns", secret)
    got = await asyncio.to_thread(core.read_namespaced_config_map, "conf", "ns")
    assert got.data == {"a": "1"}
    got = await asyncio.to_thread(core.read_namespaced_secret, "pw", "ns")
    assert got.data == {"password": "aHVudGVyMg=="} and got.type == "Opaque"
    await asyncio.to_thread(core.delete_namespaced_secret, "pw", "ns")
    with pytest.raises(ApiException) as gone:
        await asyncio.to_thread(core.read_namespaced_secret, "pw", "ns")
    assert gone.value.status == 404
