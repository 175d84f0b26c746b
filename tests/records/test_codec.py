"""The SkyDNS JSON codec: compact, sorted, round-trips; reads values as CoreDNS's msg.Service."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fed_dns.model import Record
from fed_dns.records import codec
from fed_dns.records.codec import backend_id, decode, encode, owner_and_cluster

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
RECORDS = st.builds(
    Record,
    host=st.text(), port=INT64, priority=INT64, weight=INT64, text=st.text(),
    mail=st.booleans(), ttl=st.integers(min_value=0, max_value=2**32 - 1),
    targetstrip=INT64, group=st.text(), owner=st.text(), cluster=st.text(),
)


@given(record=RECORDS)
def test_round_trip(record):
    assert decode(encode(record)) == record
    assert decode(encode(record).decode()) == record


@given(record=RECORDS)
def test_equal_records_are_equal_bytes_compact_and_sorted(record):
    data = encode(record)
    assert data == encode(Record(**{f: getattr(record, f) for f in record.__slots__}))
    parsed = json.loads(data)
    assert data == json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()
    assert all(value not in (0, "", False) for value in parsed.values())


@pytest.mark.parametrize(
    ("record", "data"),
    [
        (Record(host="10.1.0.7", port=3306, ttl=5, owner="fed-dns/fed.example.com.", cluster="c1"),
         b'{"cluster":"c1","host":"10.1.0.7","owner":"fed-dns/fed.example.com.","port":3306,"ttl":5}'),
        (Record(host="mysql.ns.fed.example.com", port=-1, ttl=5),
         b'{"host":"mysql.ns.fed.example.com","port":-1,"ttl":5}'),
        (Record(), b"{}"),
        (Record(host="x", mail=True, priority=10), b'{"host":"x","mail":true,"priority":10}'),
        (Record(text="\u00e9"), b'{"text":"\\u00e9"}'),
    ],
    ids=["leaf", "fallback-keeps-port-minus-one", "empty", "mail", "non-ascii-escaped"],
)
def test_encode_exact_bytes(record, data):
    assert encode(record) == data


@pytest.mark.parametrize(
    "record",
    [Record(port=True), Record(ttl=-1), Record(ttl=2**32), Record(port=2**63), Record(host=5),
     Record(mail=1)],
    ids=["bool-port", "negative-ttl", "ttl-overflow", "port-overflow", "int-host", "int-mail"],
)
def test_encode_refuses_what_coredns_could_not_read(record):
    with pytest.raises(ValueError, match="cannot encode"):
        encode(record)


@pytest.mark.parametrize(
    ("data", "record"),
    [
        (b'{"host":"10.0.0.1","color":"blue","nested":{"a":[1,{"b":null}]}}', Record(host="10.0.0.1")),
        (b'{"HOST":"10.0.0.1","Port":53,"TTL":5}', Record(host="10.0.0.1", port=53, ttl=5)),
        (b'{"host":"a","port":null}', Record(host="a")),
        (b'{"host":"a","host":"b"}', Record(host="b")),
        (b'{"host":"a","HOST":"b"}', Record(host="b")),
        (b'{"host":"a","host":null}', Record(host="a")),
        (b'{"Key":"x","key":1}', Record()),
        (b' \n{"port":-0}\t', Record()),
        (b'{"host":"a\xffb"}', Record(host="a\ufffdb")),
        ('{"text":"\u00e9"}', Record(text="\u00e9")),
        (bytearray(b'{"ttl":4294967295}'), Record(ttl=4294967295)),
        (b'{"owner":"fed-dns/z.","cluster":"c1"}', Record(owner="fed-dns/z.", cluster="c1")),
    ],
    ids=["unknown-fields-ignored", "field-names-case-insensitive", "null-is-zero",
         "duplicate-last-wins", "case-variant-last-wins", "null-keeps-earlier",
         "json-dash-key-ignored", "whitespace-and-minus-zero", "bad-utf8-replaced-as-go",
         "str-input", "bytearray-max-ttl", "fed-dns-fields"],
)
def test_decode_like_coredns(data, record):
    assert decode(data) == record


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "invalid JSON"),
        (b"{", "invalid JSON"),
        (b"{'host':'a'}", "invalid JSON"),
        (b'{"host":"a"} x', "invalid JSON"),
        (b'{"host":"a\nb"}', "invalid JSON"),
        (b'{"port":NaN}', "NaN"),
        (b'{"port":Infinity}', "Infinity"),
        (b"\xef\xbb\xbf{}", "invalid JSON"),
        (b"[" * 100_000, "invalid JSON"),
        (b"1" * 5000, "invalid JSON"),
        (b"[]", "not a JSON object"),
        (b"null", "not a JSON object"),
        (b'"host"', "not a JSON object"),
        (b"5", "not a JSON object"),
        (b'{"host":5}', "'host'"),
        (b'{"host":["a"]}', "'host'"),
        (b'{"port":"53"}', "'port'"),
        (b'{"port":53.0}', "'port'"),
        (b'{"port":1e2}', "'port'"),
        (b'{"port":true}', "'port'"),
        (b'{"port":9223372036854775808}', "'port'"),
        (b'{"ttl":-1}', "'ttl'"),
        (b'{"ttl":4294967296}', "'ttl'"),
        (b'{"mail":1}', "'mail'"),
        (b'{"mail":"true"}', "'mail'"),
        (b'{"text":{}}', "'text'"),
        (b'{"owner":7}', "'owner'"),
        (b'{"cluster":false}', "'cluster'"),
    ],
    ids=["empty", "truncated", "single-quotes", "trailing-garbage", "control-char",
         "nan", "infinity", "bom", "deep-nesting", "huge-number", "array", "null", "string",
         "number", "host-int", "host-array", "port-string", "port-float", "port-exponent",
         "port-bool", "port-overflow", "ttl-negative", "ttl-overflow", "mail-int",
         "mail-string", "text-object", "owner-int", "cluster-bool"],
)
def test_decode_errors_are_value_errors(data, message):
    with pytest.raises(ValueError, match=message):
        decode(data)


@given(data=st.one_of(st.binary(), st.text(), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.sampled_from(
        ["host", "port", "ttl", "mail", "text", "owner", "x"]), inner),
).map(lambda v: json.dumps(v))))
def test_decode_raises_nothing_but_value_error(data):
    try:
        decode(data)
    except ValueError:
        pass


def test_backend_id_is_stable_short_hex():
    ident = backend_id("10.1.0.7")
    assert ident == backend_id("10.1.0.7")
    assert len(ident) == 8 and int(ident, 16) >= 0
    assert ident != backend_id("10.1.0.8")


def test_decoded_values_share_their_owner_cluster_and_group_strings():
    """A zone repeats a few owners, clusters and groups over every record: each is one
    string in memory, not one per decoded value (the hosts stay as they are)."""
    first = decode(b'{"cluster":"east","group":"g1","host":"10.0.0.1","owner":"fed-dns/fed.example.com."}')
    second = decode(bytes(b'{"cluster":"ea' + b'st","group":"g1","host":"10.0.0.2","owner":"fed-dns/fed.example.com."}'))
    assert first.cluster == second.cluster == "east"
    assert first.cluster is second.cluster
    assert first.owner is second.owner and first.group is second.group
    assert first.host != second.host


PLAIN = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e, blacklist_characters='"\\'))
PLAIN_RECORDS = st.builds(
    Record, host=PLAIN, port=st.integers(-(10**18) + 1, 10**18 - 1), text=PLAIN,
    ttl=st.integers(0, 10**9 - 1), mail=st.booleans(), group=PLAIN, owner=PLAIN, cluster=PLAIN)


def _mangled(value: bytes, data) -> bytes:
    """A value near encode's form: bytes cut, doubled, swapped or inserted at one place."""
    at = data.draw(st.integers(0, len(value)))
    change = data.draw(st.sampled_from([b"", b",", b"}", b'"', b"\\", b" ", b"{", b"null", b'"owner":"x",',
                                        b'"Owner":"x",', b"1.5", b"\xc3\xa9", b"\x01"]))
    cut = data.draw(st.integers(0, 3))
    return value[:at] + change + value[at + cut:]


