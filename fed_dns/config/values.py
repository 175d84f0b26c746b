"""Scalar config values: durations, DNS names, listen addresses, URLs, CIDRs, paths.

Each `check_*` function returns the normalised value or raises `ValueError` whose text is the
"expected ..., got ..." part of a config problem. The `Annotated` types wrap them for pydantic.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import urllib.parse
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

LABEL_TEXT = "a lower-case DNS label (RFC 1123)"
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NAMESPACE_PATTERN = re.compile(r"[a-z0-9*?-]{1,63}")


def shown(value: Any) -> str:
    """A value as a problem message shows it, in YAML's words (strings quoted, long ones cut)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("fed_dns", message)


def is_label(value: str) -> bool:
    return bool(_LABEL.fullmatch(value))


def check_label(value: str) -> str:
    if not is_label(value):
        extra = f" ({len(value)} characters, at most 63)" if len(value) > 63 else ""
        raise _fail(f"expected {LABEL_TEXT}, got {shown(value)}{extra}")
    return value


def normalize_zone(value: str) -> str:
    """Lower case, one trailing dot, every label an RFC 1123 label, 253 characters at most."""
    zone = value.strip().lower()
    zone = zone if zone.endswith(".") else zone + "."
    labels = zone[:-1].split(".")
    if zone == "." or any(not _LABEL.fullmatch(label) for label in labels) or len(zone) > 254:
        raise _fail(f"expected a DNS zone name of lower-case RFC 1123 labels like 'fed.example.com.', "
                    f"got {shown(value)}")
    return zone


def parse_duration(value: Any) -> float:
    """Seconds from 1.5, "1s", "500ms", "2m", "1h", "1m30s" or "10" (seconds)."""
    expected = "expected a duration like '1s', '500ms', '2m' or a number of seconds"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _fail(f"{expected}, got {shown(value)}")
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("-") and len(text) > 1:
            raise _fail(f"expected a duration that is not negative, got {shown(value)}")
        try:
            seconds = float(text)
        except ValueError:
            parts = list(_DURATION_PART.finditer(text))
            if not text or "".join(p.group(0) for p in parts) != text:
                raise _fail(f"{expected}, got {shown(value)}") from None
            seconds = sum(float(p.group(1)) * _UNIT_SECONDS[p.group(2)] for p in parts)
    else:
        seconds = float(value)
    if not math.isfinite(seconds):
        raise _fail(f"{expected}, got {shown(value)}")
    if seconds < 0:
        raise _fail(f"expected a duration that is not negative, got {shown(value)}")
    return seconds


MAX_DURATION = 30 * 86400.0  # longer than any timer fed-dns has; beyond it a typo is likelier
MAX_TTL = 2**31 - 1  # RFC 2181 section 8: a TTL is 0..2^31-1 seconds


def bounded_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds > MAX_DURATION:
        raise _fail(f"expected a duration of at most 30 days (2592000s), got {shown(value)}")
    return seconds


def whole_seconds_duration(value: Any) -> int:
    return whole_seconds(bounded_duration(value))


def ttl_seconds(value: Any) -> int:
    seconds = whole_seconds(parse_duration(value))
    if seconds > MAX_TTL:
        raise _fail(f"expected a TTL of at most {MAX_TTL}s (RFC 2181), got {shown(value)}")
    return seconds


def positive(seconds: float) -> float:
    if seconds <= 0:
        raise _fail("expected a duration greater than zero, got 0")
    return seconds


def at_least_a_second(seconds: float) -> float:
    if seconds < 1:
        raise _fail(f"expected a duration of at least 1s, got {seconds:g}s")
    return seconds


def off_or_at_least_a_second(seconds: float) -> float:
    if 0 < seconds < 1:
        raise _fail(f"expected 0 (off) or a duration of at least 1s, got {seconds:g}s")
    return seconds


def whole_seconds(seconds: float) -> int:
    if seconds < 1 or seconds != int(seconds):
        raise _fail(f"expected a whole number of seconds, at least 1s, got {seconds:g}s")
    return int(seconds)


