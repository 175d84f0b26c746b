"""Fixtures for the etcd unit: clients of the real etcd, a unique key prefix per test."""

from __future__ import annotations

import uuid

import pytest

from fed_dns.etcd.client import EtcdSettings, connect


@pytest.fixture
def prefix() -> str:
    return f"/test-{uuid.uuid4().hex[:12]}/"


@pytest.fixture
def settings(etcd_server) -> EtcdSettings:
    return EtcdSettings(endpoints=(etcd_server.url,), timeout=2.0)


@pytest.fixture
async def client(settings):
    c = await connect(settings)
    try:
        yield c
    finally:
        await c.close()
