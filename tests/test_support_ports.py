"""The tests' free ports: outside the kernel's ephemeral range, so no outgoing connection takes one."""

from __future__ import annotations

import socket

import pytest

from tests import support
from tests.support import LOOPBACK, ephemeral_range, free_port


def test_free_ports_are_outside_the_ephemeral_range_distinct_and_bindable_for_tcp_and_udp():
    low, high = ephemeral_range()
    ports = [free_port() for _ in range(40)]
    assert len(set(ports)) == len(ports)
    assert all(not low <= p <= high for p in ports), (low, high, ports)
    for port in ports[:5]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            t.bind((LOOPBACK, port))
            u.bind((LOOPBACK, port))


def test_a_port_in_use_is_not_handed_out_and_a_port_is_handed_out_once(monkeypatch):
    port = free_port()  # outside the ephemeral range: nobody else takes it meanwhile
    held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # UDP only: TCP alone is not enough
    held.bind((LOOPBACK, port))
    monkeypatch.setattr(support, "_port_candidates", lambda: range(port, port + 1))
    monkeypatch.setattr(support, "_ports_given", set())
    with pytest.raises(RuntimeError, match="no free loopback port"):
        free_port()
    held.close()
    assert free_port() == port
    with pytest.raises(RuntimeError, match="no free loopback port"):
        free_port()  # given already


@pytest.mark.parametrize(("kernel", "expected"), [
    ((32768, 60999), range(16384, 32768)),
    ((10000, 65535), range(1024, 10000)),
    ((1024, 60000), range(60001, 65536)),
    ((1024, 65000), range(0)),  # no room: bind(0)
])
def test_candidates_avoid_the_kernels_range(monkeypatch, kernel, expected):
    monkeypatch.setattr(support, "ephemeral_range", lambda: kernel)
    assert support._port_candidates() == expected
