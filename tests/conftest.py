"""Fixtures shared by every suite. Real processes on loopback only; every one is stopped."""

from __future__ import annotations

import pytest

from tests.support import EtcdProcess, free_port, running_etcd


@pytest.fixture(scope="session")
def etcd_server() -> EtcdProcess:
    """One real etcd for the session. Tests use their own key prefix or wipe what they wrote."""
    with running_etcd() as etcd:
        yield etcd


@pytest.fixture
def etcd_fresh() -> EtcdProcess:
    """A real etcd of the test's own (for tests that stop, restart or compact it)."""
    with running_etcd() as etcd:
        yield etcd


@pytest.fixture
def unused_port() -> int:
    return free_port()
