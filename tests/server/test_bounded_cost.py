"""Hostile input keeps a bounded cost (issue 11): question types by the thousand do not grow
the answer cache, and every DNS request, on either transport and either UDP path, is counted
in the latency histogram (it used to time one fast-path query in 128)."""

from __future__ import annotations

import socket
import struct

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from fed_dns.server import table as table_mod
from fed_dns.server import respond as respond_mod
from fed_dns.server.respond import respond
from tests.server.conftest import entries
from tests.server.helpers import addresses, ask
from tests.support import LOOPBACK, wait_for

Z = "fed.example.com."
RECORDS = {"c1.svc.ns": {"host": "10.0.0.1", "ttl": 5}, "c2.svc.ns": {"host": "10.0.0.2", "ttl": 5}}


def test_every_question_type_costs_one_cache_entry_per_name():
    table = table_mod.build(zone=Z, entries=entries(RECORDS))
    base = dns.message.make_query(f"c1.svc.ns.{Z}", "A").to_wire()
    for qtype in range(0, 65536, 13):  # 5,042 types, most unknown
        query = base[:-4] + struct.pack("!HH", qtype, 1)
        reply = dns.message.from_wire(respond(table, query).response)
        assert reply.rcode() == dns.rcode.NOERROR
        if qtype not in table_mod.KNOWN_TYPES:
            assert not reply.answer and [r.rdtype for r in reply.authority] == [dns.rdatatype.SOA]
    assert len(table.cache) <= len(table_mod.KNOWN_TYPES) + 1  # was one per type asked
    assert addresses(dns.message.from_wire(respond(table, base).response)) == ["10.0.0.1"]


def _histogram_count(stats, protocol: str) -> int:
    return sum(stats.latency[protocol].counts)


def _requests(stats, protocol: str) -> int:
    """Requests answered plus those dropped one by one (connection-level drops excluded)."""
    answered = sum(n for (p, _, _), n in stats.requests.items() if p == protocol)
    dropped = sum(n for (p, reason), n in stats.dropped.items()
                  if p == protocol and reason != "connection_cap")
    return answered + dropped


@pytest.mark.parametrize("batch", [64, 0], ids=["recvmmsg", "recvfrom"])
def test_every_request_is_in_the_latency_histogram(serve_records, batch):
    srv = serve_records(RECORDS, udp_batch=batch)
    for i in range(35):  # the fast path, the full path (EDNS with DO... and NXDOMAIN), garbage
        assert addresses(ask(srv.port, f"c{1 + i % 2}.svc.ns.{Z}")) == [f"10.0.0.{1 + i % 2}"]
        ask(srv.port, f"nope{i}.ns.{Z}", edns=0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(5):
            s.sendto(b"\x12\x34\x01", (LOOPBACK, srv.port))  # malformed: dropped, timed
    for _ in range(7):
        assert addresses(ask(srv.port, f"c1.svc.ns.{Z}", tcp=True)) == ["10.0.0.1"]
    wait_for(lambda: _requests(srv.stats, "udp") == 75, timeout=5, what="every datagram handled")
    wait_for(lambda: _histogram_count(srv.stats, "udp") == 75, timeout=5,
             what="every datagram timed")
    assert _histogram_count(srv.stats, "tcp") == _requests(srv.stats, "tcp") == 7
    assert srv.stats.latency["udp"].sum_us > 0


class _BrokenTable:
    """A table with a bug (the real one has none to trigger): every question raises."""

    topology = table_mod.OFF_TOPOLOGY

    def in_zone(self, qname):
        raise RuntimeError("a bug")


def test_an_internal_error_costs_one_servfail_and_at_most_one_traceback_a_second(caplog,
                                                                                  monkeypatch):
    monkeypatch.setattr(respond_mod, "_logged", [0.0, 0])  # no earlier test's traceback counts
    query = dns.message.make_query(f"c1.svc.ns.{Z}", "A").to_wire()
    with caplog.at_level("ERROR", logger="fed_dns.server.respond"):
        outcomes = [respond(_BrokenTable(), query) for _ in range(1000)]
    assert {dns.message.from_wire(o.response).rcode() for o in outcomes} == {dns.rcode.SERVFAIL}
    assert 1 <= len(caplog.records) <= 2  # was 1,000 tracebacks
