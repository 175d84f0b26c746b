"""The SkyDNS JSON value of an etcd key, read and written as CoreDNS's `msg.Service` is. Pure.

`decode` runs on every value in the zone, foreign ones included, so anything it cannot read
is a ValueError with a clear message, never another exception. It follows Go's
encoding/json as CoreDNS uses it: unknown fields are ignored, field names match exactly or
else case-insensitively, `null` leaves a field at its zero value, the last duplicate wins,
and a value of the wrong JSON type (a string port, a fractional or out-of-range number, a
number for `mail`) is an error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
from typing import Any

from fed_dns.model import Record

_INT64 = (-(2**63), 2**63 - 1)
_UINT32 = (0, 2**32 - 1)
# Field -> (kind, range). `ttl` is a uint32 in msg.Service, the other numbers Go ints.
_FIELDS: dict[str, tuple[type, tuple[int, int] | None]] = {
    "host": (str, None),
    "port": (int, _INT64),
    "priority": (int, _INT64),
    "weight": (int, _INT64),
    "text": (str, None),
    "mail": (bool, None),
    "ttl": (int, _UINT32),
    "targetstrip": (int, _INT64),
    "group": (str, None),
    "owner": (str, None),
    "cluster": (str, None),
}
_FOLDED = {name.casefold(): name for name in _FIELDS}
assert set(_FIELDS) == {f.name for f in dataclasses.fields(Record)}

_JSON_TYPE = {str: "a string", int: "an integer", bool: "true or false"}
# Fields whose few values repeat over the whole zone (one owner, a cluster per member): one
# string each, not one per record (about 18 MB at 10 x 5,000 in a DNS worker).
_INTERNED = frozenset({"owner", "cluster", "group"})


def _check(field: str, value: Any) -> str | None:
    """None when `value` fits `field`, else why not."""
    kind, bounds = _FIELDS[field]
    ok = type(value) is kind  # bool is not an int here, as in Go
    if ok and bounds is not None and not bounds[0] <= value <= bounds[1]:
        return f"field {field!r}: {value} is out of range {bounds[0]}..{bounds[1]}"
    if not ok:
        return f"field {field!r}: expected {_JSON_TYPE[kind]}, got {_describe(value)}"
    return None


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, int):
        return "an integer"
    if value is None:
        return "null"
    return {str: "a string", list: "an array", _Object: "an object"}.get(type(value), "a value")


# One encoder for every value: json.dumps with any argument builds a new JSONEncoder per call
# (6.8 -> 4.0 us a record; each churn event encodes three).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)


def encode(record: Record) -> bytes:
    """Compact JSON with sorted keys; zero/empty/False fields left out (port -1 is kept)."""
    fields: dict[str, Any] = {}
    for field in _FIELDS:
        value = getattr(record, field)
        reason = _check(field, value)
        if reason is not None:
            raise ValueError(f"cannot encode record: {reason}")
        if value:
            fields[field] = value
    return _ENCODER.encode(fields).encode("ascii")


class _Object(list):
    """A JSON object as its (key, value) pairs in order: Go applies duplicates in order."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


# One decoder for every value: json.loads with hooks builds a new JSONDecoder per call, which
# was a third of the time of building a 300,000-key table.
_DECODER = json.JSONDecoder(object_pairs_hook=_Object, parse_constant=_reject_constant)


