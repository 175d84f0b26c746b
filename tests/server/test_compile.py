"""Compiled tails: the dnslib-free path for address answers gives dnslib's bytes."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from fed_dns.server import resolve as rs
from fed_dns.server.compile import address_tails, pack_sections
from fed_dns.server.order import orderings
from fed_dns.server.resolve import Answer

NAME = "svc.ns.fed.example.com."
V4 = st.builds(lambda n: str(ipaddress.IPv4Address(n)), st.integers(0, 2**32 - 1))
V6 = st.builds(lambda n: str(ipaddress.IPv6Address(n)), st.integers(0, 2**128 - 1))
RECORDS = st.one_of(
    st.lists(st.tuples(V4, st.integers(0, 2**31 - 1)), min_size=1, max_size=12, unique_by=lambda r: r[0]).map(
        lambda rs_: tuple((NAME, rs.T_A, ttl, a) for a, ttl in rs_)),
    st.lists(st.tuples(V6, st.integers(0, 2**31 - 1)), min_size=1, max_size=12, unique_by=lambda r: r[0]).map(
        lambda rs_: tuple((NAME, rs.T_AAAA, ttl, a) for a, ttl in rs_)),
)


@settings(max_examples=200, deadline=None)
@given(records=RECORDS)
def test_address_tails_are_dnslibs_bytes(records):
    answer = Answer(rcode=rs.NOERROR, answer=records)
    orders = orderings(records, origins=("",) * len(records), weight_of={})
    fast = address_tails(qname=NAME, answer=answer, orders=orders)
    slow = tuple(pack_sections(qname=NAME, qtype=records[0][1], answer=o, authority=(),
                               additional=()) for o in orders)
    assert fast == slow and len(fast) == len(orders)


def test_other_answers_take_dnslib():
    cname = Answer(rcode=rs.NOERROR, answer=((NAME, rs.T_CNAME, 5, "x.example.org."),))
    other_owner = Answer(rcode=rs.NOERROR, answer=(("a." + NAME, rs.T_A, 5, "10.0.0.1"),))
    nodata = Answer(rcode=rs.NOERROR, authority=(rs.soa(zone="fed.example.com.", serial=1),))
    for ans in (cname, other_owner, nodata):
        assert address_tails(qname=NAME, answer=ans, orders=[ans.answer]) is None
