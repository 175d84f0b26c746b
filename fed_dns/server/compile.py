"""Answers to wire bytes, once per (name, type) and table: the hot path only copies them.

A compiled response is `header(12) + question + tail`. The question is the client's own
bytes (so 0x20 case survives); the tail's owner names point at offset 12 by compression,
so they echo the client's case for free. Several tails rotate the order of address records
(`order.orderings`: plain, or weighted by cluster); with an active topology an entry also
holds one variant per client region (`Entry.regions`), compiled with it.
"""

from __future__ import annotations

import itertools
import socket
import struct
from dataclasses import dataclass, replace

import dnslib

from fed_dns.server import resolve as rs
from fed_dns.server.order import orderings
from fed_dns.server.resolve import Answer
from fed_dns.server.topology import OFF_TOPOLOGY, Topology


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
    packed = msg.pack()  # dnslib packs into a bytearray: tails are kept as (hashable) bytes
    return bytes(packed[12 + len(wire_name(qname)) + 4:])


@dataclass(slots=True)
class Entry:
    """One compiled (name, type). `hdrs[edns*2 + rd]` are the ten header bytes after the ID.
    `regions[r]`: the entry for a client in region r (0: none, this one); None when no
    region changes the answer. `cuts`: what `fit.fitted` reads once for answers too big
    for their transport."""

    qname: str
    qtype: int
    answer: Answer
    hdrs: tuple[bytes, bytes, bytes, bytes]
    tails: tuple[bytes, ...]
    cycle: itertools.cycle
    size: int  # len of every tail
    slot: int  # stats slot (qtype, rcode)
    regions: tuple[Entry, ...] | None = None
    cuts: dict | None = None  # fit.fitted's record ends per tail, made on the first cut


_FAMILY = {rs.T_A: socket.AF_INET, rs.T_AAAA: socket.AF_INET6}


def address_tails(*, qname: str, answer: Answer, orders: list[tuple]) -> tuple[bytes, ...] | None:
    """The tails of an answer made only of A/AAAA records owned by the question name, without
    dnslib: each record is `c00c` (the question's name) + type, class, ttl, address, whatever
    its position, so every order is a join of the same bytes. None for any other answer."""
    if answer.authority or answer.additional:
        return None
    packed = {}
    for rr in answer.answer:
        owner, rtype, ttl, data = rr
        family = _FAMILY.get(rtype)
        if family is None or owner != qname:
            return None
        raw = socket.inet_pton(family, data)
        packed[rr] = b"\xc0\x0c" + struct.pack("!HHIH", rtype, 1, ttl, len(raw)) + raw
    return tuple(b"".join(packed[rr] for rr in order) for order in orders)


def _compile(*, qname: str, qtype: int, answer: Answer, orders: list[tuple], slot: int) -> Entry:
    an, ns, ar = len(answer.answer), len(answer.authority), len(answer.additional)
    hdrs = tuple(header(rcode=answer.rcode, aa=True, rd=rd, an=an, ns=ns, ar=ar + edns)
                 for edns in (0, 1) for rd in (0, 1))
    tails = address_tails(qname=qname, answer=answer, orders=orders) or \
        tuple(pack_sections(qname=qname, qtype=qtype, answer=order,
                            authority=answer.authority, additional=answer.additional)
              for order in orders)
    return Entry(qname=qname, qtype=qtype, answer=answer, hdrs=hdrs, tails=tails,
                 cycle=itertools.cycle(tails), size=len(tails[0]), slot=slot)


def compile_entry(*, qname: str, qtype: int, answer: Answer, slot: int = 0,
                  topology: Topology = OFF_TOPOLOGY) -> Entry:
    base = orderings(answer.answer, origins=answer.origins, weight_of=topology.weight_of)
    ent = _compile(qname=qname, qtype=qtype, answer=answer, orders=base, slot=slot)
    if not topology.active or not any(c in topology.region_of for c in answer.origins):
        return ent
    variants = [ent]
    for region in topology.regions:
        orders = orderings(answer.answer, origins=answer.origins, weight_of=topology.weight_of,
                           region_of=topology.region_of, region=region, mode=topology.mode)
        if orders == base:
            variants.append(ent)
            continue
        variants.append(_compile(qname=qname, qtype=qtype, slot=slot, orders=orders,
                                 answer=replace(answer, answer=orders[0], origins=())))
    if any(v is not ent for v in variants):
        ent.regions = tuple(variants)
    return ent
