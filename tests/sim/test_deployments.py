"""apps/v1 Deployments: controller-free status, the scale subresource, status writes, 401."""

from __future__ import annotations

import asyncio

import kubernetes
import pytest
from kubernetes.client.rest import ApiException

from fed_dns.sim import objects

pytestmark = pytest.mark.asyncio


async def test_create_scale_and_ready_limit(sim, apps):
    body = objects.deployment(name="web", namespace="default", replicas=2,
                              labels={"fed-dns.io/managed-by": "fed"})
    created = await asyncio.to_thread(apps.create_namespaced_deployment, "default", body)
    assert created.status.ready_replicas == 2 and created.status.observed_generation == 1

    scale = await asyncio.to_thread(apps.read_namespaced_deployment_scale, "web", "default")
    assert scale.spec.replicas == 2 and scale.status.selector == "app=web"
    await asyncio.to_thread(apps.patch_namespaced_deployment_scale, "web", "default",
                            {"spec": {"replicas": 5}})
    d = await asyncio.to_thread(apps.read_namespaced_deployment, "web", "default")
    assert (d.spec.replicas, d.status.ready_replicas, d.metadata.generation) == (5, 5, 2)

    sim.ready_limit = 3  # the cluster is short of ready replicas
    d = await asyncio.to_thread(apps.read_namespaced_deployment, "web", "default")
    assert (d.status.replicas, d.status.ready_replicas, d.status.unavailable_replicas) == (5, 3, 2)
    sim.ready_limit = None
    d = await asyncio.to_thread(apps.patch_namespaced_deployment, "web", "default",
                                {"spec": {"replicas": 4}})
    assert d.status.ready_replicas == 4

    listed = await asyncio.to_thread(apps.list_deployment_for_all_namespaces,
                                     label_selector="fed-dns.io/managed-by=fed")
    assert [x.metadata.name for x in listed.items] == ["web"]
    await asyncio.to_thread(apps.delete_namespaced_deployment, "web", "default")
    assert sim.get(kind="Deployment", namespace="default", name="web") is None


async def test_replace_scale_with_stale_version_conflicts(sim, apps):
    sim.apply(objects.deployment(name="db", namespace="default", replicas=1))
    scale = await asyncio.to_thread(apps.read_namespaced_deployment_scale, "db", "default")
    sim.apply(objects.deployment(name="db", namespace="default", replicas=2))
    scale.spec.replicas = 7
    with pytest.raises(ApiException) as exc:
        await asyncio.to_thread(apps.replace_namespaced_deployment_scale, "db", "default", scale)
    assert exc.value.status == 409


async def test_service_status_subresource(sim, core):
    sim.apply(objects.service(name="lb", namespace="ns", type="LoadBalancer"))
    # A write to the main resource keeps the status; the status subresource sets it.
    await asyncio.to_thread(core.patch_namespaced_service, "lb", "ns",
                            {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})
    assert sim.get(kind="svc", namespace="ns", name="lb")["status"] == {"loadBalancer": {}}
    svc = await asyncio.to_thread(core.patch_namespaced_service_status, "lb", "ns",
                                  {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})
    assert svc.status.load_balancer.ingress[0].ip == "192.0.2.1"


async def test_no_token_or_wrong_token_is_401(sim, kubeconfig):
    cfg = kubernetes.client.Configuration()
    cfg.host = sim.url
    anonymous = kubernetes.client.ApiClient(cfg)
    wrong_cfg = kubernetes.client.Configuration()
    wrong_cfg.host = sim.url
    wrong_cfg.api_key = {"authorization": "wrong"}
    wrong_cfg.api_key_prefix = {"authorization": "Bearer"}
    wrong = kubernetes.client.ApiClient(wrong_cfg)
    try:
        for client in (anonymous, wrong):
            with pytest.raises(ApiException) as exc:
                await asyncio.to_thread(kubernetes.client.CoreV1Api(client).list_namespace)
            assert exc.value.status == 401 and '"Unauthorized"' in exc.value.body
        # Health endpoints are open, as on a default API server.
        # call_api hands back the response unread: read it, which returns its connection
        # to the pool that close() empties (else the socket is left for the collector).
        readyz = await asyncio.to_thread(anonymous.call_api, "GET", sim.url + "/readyz")
        await asyncio.to_thread(readyz.read)
        assert readyz.status == 200
    finally:
        anonymous.close()
        wrong.close()


async def test_discovery(sim, api_client):
    resources = await asyncio.to_thread(
        kubernetes.client.AppsV1Api(api_client).get_api_resources)
    by_name = {r.name: r for r in resources.resources}
    assert by_name["deployments"].short_names == ["deploy"] and by_name["deployments"].namespaced
    assert "watch" in by_name["deployments"].verbs
    assert by_name["deployments/scale"].kind == "Scale"
    core = await asyncio.to_thread(kubernetes.client.CoreV1Api(api_client).get_api_resources)
    assert {r.name for r in core.resources} >= {"services", "namespaces", "services/status"}
    groups = await asyncio.to_thread(kubernetes.client.ApisApi(api_client).get_api_versions)
    assert {g.name for g in groups.groups} == {"apps", "discovery.k8s.io"}
    version = await asyncio.to_thread(kubernetes.client.VersionApi(api_client).get_code)
    assert version.major == "1"
