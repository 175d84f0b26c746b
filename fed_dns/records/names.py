"""DNS names <-> etcd keys (SkyDNS layout) and label validation (naming.md). Pure.

Every label that fed-dns writes is a lower-case RFC 1123 label, so a hostile Service,
namespace or cluster name (`../x`, `a/b`, `*`) can never reach etcd or escape its prefix.
"""

from __future__ import annotations

import re
import string

from fed_dns.model import ServiceKey

MAX_LABEL = 63
MAX_NAME = 253
_ALLOWED = frozenset(string.ascii_lowercase + string.digits + "-")
# A valid label (ASCII, so its length in bytes is its length): one match, 0.23-0.35 us,
# where the loop below took 0.31-0.61 (a member's list checks ~8 labels per Service and slice).
_VALID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def check_label(label: str) -> str | None:
    """None when `label` is a valid lower-case RFC 1123 label, else a short reason."""
    if _VALID.fullmatch(label) is not None:
        return None
    if not label:
        return "empty label"
    if len(label.encode("utf-8", "surrogatepass")) > MAX_LABEL:
        return f"longer than {MAX_LABEL} bytes"
    for char in label:
        if char in _ALLOWED:
            continue
        if char in string.ascii_uppercase:
            return "upper case"
        return f"bad character {char!r}"
    if label.startswith("-") or label.endswith("-"):
        return "leading or trailing hyphen"
    return None


def check_name(name: str) -> str | None:
    """None when `name` (trailing dot optional) is a valid name of at most 253 bytes.

    Each label is an RFC 1123 label; a label may also be `_` + such a label (the
    `_<port>._<proto>` labels of SRV names, RFC 2782).
    """
    bare = name[:-1] if name.endswith(".") else name
    if not bare:
        return "empty name"
    if len(bare.encode("utf-8", "surrogatepass")) > MAX_NAME:
        return f"longer than {MAX_NAME} bytes"
    for label in bare.split("."):
        reason = check_label(label[1:] if label.startswith("_") else label)
        if reason is not None:
            return f"label {label!r}: {reason}"
    return None


def normalize_zone(zone: str) -> str:
    """The zone in lower case with a trailing dot; ValueError if any label is invalid."""
    bare = zone.lower()
    bare = bare[:-1] if bare.endswith(".") else bare
    if not bare:
        raise ValueError(f"zone {zone!r}: empty")
    for label in bare.split("."):
        reason = check_label(label)
        if reason is not None:
            raise ValueError(f"zone {zone!r}: label {label!r}: {reason}")
    if len(bare) > MAX_NAME:
        raise ValueError(f"zone {zone!r}: longer than {MAX_NAME} bytes")
    return bare + "."


def _prefix(prefix: str) -> str:
    bare = prefix.rstrip("/")
    if not bare.startswith("/") or "//" in bare:
        raise ValueError(f"prefix {prefix!r}: must be an absolute etcd path like '/skydns'")
    return bare


def name_to_key(*, name: str, prefix: str = "/skydns") -> str:
    """`mysql.ns.fed.example.com.` -> `/skydns/com/example/fed/ns/mysql` (case-insensitive).

    ValueError for an empty label, a `/` in a label, or a name longer than 253 bytes:
    the key of a name always lies below `prefix`.
    """
    bare = name.lower()
    bare = bare[:-1] if bare.endswith(".") else bare
    base = _prefix(prefix)
    if not bare:
        return base
    if len(bare.encode("utf-8", "surrogatepass")) > MAX_NAME:
        raise ValueError(f"name {name!r}: longer than {MAX_NAME} bytes")
    labels = bare.split(".")
    for label in labels:
        if not label:
            raise ValueError(f"name {name!r}: empty label")
        if "/" in label:
            raise ValueError(f"name {name!r}: '/' in label {label!r}")
    return "/".join([base, *reversed(labels)])


def key_to_name(*, key: str, prefix: str = "/skydns") -> str:
    """`/skydns/com/example/fed/ns/mysql` -> `mysql.ns.fed.example.com.` (lower case).

    ValueError for a key outside `prefix`, or with an empty path segment or one holding a
    dot (it would not map back to the same key).
    """
    base = _prefix(prefix)
    if key == base:
        return "."
    if not key.startswith(base + "/"):
        raise ValueError(f"key {key!r} is outside the prefix {base!r}")
    segments = key[len(base) + 1:].split("/")
    for segment in segments:
        if not segment:
            raise ValueError(f"key {key!r}: empty path segment")
        if "." in segment:
            raise ValueError(f"key {key!r}: '.' in path segment {segment!r}")
    return ".".join(reversed(segments)).lower() + "."


def service_name(*, service: ServiceKey, zone: str) -> str:
    """The global name `<svc>.<ns>.<zone>` with a trailing dot; ValueError on a bad label."""
    for what, label in (("service", service.name), ("namespace", service.namespace)):
        reason = check_label(label)
        if reason is not None:
            raise ValueError(f"{what} {label!r}: {reason}")
    return f"{service.name}.{service.namespace}.{normalize_zone(zone)}"
