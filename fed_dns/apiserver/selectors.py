"""labelSelector and fieldSelector strings as the API server parses them."""

from __future__ import annotations

import re
from collections.abc import Callable

from fed_dns.apiserver.status import ApiError

Matcher = Callable[[dict], bool]

_SET = re.compile(r"^\s*(!?)([\w./-]+)\s*(?:(notin|in)\s*\((.*)\))?\s*$")
_EQ = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)\s*$")


def _split(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


def _label_term(term: str) -> Callable[[dict], bool]:
    m = _EQ.match(term)
    if m:
        key, op, value = m.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    m = _SET.match(term)
    if m:
        neg, key, op, values = m.groups()
        if op is None:
            if neg:
                return lambda labels: key not in labels
            return lambda labels: key in labels
        if neg:
            raise ApiError(code=400, message=f"unable to parse requirement: {term!r}")
        allowed = {v.strip() for v in values.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in allowed
        return lambda labels: labels.get(key) not in allowed
    raise ApiError(code=400, message=f"unable to parse requirement: {term!r}")


def label_selector(text: str | None) -> Matcher | None:
    """A predicate on an object's labels, or None for "everything"."""
    if not text or not text.strip():
        return None
    terms = [_label_term(t) for t in _split(text)]

    def match(obj: dict) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(t(labels) for t in terms)

    return match


def _field(obj: dict, path: str) -> str:
    cur: object = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def field_selector(text: str | None) -> Matcher | None:
    """A predicate on fields such as `metadata.name=x`, `metadata.namespace!=y`."""
    if not text or not text.strip():
        return None
    terms: list[tuple[str, bool, str]] = []
    for term in _split(text):
        m = _EQ.match(term)
        if not m:
            raise ApiError(code=400, message=f"invalid field selector: {term!r}")
        path, op, value = m.groups()
        terms.append((path, op == "!=", value))

    def match(obj: dict) -> bool:
        return all((_field(obj, p) != v) if neg else (_field(obj, p) == v) for p, neg, v in terms)

    return match


def both(*matchers: Matcher | None) -> Matcher | None:
    active = [m for m in matchers if m is not None]
    if not active:
        return None
    if len(active) == 1:
        return active[0]
    return lambda obj: all(m(obj) for m in active)
