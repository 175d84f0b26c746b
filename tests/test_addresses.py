"""model.addresses: the canonical IPv4 check that render, watch and the server share."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fed_dns.model.addresses import canonical_ipv4


@given(number=st.integers(0, 2**32 - 1))
def test_every_address_as_ipaddress_writes_it_is_canonical(number):
    assert canonical_ipv4(str(ipaddress.IPv4Address(number)))


OCTETS = st.one_of(st.integers(0, 300).map(str),
                   st.sampled_from(["00", "01", "010", "0x1", "", " 1", "1 ", "\u0663", "+1"]))
IPV4_LIKE = st.one_of(st.lists(OCTETS, min_size=3, max_size=5).map(".".join),
                      st.text(alphabet="0123456789.:/%abcdef\n ", max_size=17))


@settings(max_examples=1000, deadline=None)
@given(text=IPV4_LIKE, family=st.sampled_from([ipaddress.ip_address, ipaddress.IPv4Address]))
def test_canonical_means_ipaddress_takes_it_unchanged(text, family):
    if canonical_ipv4(text):  # else ipaddress decides, as before
        assert str(family(text)) == text


@pytest.mark.parametrize("text", ["01.2.3.4", "1.2.3.256", "1.2.3", "1.2.3.4.5", " 1.2.3.4", "1.2.3.4\n",
                                  "\u0661.2.3.4", "::ffff:1.2.3.4", "1.2.3.4%eth0", ""])
def test_anything_else_is_not(text):
    assert not canonical_ipv4(text)
