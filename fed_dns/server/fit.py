"""What of a compiled answer fits in a size limit: a prefix of its records, found by bisection.

A compiled tail packs the records in section order (answer, authority, additional), each
name compressed only against what comes before it, so the first k records of a tail are a
byte prefix of it, valid on their own. `record_ends(tail)` reads the records' end offsets
once (cached on the entry, per tail); then every cut is a bisection and a slice, whatever the
answer's size: a 10,000-address name costs what a small one does, not a re-pack per query.

- UDP (`whole_sets=True`): whole RRsets only (RFC 2181 9); TC when a record of the answer
  or authority section is left out (leaving out additional records is not truncation).
- TCP (`whole_sets=False`): as many whole records as fit, never TC (RFC 7766: a TCP answer
  is complete as far as it goes; a client has nowhere else to ask).
"""

from __future__ import annotations

import array
import bisect
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from fed_dns.server.wire import skip_name


@dataclass(frozen=True, slots=True)
class Cut:
    """The first `size` bytes of a tail: `an`, `ns`, `ar` records of each section; `tc`."""

    size: int
    an: int
    ns: int
    ar: int
    tc: bool


def record_ends(tail: bytes) -> array.array:
    """The end offset of each record of a packed tail (in order)."""
    ends = array.array("I")
    offset = 0
    while offset < len(tail):
        offset = skip_name(tail, offset)
        (rdlen,) = struct.unpack_from("!H", tail, offset + 8)
        offset += 10 + rdlen
        ends.append(offset)
    return ends


def set_ends(sections: Sequence[Sequence[tuple]]) -> tuple[int, ...]:
    """The record counts at which an RRset ends (records are (owner, type, ...) tuples, an
    RRset a run of one owner and type within a section), ascending."""
    out = []
    count = 0
    for records in sections:
        for i, rr in enumerate(records):
            count += 1
            if i + 1 == len(records) or records[i + 1][:2] != rr[:2]:
                out.append(count)
    return tuple(out)


def cut(*, ends: Sequence[int], sets: Sequence[int], counts: tuple[int, int, int], room: int,
        whole_sets: bool) -> Cut:
    """The longest prefix of records within `room` bytes (pure). `ends`: each record's end
    offset; `sets`: record counts at RRset ends; `counts`: records per section."""
    k = bisect.bisect_right(ends, room)
    if whole_sets:
        i = bisect.bisect_right(sets, k)
        k = sets[i - 1] if i else 0
    an, ns, _ = counts
    return Cut(size=ends[k - 1] if k else 0, an=min(k, an), ns=min(max(k - an, 0), ns),
               ar=max(k - an - ns, 0), tc=whole_sets and k < an + ns)


def fitted(ent, tail: bytes, *, room: int, whole_sets: bool) -> Cut:
    """`cut` for one of a compiled entry's tails; the tail's record ends and the entry's
    RRset ends are read on the first cut and kept on the entry (`ent.cuts`)."""
    cache = ent.cuts
    if cache is None:
        ans = ent.answer
        cache = ent.cuts = {None: set_ends((ans.answer, ans.authority, ans.additional))}
    ends = cache.get(tail)
    if ends is None:
        ends = cache[tail] = record_ends(tail)
    ans = ent.answer
    return cut(ends=ends, sets=cache[None], room=room, whole_sets=whole_sets,
               counts=(len(ans.answer), len(ans.authority), len(ans.additional)))
