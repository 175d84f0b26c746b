"""services.host_kind: what a value's host makes of it, as CoreDNS's msg.Service.HostType."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fed_dns.server.services import AAAA, CNAME, TXT, A, host_kind


def reference(host: str, text: str) -> tuple[str, str]:
    """The rule spelled out: an IPv4 address is A, an IPv6 one AAAA (A when it maps an IPv4
    address), each in normal form; anything else a name (TXT when the value has text)."""
    for kind, parse in ((A, ipaddress.IPv4Address), (AAAA, ipaddress.IPv6Address)):
        try:
            ip = parse(host)
        except ValueError:
            continue
        mapped = getattr(ip, "ipv4_mapped", None)
        return (A, str(mapped)) if mapped is not None else (kind, str(ip))
    return (TXT if text else CNAME), ""


@pytest.mark.parametrize(("host", "text", "expected"), [
    ("10.1.0.7", "", (A, "10.1.0.7")),
    ("mysql.ns.fed.example.com", "", (CNAME, "")),
    ("mysql.ns.fed.example.com", "v=1", (TXT, "")),
    ("", "v=1", (TXT, "")),
    ("2001:DB8::1", "", (AAAA, "2001:db8::1")),
    ("::ffff:10.2.0.1", "", (A, "10.2.0.1")),
    ("010.1.0.7", "", (CNAME, "")),  # leading zeros: not an address (Go's net.ParseIP agrees)
    ("10.1.0.7.", "", (CNAME, "")),
    ("fe80::1%eth0", "", (AAAA, "fe80::1%eth0")),
], ids=["ipv4", "name", "name-with-text", "text-only", "ipv6-normalised", "v4-mapped",
        "leading-zeros", "trailing-dot", "scoped-ipv6"])
def test_host_kind_table(host, text, expected):
    assert host_kind(host, text) == expected == reference(host, text)


@given(host=st.one_of(st.text(alphabet="0123456789.:abcdefABCDEF%xyz", max_size=24),
                      st.ip_addresses().map(str), st.text(max_size=12)),
       text=st.sampled_from(["", "t"]))
def test_host_kind_is_the_rule_spelled_out(host, text):
    assert host_kind(host, text) == reference(host, text)
