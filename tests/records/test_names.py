"""Labels, names and the SkyDNS key layout (naming.md, 'Validation' and 'etcd key layout')."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fed_dns.model import ServiceKey
from fed_dns.records.names import (
    check_label,
    check_name,
    key_to_name,
    name_to_key,
    normalize_zone,
    service_name,
)

LABEL = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")


@pytest.mark.parametrize("label", ["a", "mysql", "c1", "0", "123", "a-b", "x" * 63, "pg-0"])
def test_valid_labels(label):
    assert check_label(label) is None


@pytest.mark.parametrize(
    ("label", "reason"),
    [
        ("", "empty"),
        ("x" * 64, "longer than 63"),
        ("MySQL", "upper case"),
        ("a/b", "'/'"),
        ("../x", "'.'"),
        ("..", "'.'"),
        ("a.b", "'.'"),
        ("*", "'*'"),
        ("_tcp", "'_'"),
        ("a b", "' '"),
        ("ünï", "'ü'"),
        ("a\x00", "'\\x00'"),
        ("-a", "hyphen"),
        ("a-", "hyphen"),
        ("é" * 32, "longer than 63"),  # 64 bytes in UTF-8, though 32 characters
    ],
    ids=["empty", "64-bytes", "upper", "slash", "dotdot-slash", "dotdot", "dot", "wildcard",
         "underscore", "space", "unicode", "nul", "leading-hyphen", "trailing-hyphen",
         "unicode-64-bytes"],
)
def test_invalid_labels_say_why(label, reason):
    got = check_label(label)
    assert got is not None and reason in got


def rfc1123(label: str) -> bool:
    """The rule, spelled out character by character (check_label answers with one match)."""
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-")
    return (0 < len(label.encode("utf-8", "surrogatepass")) <= 63 and set(label) <= allowed
            and not label.startswith("-") and not label.endswith("-"))


@given(label=st.one_of(LABEL, st.text(alphabet="ab-9Z_.\n\x00é", max_size=70),
                       LABEL.map(lambda x: x + "\n"), LABEL.map(lambda x: "-" + x)))
def test_a_label_is_valid_exactly_when_the_rule_says(label):
    assert (check_label(label) is None) == rfc1123(label)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("mysql.ns.fed.example.com.", True),
        ("mysql.ns.fed.example.com", True),
        ("_http._tcp.api.web.fed.example.com.", True),
        ("a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61, True),  # 253 bytes
        ("a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 62, False),  # 254 bytes
        ("", False),
        (".", False),
        ("a..b", False),
        ("_.a", False),
        ("*.a", False),
        ("A.b", False),
        ("a/b.c", False),
    ],
    ids=["fqdn", "no-dot", "srv-labels", "253-bytes", "254-bytes", "empty", "root",
         "empty-label", "bare-underscore", "wildcard", "upper", "slash"],
)
def test_check_name(name, ok):
    assert (check_name(name) is None) is ok


@pytest.mark.parametrize(
    ("zone", "expected"),
    [("fed.example.com.", "fed.example.com."), ("Fed.Example.COM", "fed.example.com."),
     ("local", "local.")],
    ids=["fqdn", "mixed-case", "single-label"],
)
def test_normalize_zone(zone, expected):
    assert normalize_zone(zone) == expected


@pytest.mark.parametrize("zone", ["", ".", "a..b", "fed/x.com", "*.example.com", "_x.com",
                                  "a" * 64 + ".com", ("a" * 60 + ".") * 5],
                         ids=["empty", "root", "empty-label", "slash", "wildcard", "underscore",
                              "long-label", "long-name"])
def test_normalize_zone_rejects(zone):
    with pytest.raises(ValueError, match="zone"):
        normalize_zone(zone)


@pytest.mark.parametrize(
    ("name", "prefix", "key"),
    [
        ("mysql.ns.fed.example.com.", "/skydns", "/skydns/com/example/fed/ns/mysql"),
        ("mysql.ns.fed.example.com", "/skydns", "/skydns/com/example/fed/ns/mysql"),
        ("MySQL.NS.fed.Example.com.", "/skydns", "/skydns/com/example/fed/ns/mysql"),
        ("_http._tcp.api.web.fed.example.com.", "/skydns",
         "/skydns/com/example/fed/web/api/_tcp/_http"),
        ("fed.example.com.", "/dns/fed/", "/dns/fed/com/example/fed"),
        (".", "/skydns", "/skydns"),
    ],
    ids=["fqdn", "no-trailing-dot", "mixed-case", "srv", "other-prefix", "root"],
)
def test_name_to_key(name, prefix, key):
    assert name_to_key(name=name, prefix=prefix) == key


@pytest.mark.parametrize("name", ["a..b.com", "a/b.com", "../x.com", ".a.com", "x" * 254],
                         ids=["empty-label", "slash", "dotdot-slash", "leading-dot", "too-long"])
def test_name_to_key_never_escapes_the_prefix(name):
    with pytest.raises(ValueError):
        name_to_key(name=name, prefix="/skydns")


@pytest.mark.parametrize(
    ("key", "prefix", "name"),
    [
        ("/skydns/com/example/fed/ns/mysql", "/skydns", "mysql.ns.fed.example.com."),
        ("/skydns/COM/Example/fed", "/skydns", "fed.example.com."),
        ("/skydns/com/example/fed/web/api/_tcp/_http", "/skydns",
         "_http._tcp.api.web.fed.example.com."),
        ("/skydns", "/skydns", "."),
    ],
    ids=["plain", "mixed-case", "srv", "prefix-itself"],
)
def test_key_to_name(key, prefix, name):
    assert key_to_name(key=key, prefix=prefix) == name


@pytest.mark.parametrize("key", ["/other/com/example", "/skydnsx/com", "skydns/com", "/skydns/com//x",
                                 "/skydns/com/", "/skydns/com/a.b"],
                         ids=["other-prefix", "prefix-lookalike", "relative", "empty-segment",
                              "trailing-slash", "dot-in-segment"])
def test_key_to_name_rejects(key):
    with pytest.raises(ValueError):
        key_to_name(key=key, prefix="/skydns")


@given(labels=st.lists(LABEL, min_size=1, max_size=4), srv=st.booleans())
def test_name_key_round_trip(labels, srv):
    if srv:
        labels = ["_" + labels[0], *labels[1:]]
    name = ".".join(labels) + ".fed.example.com."
    key = name_to_key(name=name, prefix="/skydns")
    assert key.startswith("/skydns/com/example/fed/")
    assert key_to_name(key=key, prefix="/skydns") == name
    assert name_to_key(name=name.upper().rstrip("."), prefix="/skydns") == key


def test_service_name():
    key = ServiceKey(namespace="ns", name="mysql")
    assert service_name(service=key, zone="Fed.Example.com") == "mysql.ns.fed.example.com."


@pytest.mark.parametrize("key", [ServiceKey(namespace="ns", name="a/b"),
                                 ServiceKey(namespace="../x", name="mysql")],
                         ids=["bad-service", "bad-namespace"])
def test_service_name_rejects_bad_labels(key):
    with pytest.raises(ValueError):
        service_name(service=key, zone="fed.example.com.")
