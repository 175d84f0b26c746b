"""Every publish mode, the export rules and hostile names, end to end through a simulated member."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess

import aiohttp
import pytest
from aiohttp import web

from fed_dns.model import Backend, Port, Publish, ServiceKey
from fed_dns.sim import objects
from fed_dns.watch.parse import WatchOptions
from tests.watch.conftest import until

EXPORT = {"fed-dns.io/export": "true"}
HTTP = (Port(name="http", port=80),)
EP = (Port(name="http", port=8080),)


def key(name, namespace="ns"):
    return ServiceKey(namespace=namespace, name=name)


def add(sim, name, *, endpoints=(("10.1.0.1", True, None),), annotations=EXPORT, namespace="ns",
        slice_ports=(("http", 8080),), **kw):
    kw.setdefault("ports", [("http", 80)])
    sim.apply(objects.service(name=name, namespace=namespace, annotations=annotations, **kw))
    sim.apply(objects.endpoint_slice(service=name, namespace=namespace, endpoints=endpoints, ports=slice_ports))


async def test_every_publish_mode(sim, watch):
    add(sim, "cip", cluster_ip="10.0.0.1")
    add(sim, "lb", type="LoadBalancer", cluster_ip="10.0.0.2", lb_ips=["203.0.113.1"], lb_hostnames=["lb.example.com"])
    add(sim, "headless", headless=True, endpoints=[("10.1.0.2", True, "db-0"), ("10.1.0.3", False, "db-1")])
    add(sim, "ext", external_name="db.example.com", ports=(), endpoints=())
    add(sim, "as-endpoints", cluster_ip="10.0.0.3", annotations={**EXPORT, "fed-dns.io/publish": "endpoints"},
        endpoints=[("10.1.0.4", True, None), ("10.1.0.5", True, None)])
    unknown = sim.get(kind="EndpointSlice", namespace="ns", name="as-endpoints-sim")
    del unknown["endpoints"][1]["conditions"]["ready"]  # unset counts as ready (the API says so)
    sim.apply(unknown)
    add(sim, "lb-as-clusterip", type="LoadBalancer", cluster_ip="10.0.0.4", lb_ips=["203.0.113.2"],
        annotations={**EXPORT, "fed-dns.io/publish": "clusterip"})
    add(sim, "cip-as-lb", cluster_ip="10.0.0.5", annotations={**EXPORT, "fed-dns.io/publish": "loadbalancer"})
    w = await watch(sim)
    await until(lambda: w.view.synced)
    got = {k.name: (v.backends, v.ready) for k, v in w.view.services.items()}
    assert got == {
        "cip": ((Backend(address="10.0.0.1", ports=HTTP),), True),
        "lb": ((Backend(address="203.0.113.1", ports=HTTP), Backend(address="lb.example.com", ports=HTTP)), True),
        "headless": ((Backend(address="10.1.0.2", hostname="db-0", ports=EP),), True),
        "ext": ((Backend(address="db.example.com"),), True),
        "as-endpoints": ((Backend(address="10.1.0.4", ports=EP), Backend(address="10.1.0.5", ports=EP)), True),
        "lb-as-clusterip": ((Backend(address="10.0.0.4", ports=HTTP),), True),
        "cip-as-lb": ((), True),
    }


async def test_configured_publish_mode_and_probe(sim, watch):
    add(sim, "web", cluster_ip="10.0.0.1", annotations={**EXPORT, "fed-dns.io/probe": "tcp"})
    w = await watch(sim, options=WatchOptions(publish=Publish.ENDPOINTS, inactivity_timeout=3.0))
    await until(lambda: w.view.synced)
    assert w.view.services[key("web")].backends == (Backend(address="10.1.0.1", ports=EP),)
    assert w.view.services[key("web")].probe == "tcp"


async def test_export_rules(sim, watch):
    add(sim, "annotated", cluster_ip="10.0.0.1")
    add(sim, "plain", cluster_ip="10.0.0.2", annotations={})
    add(sim, "opted-out", cluster_ip="10.0.0.3", annotations={"fed-dns.io/export": "false"})
    add(sim, "dns", namespace="kube-system", cluster_ip="10.0.0.10", annotations={})
    add(sim, "team", namespace="team-a", cluster_ip="10.0.0.11", annotations={})
    annotated_only = await watch(sim)
    everything = await watch(sim, options=WatchOptions(export_all=True, inactivity_timeout=3.0), name="c1-all")
    teams = await watch(sim, options=WatchOptions(export_all=True, include=("team-*",), inactivity_timeout=3.0),
                        name="c1-teams")
    for w in (annotated_only, everything, teams):
        await until(lambda w=w: w.view.synced)
    assert annotated_only.names() == {"ns/annotated"}
    assert everything.names() == {"ns/annotated", "ns/plain", "team-a/team"}
    assert teams.names() == {"ns/annotated", "team-a/team"}
    add(sim, "plain", cluster_ip="10.0.0.2")  # annotated later: exported from then on
    await until(lambda: "ns/plain" in annotated_only.names())


async def test_hostile_names_are_rejected_counted_and_others_published(sim, watch):
    add(sim, "good", cluster_ip="10.0.0.1")
    add(sim, "Upper", cluster_ip="10.0.0.2")
    add(sim, "a" * 64, cluster_ip="10.0.0.3")
    add(sim, "dotted-port", cluster_ip="10.0.0.4", ports=[("h.ttp", 80)])
    add(sim, "bad-host", headless=True, endpoints=[("10.1.0.9", True, "Pod_0")])
    add(sim, "ok", namespace="UPPER-NS", cluster_ip="10.0.0.5")
    add(sim, "evil", headless=True, endpoints=[("10.1.0.8", True, None), ("evil.attacker.example", True, None)])
    add(sim, "range", headless=True, endpoints=[("999.1.1.1", True, None)])
    add(sim, "evil-lb", type="LoadBalancer", cluster_ip="10.0.0.7", lb_ips=["evil.attacker.example"])
    add(sim, "evil-ext", external_name="evil attacker", ports=(), endpoints=())
    w = await watch(sim)
    await until(lambda: w.view.synced)
    assert w.names() == {"ns/good"}
    assert w.watcher.stats.rejected == {  # codes only: the values go to the log
        "invalid-service-name": 2, "invalid-port-name": 1, "invalid-endpoint-hostname": 1,
        "invalid-namespace": 1, "invalid-endpoint-address": 2, "invalid-loadbalancer-ip": 1,
        "invalid-external-name": 1}
    assert {r.name for r in w.watcher.rejections} == {
        "ns/Upper", f"ns/{'a' * 64}", "ns/dotted-port", "ns/bad-host", "UPPER-NS/ok",
        "ns/evil", "ns/range", "ns/evil-lb", "ns/evil-ext"}
    # counted once, not on every event of the rejected Service
    add(sim, "Upper", cluster_ip="10.0.0.2", endpoints=[("10.1.0.7", True, None)])
    add(sim, "good2", cluster_ip="10.0.0.6")
    await until(lambda: "ns/good2" in w.names())
    assert w.watcher.stats.rejected["invalid-service-name"] == 2
    # fixed: published, and no longer listed as rejected
    add(sim, "dotted-port", cluster_ip="10.0.0.4", ports=[("http", 80)])
    await until(lambda: "ns/dotted-port" in w.names())
    assert "ns/dotted-port" not in {r.name for r in w.watcher.rejections}


async def test_kubectl_reads_the_simulated_member(sim, tmp_path):
    """kubectl get svc -A against the sim. kubectl sends no credentials to an http:// server
    (clientcmd reads auth info only for TLS), so a loopback proxy adds the sim's token."""
    add(sim, "web", cluster_ip="10.0.0.1")
    async with _token_proxy(sim) as url:
        doc = sim.kubeconfig()
        doc["clusters"][0]["cluster"]["server"] = url
        path = tmp_path / "kubeconfig"
        path.write_text(json.dumps(doc))
        proc = await asyncio.to_thread(
            subprocess.run, ["kubectl", "--kubeconfig", str(path), "get", "svc", "-A", "--no-headers"],
            capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[:4] == ["ns", "web", "ClusterIP", "10.0.0.1"]


@contextlib.asynccontextmanager
async def _token_proxy(sim):
    async with aiohttp.ClientSession() as session:
        async def forward(request):
            async with session.request(request.method, sim.url + request.rel_url.raw_path_qs,
                                       headers={"Authorization": f"Bearer {sim.token}",
                                                "Accept": request.headers.get("Accept", "*/*")},
                                       data=await request.read()) as upstream:
                return web.Response(status=upstream.status, body=await upstream.read(),
                                    content_type=upstream.content_type)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}"
        finally:
            await runner.cleanup()
