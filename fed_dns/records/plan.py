"""The owner-safe diff between what etcd holds and the zone fed-dns wants. Pure.

As external-dns's strictly-owned registry: fed-dns changes or deletes only keys whose value
decodes and carries its own owner id. A desired key held by anyone else (or by a value that
does not decode) is left alone and reported as a conflict. Keys of clusters whose health is
unknown (`DesiredZone.keep_clusters`) are not deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fed_dns.model import Changes, DesiredZone, Record
from fed_dns.records.codec import decode, encode
from fed_dns.records.names import name_to_key, normalize_zone
from fed_dns.records.render import owner_of


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Conflict:
    """A key fed-dns wants but may not write: someone else's value sits there."""

    key: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    changes: Changes
    conflicts: tuple[Conflict, ...] = ()


def calculate(*, current: Mapping[str, bytes], desired: DesiredZone) -> Changes:
    """Puts (only where the bytes differ) and deletes (deepest first) that make etcd's
    owned keys under the zone equal `desired`."""
    return diff(current=current, desired=desired).changes


def diff(*, current: Mapping[str, bytes], desired: DesiredZone) -> Plan:
    """`calculate` plus the desired keys it skipped because they are not fed-dns's."""
    settings = desired.settings
    owner = owner_of(settings)
    scope = name_to_key(name=normalize_zone(settings.zone), prefix=settings.prefix) + "/"
    puts: dict[str, bytes] = {}
    conflicts: list[Conflict] = []
    for key in sorted(desired.records):
        if not key.startswith(scope):
            raise ValueError(f"desired key {key!r} lies outside the zone prefix {scope!r}")
        value = encode(desired.records[key])
        held = current.get(key)
        if held is None:
            puts[key] = value
        elif bytes(held) != value:
            _, reason = _read(held, owner)
            if reason is None:
                puts[key] = value
            else:
                conflicts.append(Conflict(key=key, reason=reason))
    deletes = []
    for key, held in current.items():
        if key.startswith(scope) and key not in desired.records:
            record, reason = _read(held, owner)
            if reason is None and record.cluster not in desired.keep_clusters:
                deletes.append(key)
    deletes.sort(key=lambda key: (-key.count("/"), key))
    return Plan(changes=Changes(puts=puts, deletes=tuple(deletes)), conflicts=tuple(conflicts))


def _read(value: bytes, owner: str) -> tuple[Record | None, str | None]:
    """The record in `value` and None if it is `owner`'s, else None and why it is not ours."""
    try:
        record = decode(value)
    except ValueError as exc:
        return None, f"value does not decode: {exc}"
    if record.owner != owner:
        return None, f"owned by {record.owner!r}" if record.owner else "no owner"
    return record, None