@given(record=RECORDS | PLAIN_RECORDS, data=st.data())
def test_owner_and_cluster_reads_as_decode_or_not_at_all(record, data):
    """The undecoded read (plan.stale's) gives decode's owner and cluster, or None: for
    encode's own output, for values a byte or a field away from it, for anything."""
    value = encode(record)
    for candidate in (value, _mangled(value, data), _mangled(_mangled(value, data), data)):
        read = owner_and_cluster(candidate)
        if read is None:
            continue
        decoded = decode(candidate)  # a value it reads always decodes
        assert read == (decoded.owner, decoded.cluster), candidate


@given(record=PLAIN_RECORDS)
def test_owner_and_cluster_reads_every_plain_value_encode_writes(record):
    assert owner_and_cluster(encode(record)) == (record.owner, record.cluster)


@pytest.mark.parametrize("value", [
    b'{"cluster":"c1",}', b'{"cluster":"c1""owner":"o"}', b'{,"owner":"o"}', b'{"owner":"o"} ',
    b'{"owner":"a","owner":"b"}', b'{"port":1.0,"owner":"o"}', b'{"ttl":-1,"owner":"o"}',
    b'{"owner":"o","cluster":"c1"}', b'{"owner":null}', b'{"owner":"\\u0041"}', b'{"Owner":"o"}',
])
def test_owner_and_cluster_leaves_any_other_form_to_decode(value):
    assert owner_and_cluster(value) is None


def _json_or_error(value: bytes):
    try:
        return codec._decode_json(value)
    except ValueError:
        return ValueError


@given(record=RECORDS | PLAIN_RECORDS, data=st.data())
def test_decode_reads_encodes_own_form_as_json_would(record, data):
    """decode's regular-expression path (a value in encode's own form) gives the Record the
    JSON path gives, for encode's output and for values a byte or a field away from it."""
    value = encode(record)
    for candidate in (value, _mangled(value, data), _mangled(_mangled(value, data), data)):
        try:
            got = decode(candidate)
        except ValueError:
            got = ValueError
        assert got == _json_or_error(candidate), candidate
        if got is not ValueError and codec._CANONICAL.match(candidate):
            assert got.owner is sys.intern(got.owner) and got.cluster is sys.intern(got.cluster)


@given(record=PLAIN_RECORDS)
def test_plain_values_take_the_regular_expression_path(record):
    assert codec._CANONICAL.match(encode(record)) is not None
    assert decode(encode(record)) == record
