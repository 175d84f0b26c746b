"""Answers to wire bytes, once per (name, type) and table: the hot path only copies them.

A compiled response is `header(12) + question + tail`. The question is the client's own
bytes (so 0x20 case survives); the tail's owner names point at offset 12 by compression,
so they echo the client's case for free. Several tails rotate the order of address records.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass

import dnslib

from fed_dns.server import resolve as rs
from fed_dns.server.resolve import Answer

MAX_ROTATIONS = 8


def wire_name(name: str) -> bytes:
    """Lower-case text name (trailing dot) -> uncompressed wire form."""
    out = bytearray()
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode()
            out.append(len(raw))
            out += raw
    out.append(0)
    return bytes(out)


def _rdata(rtype: int, data) -> dnslib.RD:
    if rtype == rs.T_A:
        return dnslib.A(data)
    if rtype == rs.T_AAAA:
        return dnslib.AAAA(data)
    if rtype == rs.T_CNAME:
        return dnslib.CNAME(data)
    if rtype == rs.T_NS:
        return dnslib.NS(data)
    if rtype == rs.T_TXT:
        return dnslib.TXT([c.encode() for c in data])
    if rtype == rs.T_SRV:
        prio, weight, port, target = data
        return dnslib.SRV(priority=prio, weight=weight, port=port, target=target)
    if rtype == rs.T_MX:
        pref, target = data
        return dnslib.MX(target, preference=pref)
    if rtype == rs.T_SOA:
        mname, rname, *times = data
        return dnslib.SOA(mname, rname, tuple(times))
    if rtype == rs.T_HINFO:
        cpu, os_ = (s.encode() for s in data)
        return dnslib.RD(bytes([len(cpu)]) + cpu + bytes([len(os_)]) + os_)
    raise ValueError(f"no wire form for type {rtype}")


def to_rr(rr: rs.RR) -> dnslib.RR:
    owner, rtype, ttl, data = rr
    return dnslib.RR(owner, rtype, ttl=ttl, rdata=_rdata(rtype, data))


def header(*, rcode: int, aa: bool, rd: int, tc: bool = False,
           an: int = 0, ns: int = 0, ar: int = 0, cd: int = 0, opcode: int = 0) -> bytes:
    """Flags and counts (bytes 2..12 of a response; the ID is the client's)."""
    b2 = 0x80 | (opcode & 0x0F) << 3 | (0x04 if aa else 0) | (0x02 if tc else 0) | (rd & 1)
    b3 = (rcode & 0x0F) | (0x10 if cd else 0)
    return struct.pack("!BBHHHH", b2, b3, 1, an, ns, ar)


def pack_sections(*, qname: str, qtype: int, answer: tuple, authority: tuple,
                  additional: tuple) -> bytes:
    """The tail (sections after the question) for a lower-case question name."""
    msg = dnslib.DNSRecord(dnslib.DNSHeader(id=0, qr=1), q=dnslib.DNSQuestion(qname, qtype))
    for rr in answer:
        msg.add_answer(to_rr(rr))
    for rr in authority:
        msg.add_auth(to_rr(rr))
    for rr in additional:
        msg.add_ar(to_rr(rr))
    packed = msg.pack()
    return packed[12 + len(wire_name(qname)) + 4:]


def rotations(records: tuple) -> list[tuple]:
    """Orders of the answer: each run of same-owner A or AAAA records rotated 0..n-1."""
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(records):
        j = i + 1
        if records[i][1] in (rs.T_A, rs.T_AAAA):
            while j < len(records) and records[j][:2] == records[i][:2]:
                j += 1
            if j - i > 1:
                runs.append((i, j))
        i = j
    count = min(MAX_ROTATIONS, max((b - a for a, b in runs), default=1))
    out = []
    for k in range(count):
        rec = list(records)
        for a, b in runs:
            run = records[a:b]
            shift = k % len(run)
            rec[a:b] = run[shift:] + run[:shift]
        out.append(tuple(rec))
    return out


@dataclass(slots=True)
class Entry:
    """One compiled (name, type). `hdrs[edns*2 + rd]` are the ten header bytes after the ID."""

    qname: str
    qtype: int
    answer: Answer
    hdrs: tuple[bytes, bytes, bytes, bytes]
    tails: tuple[bytes, ...]
    cycle: itertools.cycle
    size: int  # len of every tail
    slot: int  # stats slot (qtype, rcode)


def compile_entry(*, qname: str, qtype: int, answer: Answer, slot: int = 0) -> Entry:
    an, ns, ar = len(answer.answer), len(answer.authority), len(answer.additional)
    hdrs = tuple(header(rcode=answer.rcode, aa=True, rd=rd, an=an, ns=ns, ar=ar + edns)
                 for edns in (0, 1) for rd in (0, 1))
    tails = tuple(pack_sections(qname=qname, qtype=qtype, answer=order,
                                authority=answer.authority, additional=answer.additional)
                  for order in rotations(answer.answer))
    return Entry(qname=qname, qtype=qtype, answer=answer, hdrs=hdrs, tails=tails,
                 cycle=itertools.cycle(tails), size=len(tails[0]), slot=slot)
