"""Queries from raw bytes, for the slow path: header, question, EDNS(0) OPT; nothing else.

Never raises anything but `Malformed`; `Malformed.header` says whether a FORMERR can be
sent (the 12-byte header was readable).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

T_OPT = 41
OPT_ECS = 8  # EDNS Client Subnet (RFC 7871)
MAX_LABELS = 127


class Malformed(Exception):
    def __init__(self, reason: str, *, header: bool) -> None:
        super().__init__(reason)
        self.header = header


@dataclass(frozen=True, slots=True)
class Edns:
    udp_size: int
    version: int
    do: bool
    ecs: Ecs | None = None


@dataclass(frozen=True, slots=True)
class Ecs:
    """An EDNS Client Subnet option as sent: family (1 IPv4, 2 IPv6), source prefix length,
    the address's prefix bytes."""

    family: int
    prefix: int
    address: bytes


def read_ecs(rdata: bytes) -> Ecs | None:
    """The ECS option among the OPT's options; None when absent or malformed."""
    i = 0
    while i + 4 <= len(rdata):
        code, size = struct.unpack_from("!HH", rdata, i)
        body = rdata[i + 4:i + 4 + size]
        i += 4 + size
        if code == OPT_ECS and len(body) == size and size >= 4:
            family, prefix, _scope = struct.unpack_from("!HBB", body)
            return Ecs(family=family, prefix=prefix, address=bytes(body[4:]))
    return None


@dataclass(frozen=True, slots=True)
class Query:
    id: bytes  # the two ID bytes
    flags: int  # 16-bit flags word
    qname: bytes  # the question name exactly as sent (case kept)
    qtype: int
    qclass: int
    question_end: int  # offset after qtype/qclass
    edns: Edns | None

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0x0F

    @property
    def rd(self) -> int:
        return (self.flags >> 8) & 1

    @property
    def cd(self) -> int:
        return (self.flags >> 4) & 1


def read_name(data: bytes, offset: int) -> int:
    """End offset of an uncompressed name starting at offset."""
    labels = 0
    total = 0
    while True:
        if offset >= len(data):
            raise Malformed("name runs past the end", header=True)
        n = data[offset]
        if n == 0:
            return offset + 1
        if n & 0xC0:
            raise Malformed("compressed or extended label in the question", header=True)
        labels += 1
        total += n + 1
        if labels > MAX_LABELS or total > 254:
            raise Malformed("name too long", header=True)
        offset += 1 + n


def skip_name(data: bytes, offset: int) -> int:
    """End offset of a possibly compressed name (pointers are not followed: no loops)."""
    for _ in range(MAX_LABELS + 1):
        if offset >= len(data):
            raise Malformed("name runs past the end", header=True)
        n = data[offset]
        if n == 0:
            return offset + 1
        if n & 0xC0 == 0xC0:
            if offset + 2 > len(data):
                raise Malformed("pointer runs past the end", header=True)
            return offset + 2
        if n & 0xC0:
            raise Malformed("unknown label type", header=True)
        offset += 1 + n
    raise Malformed("too many labels", header=True)


def _skip_rrs(data: bytes, offset: int, count: int, *, opt: list) -> int:
    for _ in range(count):
        start = offset
        offset = skip_name(data, offset)
        if offset + 10 > len(data):
            raise Malformed("record runs past the end", header=True)
        rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", data, offset)
        offset += 10 + rdlen
        if offset > len(data):
            raise Malformed("rdata runs past the end", header=True)
        if rtype == T_OPT:
            if data[start] != 0:
                raise Malformed("OPT owner is not the root", header=True)
            opt.append(Edns(udp_size=rclass, version=(ttl >> 16) & 0xFF, do=bool(ttl & 0x8000),
                            ecs=read_ecs(data[offset - rdlen:offset]) if rdlen else None))
    return offset


def parse(data: bytes) -> Query:
    if len(data) < 12:
        raise Malformed("shorter than a header", header=False)
    qid = data[:2]
    flags, qd, an, ns, ar = struct.unpack_from("!HHHHH", data, 2)
    if flags & 0x8000:
        raise Malformed("a response, not a query", header=False)  # never answer answers
    if qd != 1:
        raise Malformed(f"{qd} questions", header=True)
    end = read_name(data, 12)
    if end + 4 > len(data):
        raise Malformed("question runs past the end", header=True)
    qtype, qclass = struct.unpack_from("!HH", data, end)
    opts: list[Edns] = []
    offset = _skip_rrs(data, end + 4, an + ns, opt=[])
    _skip_rrs(data, offset, ar, opt=opts)
    if len(opts) > 1:
        raise Malformed("more than one OPT", header=True)
    return Query(id=qid, flags=flags, qname=data[12:end], qtype=qtype, qclass=qclass,
                 question_end=end + 4, edns=opts[0] if opts else None)


def opt_rr(*, udp_size: int, do: bool = False, ext_rcode: int = 0, options: bytes = b"") -> bytes:
    """Our OPT record: root owner, our UDP size, version 0, `options` (wire form) if any."""
    return struct.pack("!BHHBBHH", 0, T_OPT, udp_size, ext_rcode, 0, 0x8000 if do else 0,
                       len(options)) + options


def ecs_option(ecs: Ecs) -> bytes:
    """The ECS option echoed in a response: scope = source prefix (the answer holds for
    that subnet as sent)."""
    body = struct.pack("!HBB", ecs.family, ecs.prefix, ecs.prefix) + ecs.address
    return struct.pack("!HH", OPT_ECS, len(body)) + body


def error_header(data: bytes, rcode: int) -> bytes:
    """A bare header (no question) for a query too broken to echo."""
    flags = struct.unpack_from("!H", data, 2)[0]
    out_flags = 0x8000 | (flags & 0x7800) | (flags & 0x0100) | (rcode & 0x0F)
    return data[:2] + struct.pack("!HHHHH", out_flags, 0, 0, 0, 0)
