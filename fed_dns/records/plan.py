"""The owner-safe diff between what etcd holds and the zone fed-dns wants. Pure.

As external-dns's strictly-owned registry: fed-dns changes or deletes only keys whose value
decodes and carries its own owner id. A desired key held by anyone else (or by a value that
does not decode) is left alone and reported as a conflict. Keys of clusters whose health is
unknown (`DesiredZone.keep_clusters`) are not deleted.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass

from fed_dns.model import Changes, DesiredZone, Record
from fed_dns.records.codec import claimed_clusters, decode, encode, owner_and_cluster
from fed_dns.records.render import layout


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
    lay = layout(desired.settings)
    scope = lay.base + "/"
    wanted: dict[str, bytes] = {}
    for key in sorted(desired.records):
        if not key.startswith(scope):
            raise ValueError(f"desired key {key!r} lies outside the zone prefix {scope!r}")
        wanted[key] = encode(desired.records[key])
    held = ((key, value) for key, value in current.items() if key.startswith(scope))
    return plan_keys(desired=wanted, current=current, held=held, owner=lay.owner,
                     keep_clusters=desired.keep_clusters)


def plan_keys(
    *,
    desired: Mapping[str, bytes],
    current: Mapping[str, bytes],
    held: Iterable[tuple[str, bytes]],
    owner: str,
    keep_clusters: Container[str],
    stale_keys: Iterable[str] = (),
) -> Plan:
    """The plan for part of a zone: `desired` (key -> encoded value) against `current` (looked
    up per desired key); `held` are the current (key, value) pairs of that part, deleted when
    undesired, owned and not of a kept cluster; `stale_keys` are undesired keys of that part
    the caller knows to be such (deleted without reading them). Puts and conflicts follow
    `desired`'s order, deletes are deepest first."""
    puts: dict[str, bytes] = {}
    conflicts: list[Conflict] = []
    for key, value in desired.items():
        got = current.get(key)
        if got is None:
            puts[key] = value
        elif got != value:
            _, reason = _read(got, owner)
            if reason is None:
                puts[key] = value
            else:
                conflicts.append(Conflict(key=key, reason=reason))
    deletes = []
    verdicts: dict[bytes, bool] = {}  # a value held by several keys (leaf and SRV) read once
    for key, got in held:
        if key in desired:
            continue
        verdict = verdicts.get(got)
        if verdict is None:
            verdict = verdicts[got] = stale(got, owner=owner, keep_clusters=keep_clusters)
        if verdict:
            deletes.append(key)
    deletes.extend(stale_keys)
    deletes.sort(key=deepest_first)
    return Plan(changes=Changes(puts=puts, deletes=tuple(deletes)), conflicts=tuple(conflicts))


def stale(value: bytes, *, owner: str, keep_clusters: Container[str]) -> bool:
    """Whether an undesired key holding `value` is deleted: it is ours, not of a kept cluster.
    Read without decoding where that is certain: a value in encode's own form (a failover
    asks this of the member's every key: 30,000 decodes at 10 x 5,000), and a value that can
    only name kept clusters, whoever owns it (a restart recomputes every group while its
    members still list, all of them kept: that decoded the whole zone on the event loop)."""
    read = owner_and_cluster(value)
    if read is not None:
        return read[0] == owner and read[1] not in keep_clusters
    clusters = claimed_clusters(value)
    if clusters and all(cluster in keep_clusters for cluster in clusters):
        return False
    record, reason = _read(value, owner)
    return reason is None and record.cluster not in keep_clusters


def deepest_first(key: str) -> tuple[int, str]:
    """Sort key of deletes: children before their parents."""
    return -key.count("/"), key


def _read(value: bytes, owner: str) -> tuple[Record | None, str | None]:
    """The record in `value` and None if it is `owner`'s, else None and why it is not ours."""
    try:
        record = decode(value)
    except ValueError as exc:
        return None, f"value does not decode: {exc}"
    if record.owner != owner:
        return None, f"owned by {record.owner!r}" if record.owner else "no owner"
    return record, None