def decode(value: bytes | bytearray | memoryview | str) -> Record:
    """A Record from a SkyDNS JSON value; ValueError if CoreDNS could not read it either.
    A value in encode's own form (nearly every value of the zone) is read with one regular
    expression (`_CANONICAL`), anything else as JSON; both give the same Record."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        match = _CANONICAL.match(value)
        if match is not None:
            return _from_canonical(match)
    return _decode_json(value)


def _from_canonical(match: re.Match[bytes]) -> Record:
    fields: dict[str, Any] = {}
    for name, got in zip(_SORTED_FIELDS, match.groups()):
        if got is None:
            continue
        kind = _FIELDS[name][0]
        if kind is str:
            text = got.decode("ascii")
            fields[name] = sys.intern(text) if name in _INTERNED else text
        elif kind is int:
            fields[name] = int(got)
        else:
            fields[name] = got == b"true"
    return Record(**fields)


def _decode_json(value: bytes | bytearray | memoryview | str) -> Record:
    """`decode` for any value: JSON as Go's encoding/json reads it into msg.Service."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        text = bytes(value).decode("utf-8", errors="replace")  # as Go: bad UTF-8 -> U+FFFD
    elif isinstance(value, str):
        text = value
    else:
        raise TypeError(f"decode() wants bytes or str, not {type(value).__name__}")
    try:
        pairs = _DECODER.decode(text)
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    if not isinstance(pairs, _Object):
        raise ValueError(f"not a JSON object: {_describe(pairs)}")
    fields: dict[str, Any] = {}
    for key, item in pairs:
        field = key if key in _FIELDS else _FOLDED.get(key.casefold())
        if field is None or item is None:
            continue
        reason = _check(field, item)
        if reason is not None:
            raise ValueError(reason)
        fields[field] = sys.intern(item) if field in _INTERNED else item
    return Record(**fields)


def backend_id(address: str) -> str:
    """A stable 8-hex-digit id for a backend address (the `<id>` of its key)."""
    return hashlib.blake2b(address.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()


_CANONICAL_CLUSTER = b'{"cluster":"'  # how encode starts a value that names a cluster


def claimed_clusters(value: bytes) -> tuple[str, ...]:
    """Every cluster a value may name (a superset of what `decode` would read), cheaply: the
    keys of a cluster are re-planned when its keep status flips, and a key of a kept cluster
    is never stale (plan.stale) without decoding it."""
    value = bytes(value)
    # As encode writes it: `cluster` first; plain ASCII without escapes, so no other key
    # can fold to "cluster" without spelling "luster" in some case.
    if value.startswith(_CANONICAL_CLUSTER) and value.isascii() and b"\\" not in value:
        end = value.find(b'"', len(_CANONICAL_CLUSTER))
        if end > 0 and value.lower().find(b"luster", end) < 0:
            return (value[len(_CANONICAL_CLUSTER):end].decode("ascii"),)
    try:  # every pair, in order: a later `"cluster": null` leaves an earlier one in force
        pairs = json.loads(value.decode("utf-8", errors="replace"), object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):
        return ()
    if not isinstance(pairs, _Pairs):
        return ()
    return tuple({item for name, item in pairs if isinstance(item, str) and name.casefold() == "cluster"})


def _canonical_form() -> re.Pattern[bytes]:
    """encode's own form: the fields in sorted order, each at most once, plain ASCII strings
    without escapes, integers in range; anything else does not match."""
    text = rb'"([^"\\\x00-\x1f\x7f-\xff]*)"'
    number = rb"(-?(?:0|[1-9][0-9]{0,17}))"  # below 10**18: any int64 field takes it
    kinds = {str: text, int: number, bool: rb"(true|false)"}
    fields = []
    for name in sorted(_FIELDS):
        kind, _ = _FIELDS[name]
        value = rb"(0|[1-9][0-9]{0,8})" if name == "ttl" else kinds[kind]  # uint32
        # each field ends the object or is followed by a comma and another field
        fields.append(rb'(?:"' + name.encode() + rb'":' + value + rb"(?:,(?!\})|(?=\}\Z)))?")
    return re.compile(rb"\{" + b"".join(fields) + rb"\}\Z")


_CANONICAL = _canonical_form()
_SORTED_FIELDS = tuple(sorted(_FIELDS))  # the order of _CANONICAL's groups
_OWNER_GROUP = 1 + _SORTED_FIELDS.index("owner")
_CLUSTER_GROUP = 1 + _SORTED_FIELDS.index("cluster")


def owner_and_cluster(value: bytes) -> tuple[str, str] | None:
    """(owner, cluster) as `decode` would read them, for a value in encode's own form, without
    decoding it (plan.stale asks this of every undesired key: a failover asked it of 30,000);
    None for any other value (decode it)."""
    match = _CANONICAL.match(value)
    if match is None:
        return None
    owner, cluster = match.group(_OWNER_GROUP, _CLUSTER_GROUP)
    return (owner.decode("ascii") if owner else "", cluster.decode("ascii") if cluster else "")


class _Pairs(list):
    """A JSON object as its (key, value) pairs."""