def split_listen(value: str) -> tuple[str, int]:
    """("::1", 53) from "[::1]:53"; ("127.0.0.1", 5353) from "127.0.0.1:5353"."""
    expected = "expected host:port like '127.0.0.1:5353' or '[::1]:5353'"
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise _fail(f"{expected}, got {shown(value)}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _fail(f"{expected} (an IPv6 address in brackets), got {shown(value)}") from None
    elif ":" in host:
        raise _fail(f"{expected} (put an IPv6 address in brackets), got {shown(value)}")
    elif not _is_host(host):
        raise _fail(f"{expected}, got {shown(value)}")
    return host, int(port_text)


def _is_host(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
        return True
    except ValueError:
        pass
    if host.replace(".", "").isdigit():
        return False
    labels = host.lower().rstrip(".").split(".")
    return len(host) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def check_listen(value: str) -> str:
    split_listen(value)
    return value


def check_url(value: str) -> str:
    """An etcd endpoint: http(s)://host[:port], no credentials, path or query."""
    expected = "expected a URL like 'http://127.0.0.1:2379'"
    parts = urllib.parse.urlsplit(value.strip())
    if "@" in parts.netloc:
        raise _fail(f"{expected}, without credentials (use etcd.username and etcd.password)")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (parts.scheme not in ("http", "https") or not parts.hostname or port == -1
            or parts.path not in ("", "/") or parts.query or parts.fragment):
        raise _fail(f"{expected}, got {shown(value)}")
    return value.strip().rstrip("/")


def check_prefix(value: str) -> str:
    expected = "expected an etcd key prefix like '/skydns'"
    prefix = value.rstrip("/") if value != "/" else value
    segments = prefix.split("/")[1:]
    if not prefix.startswith("/") or prefix == "/" or any(s in ("", ".", "..") for s in segments) \
            or any(c.isspace() or c in "*" for c in prefix):
        raise _fail(f"{expected}, got {shown(value)}")
    return prefix


def check_cidr(value: str) -> str:
    """Canonical text of a network ("10.0.0.0/8"); host bits set are an error."""
    expected = "expected a network in CIDR notation like '10.0.0.0/8' or 'fd00::/8'"
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as exc:
        why = " (host bits set)" if "host bits" in str(exc) else ""
        raise _fail(f"{expected}, got {shown(value)}{why}") from None


_KUBE_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_KUBE_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def check_kube_label_key(value: str) -> str:
    """A Kubernetes label key: [prefix/]name (prefix a DNS subdomain, name at most 63)."""
    prefix, _, name = value.rpartition("/")
    if (not _KUBE_NAME.fullmatch(name)
            or ("/" in value and (not prefix or len(prefix) > 253 or not _KUBE_PREFIX.fullmatch(prefix)))):
        raise _fail(f"expected a Kubernetes label key like 'tier' or 'example.com/tier', got {shown(value)}")
    return value


def check_kube_label_value(value: str) -> str:
    if value and not _KUBE_NAME.fullmatch(value):
        raise _fail(f"expected a Kubernetes label value (at most 63 of A-Z a-z 0-9 - _ ., "
                    f"starting and ending with a letter or digit), got {shown(value)}")
    return value


def check_namespace_pattern(value: str) -> str:
    if not _NAMESPACE_PATTERN.fullmatch(value):
        raise _fail(f"expected a namespace name or a pattern like 'team-*', got {shown(value)}")
    return value


def check_owner_id(value: str) -> str:
    if not value or len(value) > 253 or any(c.isspace() or not c.isprintable() for c in value):
        raise _fail(f"expected a non-empty owner id without spaces, got {shown(value)}")
    return value


def expand_path(value: str) -> str:
    if not value.strip():
        raise _fail("expected a file path, got ''")
    return os.path.expanduser(value)


def _off_is_false(value: Any) -> Any:
    """YAML 1.1 reads an unquoted `off` as False; `mode: off` means the string."""
    return "off" if value is False else value


MAX_WORKERS = 64


def auto_or_count(value: Any) -> str | int:
    """`auto`, or a whole number of processes 0..MAX_WORKERS."""
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WORKERS:
        raise _fail(f"expected 'auto' or a whole number 0-{MAX_WORKERS}, got {shown(value)}")
    return value


Duration = Annotated[float, BeforeValidator(bounded_duration)]
Seconds = Annotated[int, BeforeValidator(whole_seconds_duration)]
Ttl = Annotated[int, BeforeValidator(ttl_seconds)]
PositiveDuration = Annotated[float, BeforeValidator(bounded_duration), AfterValidator(positive)]
SecondOrMore = Annotated[float, BeforeValidator(bounded_duration), AfterValidator(at_least_a_second)]
OffOrSecondOrMore = Annotated[float, BeforeValidator(bounded_duration), AfterValidator(off_or_at_least_a_second)]
Label = Annotated[str, AfterValidator(check_label)]
KubeLabelKey = Annotated[str, AfterValidator(lambda v: check_kube_label_key(v))]
KubeLabelValue = Annotated[str, AfterValidator(lambda v: check_kube_label_value(v))]
Zone = Annotated[str, AfterValidator(normalize_zone)]
Listen = Annotated[str, AfterValidator(check_listen)]
Url = Annotated[str, AfterValidator(check_url)]
Prefix = Annotated[str, AfterValidator(check_prefix)]
Cidr = Annotated[str, AfterValidator(check_cidr)]
NamespacePattern = Annotated[str, AfterValidator(check_namespace_pattern)]
OwnerId = Annotated[str, AfterValidator(check_owner_id)]
FilePath = Annotated[str, AfterValidator(expand_path)]
OffIsFalse = BeforeValidator(_off_is_false)
AutoOrCount = Annotated[str | int, BeforeValidator(auto_or_count)]
