"""The full responder: any raw query -> raw response (or None to drop). Pure, never raises.

UDP's fast path answers the common shapes itself and falls back here for everything else
(EDNS options, odd flags, errors, truncation); TCP always comes here. An answer too big for
its transport is cut by `fit` (UDP: whole RRsets and TC; TCP: whole records up to 65,535
bytes, never TC) at the cost of a bisection, so no question costs more than a small one.
"""

from __future__ import annotations

import logging
import struct
import time
from dataclasses import dataclass

from fed_dns.server import resolve as rs
from fed_dns.server.compile import header
from fed_dns.server.fit import fitted
from fed_dns.server.table import ZoneTable
from fed_dns.server.topology import client_region, ecs_address
from fed_dns.server.wire import Malformed, Query, ecs_option, error_header, opt_rr, parse

log = logging.getLogger(__name__)
LOG_EVERY = 1.0  # seconds between two internal-error tracebacks: a flood of packets that hit
_logged = [0.0, 0]  # a bug writes one a second, not one per packet; [last time, not logged]

MIN_UDP = 512
MAX_UDP = 1232
MAX_TCP = 65535
BADVERS = 16
OPT_LEN = 11
CLASS_CH = 3
# `id.server` / `hostname.bind` CH TXT: which server (worker) answered, when it has an identity.
ID_NAMES = (b"\x02id\x06server\x00", b"\x08hostname\x04bind\x00")


@dataclass(frozen=True, slots=True)
class Outcome:
    response: bytes | None
    qtype: int = 0
    rcode: int = 0
    truncated: bool = False
    malformed: bool = False


def udp_limit(*, client: int | None, max_udp: int = MAX_UDP) -> int:
    """No EDNS: 512. With EDNS: the client's size clamped to 512..max_udp."""
    if client is None:
        return MIN_UDP
    return max(MIN_UDP, min(client, max_udp))


def _simple(q: Query, data: bytes, *, rcode: int, aa: bool, max_udp: int,
            an: int = 0, ns: int = 0, tail: bytes = b"", options: bytes = b"") -> bytes:
    """Header + echoed question + tail, with our OPT when the query had one."""
    ar = 1 if q.edns is not None else 0
    out = q.id + header(rcode=rcode & 0x0F, aa=aa, rd=q.rd, cd=q.cd, an=an, ns=ns, ar=ar,
                         opcode=q.opcode) \
        + data[12:q.question_end] + tail
    if q.edns is not None:
        out += opt_rr(udp_size=max_udp, do=q.edns.do, ext_rcode=rcode >> 4, options=options)
    return out


def _identity(q: Query, data: bytes, *, identity: str, max_udp: int) -> Outcome:
    raw = identity.encode()[:255]
    rr = b"\xc0\x0c" + struct.pack("!HHIHB", rs.T_TXT, CLASS_CH, 0, len(raw) + 1, len(raw)) + raw
    return Outcome(_simple(q, data, rcode=rs.NOERROR, aa=True, max_udp=max_udp, an=1, tail=rr),
                   qtype=q.qtype, rcode=rs.NOERROR)


def ecs_region(table: ZoneTable, q: Query) -> tuple[int | None, bytes]:
    """The region from a trusted EDNS Client Subnet option (None: no such option, or not
    trusted) and the option to echo (b"" when none)."""
    ecs = q.edns.ecs if q.edns is not None else None
    if ecs is None or not (table.topology.trust_ecs and table.topology.active):
        return None, b""
    address = ecs_address(family=ecs.family, prefix=ecs.prefix, address=ecs.address)
    region = client_region(table.topology, address) if address is not None else 0
    return region, ecs_option(ecs)


def _answer(table: ZoneTable, q: Query, data: bytes, *, limit: int, max_udp: int,
            identity: str | None, region: int = 0, tcp: bool = False) -> Outcome:
    qname = q.qname.lower()
    if identity and q.qclass == CLASS_CH and q.qtype == rs.T_TXT and qname in ID_NAMES:
        return _identity(q, data, identity=identity, max_udp=max_udp)
    if q.qclass != 1 or not table.in_zone(qname):
        return Outcome(_simple(q, data, rcode=rs.REFUSED, aa=False, max_udp=max_udp),
                       qtype=q.qtype, rcode=rs.REFUSED)
    if table.loading:
        return Outcome(_simple(q, data, rcode=rs.SERVFAIL, aa=False, max_udp=max_udp),
                       qtype=q.qtype, rcode=rs.SERVFAIL)
    from_ecs, echo = ecs_region(table, q)
    ent = table.entry(qname, q.qtype, region if from_ecs is None else from_ecs)
    if ent is None:
        return Outcome(_simple(q, data, rcode=rs.NXDOMAIN, aa=True, max_udp=max_udp, ns=1,
                               tail=table.nx_tail, options=echo),
                       qtype=q.qtype, rcode=rs.NXDOMAIN)
    ans = ent.answer
    edns = q.edns is not None
    tail = next(ent.cycle)
    hdr = ent.hdrs[edns * 2 + q.rd]
    if q.cd:
        hdr = bytes([hdr[0], hdr[1] | 0x10]) + hdr[2:]
    size = q.question_end + len(tail) + (OPT_LEN + len(echo) if edns else 0)
    tc = False
    if size > limit:
        room = limit - q.question_end - (OPT_LEN + len(echo) if edns else 0)
        fit = fitted(ent, tail, room=room, whole_sets=not tcp)  # TCP: never TC
        tail, tc = tail[:fit.size], fit.tc
        hdr = header(rcode=ans.rcode, aa=True, tc=tc, rd=q.rd, cd=q.cd, an=fit.an, ns=fit.ns,
                     ar=fit.ar + edns)
    out = q.id + hdr + data[12:q.question_end] + tail
    if edns:
        out += opt_rr(udp_size=max_udp, do=q.edns.do, options=echo)
    return Outcome(out, qtype=q.qtype, rcode=ans.rcode, truncated=tc)


def respond(table: ZoneTable, data: bytes, *, tcp: bool = False, max_udp: int = MAX_UDP,
            identity: str | None = None, region: int = 0) -> Outcome:
    """`region`: the client's region number from its source address (`topology.Clients`);
    a trusted ECS option overrides it."""
    try:
        try:
            q = parse(data)
        except Malformed as exc:
            return Outcome(error_header(data, rs.FORMERR) if exc.header else None,
                           rcode=rs.FORMERR, malformed=True)
        if q.edns is not None and q.edns.version != 0:
            return Outcome(_simple(q, data, rcode=BADVERS, aa=False, max_udp=max_udp),
                           qtype=q.qtype, rcode=BADVERS)
        if q.opcode != 0:
            return Outcome(_simple(q, data, rcode=rs.NOTIMP, aa=False, max_udp=max_udp),
                           qtype=q.qtype, rcode=rs.NOTIMP)
        limit = MAX_TCP if tcp else udp_limit(client=q.edns.udp_size if q.edns else None,
                                                 max_udp=max_udp)
        return _answer(table, q, data, limit=limit, max_udp=max_udp, identity=identity,
                       region=region, tcp=tcp)
    except Exception:  # noqa: BLE001 - a bug must cost one answer, never the server
        now = time.monotonic()
        if now - _logged[0] >= LOG_EVERY:
            log.exception("internal error answering a query (%d more since the last one logged)",
                          _logged[1])
            _logged[:] = [now, 0]
        else:
            _logged[1] += 1
        if len(data) >= 12 and not data[2] & 0x80:
            return Outcome(error_header(data, rs.SERVFAIL), rcode=rs.SERVFAIL)
        return Outcome(None, rcode=rs.SERVFAIL)
