"""A simulated cluster on a free loopback port, and official-client handles on it.

The `kubernetes` client blocks: tests call it through `asyncio.to_thread` while the cluster
serves on the test's own event loop.
"""

from __future__ import annotations

import contextlib

import kubernetes
import pytest

from fed_dns.sim.cluster import SimCluster


@contextlib.asynccontextmanager
async def serving(tmp_path, **options):
    """A started SimCluster with its kubeconfig at tmp_path/kubeconfig; closed afterwards."""
    cluster = SimCluster(**options)
    await cluster.start()
    cluster.write_kubeconfig(tmp_path / "kubeconfig")
    try:
        yield cluster
    finally:
        await cluster.close()


@pytest.fixture
async def sim(tmp_path):
    async with serving(tmp_path, name="c1", bookmark_interval=0.3) as cluster:
        yield cluster


@pytest.fixture
def kubeconfig(sim, tmp_path) -> str:
    return str(tmp_path / "kubeconfig")


@pytest.fixture
def api_client(kubeconfig):
    client = kubernetes.config.new_client_from_config(config_file=kubeconfig, context="c1")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def core(api_client) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client)


@pytest.fixture
def disco(api_client) -> kubernetes.client.DiscoveryV1Api:
    return kubernetes.client.DiscoveryV1Api(api_client)


@pytest.fixture
def apps(api_client) -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(api_client)
