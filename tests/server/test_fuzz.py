"""Random and mutated packets never stop the server, never raise, and a valid query is
answered after them."""

from __future__ import annotations

import socket
import struct

import dns.message
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fed_dns.server import table as table_mod
from fed_dns.server.respond import respond
from fed_dns.server.stats import Stats
from fed_dns.server.udp import BATCH, UdpProtocol
from tests.server.conftest import ZONE, entries
from tests.server.helpers import addresses, ask
from tests.support import LOOPBACK

RECORDS = {"c1.svc.ns": {"host": "10.0.0.1", "ttl": 5}, "x.alias.ns": {"host": f"svc.ns.{ZONE}"},
           "t.ns": {"text": "hello"}}
TABLE = table_mod.build(zone=ZONE, entries=entries(RECORDS))
VALID = [dns.message.make_query(n, t, use_edns=e).to_wire()
         for n in (f"svc.ns.{ZONE}", f"alias.ns.{ZONE}", f"t.ns.{ZONE}", "example.org.")
         for t in ("A", "TXT", "SRV") for e in (None, 0)]


def _hdr(qid=0x1234, flags=0x0100, qd=1, an=0, ns=0, ar=0) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


HANDMADE = {
    "empty": b"",
    "short header": b"\x12\x34\x01",
    "header only": _hdr(),
    "no question": _hdr(qd=0),
    "two questions": _hdr(qd=2) + b"\x00\x00\x01\x00\x01" * 2,
    "pointer loop in question": _hdr() + b"\xc0\x0c\x00\x01\x00\x01",
    "pointer loop in additional": _hdr(ar=1) + b"\x00\x00\x01\x00\x01" + b"\xc0\x11" * 3,
    "label runs off": _hdr() + b"\x3f" + b"a" * 10,
    "huge label count": _hdr() + b"\x01a" * 200 + b"\x00\x00\x01\x00\x01",
    "extended label type": _hdr() + b"\x41abc\x00\x00\x01\x00\x01",
    "counts too big": _hdr(an=65535, ns=65535, ar=65535) + b"\x00\x00\x01\x00\x01",
    "opt with bad owner": _hdr(ar=1) + b"\x00\x00\x01\x00\x01" + b"\x01a\x00\x00\x29\x10\x00" + bytes(6),
    "two opts": _hdr(ar=2) + b"\x00\x00\x01\x00\x01" + (b"\x00\x00\x29\x10\x00" + bytes(6)) * 2,
    "rdata runs off": _hdr(ar=1) + b"\x00\x00\x01\x00\x01" + b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\xff",
    "a response": _hdr(flags=0x8180) + b"\x00\x00\x01\x00\x01",
    "no question type": _hdr() + b"\x03svc\x00",
}


def _check(data: bytes) -> None:
    outcome = respond(TABLE, data)
    if outcome.response is not None:
        assert outcome.response[:2] == data[:2]
        assert outcome.response[2] & 0x80  # QR
        if not outcome.response[2] & 0x78:  # dnspython reads other opcodes (UPDATE) its own way
            dns.message.from_wire(outcome.response, question_only=True)


def _fast_path(data: bytes) -> None:
    stats = Stats()
    proto = UdpProtocol(table=TABLE, stats=stats, max_udp=1232)
    proto.connection_made(type("T", (), {"sendto": lambda self, d, a: None})())
    proto.datagram_received(data, (LOOPBACK, 1))
    assert stats.errors == 0
    response = proto.reply(data)  # what the batched loop sends: the ID copied, or nothing
    assert response is None or response[:2] == data[:2]
    assert stats.errors == 0


@pytest.mark.parametrize("name", list(HANDMADE))
def test_handmade_malformed_packets(name):
    data = HANDMADE[name]
    _check(data)
    _fast_path(data)
    outcome = respond(TABLE, data)
    if len(data) >= 12 and not data[2] & 0x80:
        assert outcome.response is not None  # a readable header gets an answer (FORMERR)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_bytes(data):
    _check(data)
    _fast_path(data)


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "set"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            data[i] = draw(st.sampled_from([0x00, 0x3f, 0x40, 0xc0, 0xff, 0x29]))
    return bytes(data)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_queries(data):
    _check(data)
    _fast_path(data)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(packets=st.lists(st.one_of(st.binary(max_size=300), mutated()), min_size=1, max_size=20))
def test_live_server_survives_and_answers_after(live_server, packets):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for p in packets:
            s.sendto(p, (LOOPBACK, live_server.port))
    with socket.create_connection((LOOPBACK, live_server.port), timeout=2) as t:
        t.sendall(b"".join(struct.pack("!H", len(p)) + p for p in packets if len(p) < 65535))
    assert addresses(ask(live_server.port, f"c1.svc.ns.{ZONE}")) == ["10.0.0.1"]
    assert addresses(ask(live_server.port, f"c1.svc.ns.{ZONE}", tcp=True)) == ["10.0.0.1"]
    assert live_server.stats.errors == 0


@pytest.fixture(scope="module", params=[BATCH, 0], ids=["batched", "recvfrom"])
def live_server(request):
    """Both UDP loops: recvmmsg/sendmmsg batches (where available) and recvfrom/sendto."""
    from tests.server.conftest import running_server

    with running_server(TABLE, udp_batch=request.param) as srv:
        yield srv
