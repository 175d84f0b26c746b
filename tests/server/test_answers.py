"""Answer rules beyond the recorded cases, asked over real UDP/TCP sockets with dnspython."""

from __future__ import annotations

import collections

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.server.helpers import addresses, ask, lines
from tests.support import LOOPBACK

A = lambda ip, ttl=5: {"host": ip, "ttl": ttl}  # noqa: E731
CNAME = lambda target, ttl=5: {"host": target, "ttl": ttl}  # noqa: E731
Z = "fed.example.com."


def answer_lines(msg) -> list[str]:
    return lines(msg.answer)


def test_cname_chain_is_followed_inside_the_zone(serve_records):
    srv = serve_records({"x.a.ns": CNAME(f"b.ns.{Z}"), "x.b.ns": CNAME(f"c.ns.{Z}"),
                         "x.c.ns": A("10.0.0.3")})
    got = answer_lines(ask(srv.port, f"a.ns.{Z}"))
    assert got == sorted([f"a.ns.{Z} 5 CNAME b.ns.{Z}", f"b.ns.{Z} 5 CNAME c.ns.{Z}",
                          f"c.ns.{Z} 5 A 10.0.0.3"])


def test_cname_loop_gives_nodata_and_never_hangs(serve_records):
    srv = serve_records({"x.a.ns": CNAME(f"b.ns.{Z}"), "x.b.ns": CNAME(f"a.ns.{Z}")})
    msg = ask(srv.port, f"a.ns.{Z}")
    assert msg.rcode() == dns.rcode.NOERROR and not msg.answer
    assert [rr.rdtype for rr in msg.authority] == [dns.rdatatype.SOA]


def test_cname_to_itself_or_below_is_dropped(serve_records):
    srv = serve_records({"c1.svc.ns": A("10.0.0.1"), "c2.svc.ns": CNAME(f"svc.ns.{Z}"),
                         "c3.svc.ns": CNAME(f"deep.svc.ns.{Z}")})
    assert addresses(ask(srv.port, f"svc.ns.{Z}")) == ["10.0.0.1"]


def test_long_chains_stop_after_eight_cnames(serve_records):
    recs = {f"x.n{i}.ns": CNAME(f"n{i + 1}.ns.{Z}") for i in range(12)}
    recs["x.n12.ns"] = A("10.0.0.12")
    srv = serve_records(recs)
    assert not ask(srv.port, f"n0.ns.{Z}").answer  # 12 CNAMEs: too long, CoreDNS gives up
    msg = ask(srv.port, f"n5.ns.{Z}")  # 7 CNAMEs then the address
    assert addresses(msg) == ["10.0.0.12"] and len(msg.answer) == 8


def test_cname_out_of_the_zone_is_answered_alone(serve_records):
    srv = serve_records({"x.ext.ns": CNAME("db.example.org")})
    assert answer_lines(ask(srv.port, f"ext.ns.{Z}")) == [f"ext.ns.{Z} 5 CNAME db.example.org."]


def test_mx_with_glue(serve_records):
    srv = serve_records({"m1.mail.ns": {"host": "10.0.0.25", "mail": True, "priority": 5, "ttl": 60},
                         "m2.mail.ns": {"host": "10.0.0.26", "ttl": 60}})
    msg = ask(srv.port, f"mail.ns.{Z}", "MX")
    assert answer_lines(msg) == [f"mail.ns.{Z} 60 MX 5 m1.mail.ns.{Z}"]
    assert lines(msg.additional) == [f"m1.mail.ns.{Z} 60 A 10.0.0.25"]


def test_txt_split_in_255_byte_strings(serve_records):
    text = "x" * 300
    srv = serve_records({"t.ns": {"text": text, "ttl": 5}})
    msg = ask(srv.port, f"t.ns.{Z}", "TXT", tcp=True)
    (rrset,) = msg.answer
    assert [len(s) for s in next(iter(rrset)).strings] == [255, 45]


def test_srv_weights_priorities_and_ports(serve_records):
    srv = serve_records({"a.s.ns": {"host": "10.0.0.1", "port": 80, "weight": 30, "priority": 1},
                         "b.s.ns": {"host": "10.0.0.2", "port": 80, "weight": 10, "priority": 1},
                         "c.s.ns": {"host": "10.0.0.3", "port": 81}})
    got = answer_lines(ask(srv.port, f"s.ns.{Z}", "SRV"))
    assert got == sorted([f"s.ns.{Z} 300 SRV 1 75 80 a.s.ns.{Z}", f"s.ns.{Z} 300 SRV 1 25 80 b.s.ns.{Z}",
                          f"s.ns.{Z} 300 SRV 10 100 81 c.s.ns.{Z}"])


def test_any_is_minimal(serve_records):
    srv = serve_records({"c1.svc.ns": A("10.0.0.1")})
    msg = ask(srv.port, f"svc.ns.{Z}", "ANY")
    assert [rr.rdtype for rr in msg.answer] == [dns.rdatatype.HINFO]
    assert ask(srv.port, f"nope.ns.{Z}", "ANY").rcode() == dns.rcode.NXDOMAIN


def test_apex_ns_soa_and_nodata(serve_records):
    srv = serve_records({"c1.svc.ns": A("10.0.0.1")})
    ns = ask(srv.port, Z, "NS")
    assert answer_lines(ns) == [f"{Z} 300 NS ns.dns.{Z}"]
    soa = ask(srv.port, Z, "SOA")
    assert soa.answer[0][0].minimum == 30 and soa.flags & dns.flags.AA
    apex_a = ask(srv.port, Z, "A")
    assert apex_a.rcode() == dns.rcode.NOERROR and not apex_a.answer and apex_a.authority


@pytest.mark.parametrize("qtype", ["A", "AAAA", "SRV", "TXT", "CNAME", "MX", "HTTPS", "PTR"])
def test_nxdomain_and_nodata_carry_the_soa(serve_records, qtype):
    srv = serve_records({"c1.svc.ns": {"host": "10.0.0.1"}})
    nx = ask(srv.port, f"nothere.ns.{Z}", qtype)
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.flags & dns.flags.AA
    assert nx.authority[0].rdtype == dns.rdatatype.SOA and nx.authority[0].name.to_text() == Z
    if qtype not in ("A", "SRV"):
        nodata = ask(srv.port, f"svc.ns.{Z}", qtype)
        assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
        assert nodata.authority[0].rdtype == dns.rdatatype.SOA


def test_out_of_zone_refused_without_aa_or_ra(serve_records):
    srv = serve_records({})
    for name in ("example.org.", "example.com.", "xfed.example.com."):
        msg = ask(srv.port, name)
        assert msg.rcode() == dns.rcode.REFUSED
        assert not msg.flags & (dns.flags.AA | dns.flags.RA)


def test_case_is_echoed_byte_for_byte(serve_records):
    srv = serve_records({"c1.svc.ns": A("10.0.0.1")})
    for name in ("SvC.Ns.FeD.eXaMpLe.CoM.", f"NOPE.ns.{Z}", "Example.ORG."):
        wire = dns.message.make_query(name, "A").to_wire()
        raw = _raw(srv.port, wire)
        assert raw[12:len(wire)] == wire[12:]  # the question, byte for byte
        resp = dns.message.from_wire(raw)
        for rrset in resp.answer:
            assert rrset.name.to_text() == name  # owners point at the question: same case


def _raw(port: int, wire: bytes, *, timeout: float = 2.0) -> bytes:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(wire, (LOOPBACK, port))
        return s.recv(65535)


def test_rotation_cycles_the_address_order(serve_records):
    ips = [f"10.0.0.{i}" for i in range(1, 5)]
    srv = serve_records({f"c{i}.svc.ns": A(ip) for i, ip in enumerate(ips)})
    firsts = collections.Counter(addresses(ask(srv.port, f"svc.ns.{Z}"))[0] for _ in range(16))
    assert set(firsts) == set(ips) and max(firsts.values()) == 4
    assert sorted(addresses(ask(srv.port, f"svc.ns.{Z}"))) == ips


def _big(n: int = 60) -> dict:
    return {f"c{i}.big.ns": A(f"10.1.{i // 250}.{i % 250}") for i in range(n)}


def test_no_edns_means_512_and_tc_with_whole_rrsets(serve_records):
    srv = serve_records(_big())
    q = dns.message.make_query(f"big.ns.{Z}", "A")
    raw = _raw(srv.port, q.to_wire())
    msg = dns.message.from_wire(raw, ignore_trailing=False)
    assert len(raw) <= 512 and msg.flags & dns.flags.TC and not msg.answer
    full = ask(srv.port, f"big.ns.{Z}", tcp=True)
    assert len(addresses(full)) == 60 and not full.flags & dns.flags.TC


@pytest.mark.parametrize("payload,fits", [(512, False), (1000, True), (4096, True)])
def test_edns_size_is_honoured_and_clamped(serve_records, payload, fits):
    srv = serve_records(_big(50))  # 50 A records: 851 bytes
    q = dns.message.make_query(f"big.ns.{Z}", "A", use_edns=0, payload=payload)
    raw = _raw(srv.port, q.to_wire())
    msg = dns.message.from_wire(raw)
    assert len(raw) <= max(512, min(payload, 1232))
    assert msg.edns == 0 and msg.payload == 1232  # our OPT, always
    assert bool(msg.flags & dns.flags.TC) != fits
    assert (len(addresses(msg)) == 50) == fits


def test_opt_only_when_the_query_had_one(serve_records):
    srv = serve_records({"c1.svc.ns": A("10.0.0.1")})
    assert ask(srv.port, f"svc.ns.{Z}").edns == -1
    assert ask(srv.port, f"svc.ns.{Z}", edns=0).edns == 0
    assert ask(srv.port, f"nope.ns.{Z}", edns=0).edns == 0
    assert ask(srv.port, "example.org.", edns=0).edns == 0


def test_do_bit_is_echoed_in_our_opt(serve_records):
    srv = serve_records({"c1.svc.ns": A("10.0.0.1")})
    q = dns.message.make_query(f"svc.ns.{Z}", "A", want_dnssec=True)
    msg = dns.query.udp(q, LOOPBACK, port=srv.port, timeout=2)
    assert msg.ednsflags & dns.flags.DO and addresses(msg) == ["10.0.0.1"]


def test_unknown_edns_version_gets_badvers(serve_records):
    srv = serve_records({"c1.svc.ns": A("10.0.0.1")})
    q = dns.message.make_query(f"svc.ns.{Z}", "A", use_edns=1)
    msg = dns.query.udp(q, LOOPBACK, port=srv.port, timeout=2)
    assert msg.rcode() == dns.rcode.BADVERS and msg.edns == 0 and not msg.answer


def test_edns_options_take_the_slow_path_and_still_answer(serve_records):
    srv = serve_records({"c1.svc.ns": A("10.0.0.1")})
    cookie = dns.edns.GenericOption(dns.edns.COOKIE, b"12345678")
    q = dns.message.make_query(f"svc.ns.{Z}", "A", use_edns=0, options=[cookie])
    assert addresses(dns.query.udp(q, LOOPBACK, port=srv.port, timeout=2)) == ["10.0.0.1"]


def test_rd_is_copied_ra_never_set(serve_records):
    srv = serve_records({"c1.svc.ns": A("10.0.0.1")})
    for rd in (True, False):
        q = dns.message.make_query(f"svc.ns.{Z}", "A")
        if not rd:
            q.flags &= ~dns.flags.RD
        msg = dns.query.udp(q, LOOPBACK, port=srv.port, timeout=2)
        assert bool(msg.flags & dns.flags.RD) == rd and not msg.flags & dns.flags.RA


def test_other_opcodes_are_not_implemented(serve_records):
    srv = serve_records({})
    q = dns.message.make_query(Z, "SOA")
    q.set_opcode(dns.opcode.NOTIFY)
    assert dns.query.udp(q, LOOPBACK, port=srv.port, timeout=2).rcode() == dns.rcode.NOTIMP


def test_swap_changes_answers_at_once(serve_records):
    from fed_dns.server import table as table_mod
    from tests.server.conftest import entries

    srv = serve_records({"c1.svc.ns": A("10.0.0.1")})
    assert addresses(ask(srv.port, f"svc.ns.{Z}")) == ["10.0.0.1"]
    srv.swap(table_mod.build(zone=Z, entries=entries({"c1.svc.ns": A("10.0.0.2")})))
    assert addresses(ask(srv.port, f"svc.ns.{Z}")) == ["10.0.0.2"]
    assert srv.stats.table_swaps == 1


def test_stats_count_by_protocol_type_and_rcode(serve_records):
    srv = serve_records({"c1.svc.ns": A("10.0.0.1")})
    for _ in range(3):
        ask(srv.port, f"svc.ns.{Z}")
    ask(srv.port, f"nope.ns.{Z}", "AAAA", tcp=True)
    ask(srv.port, "example.org.")
    req = srv.stats.requests
    assert req[("udp", "A", "NOERROR")] == 3
    assert req[("tcp", "AAAA", "NXDOMAIN")] == 1
    assert req[("udp", "A", "REFUSED")] == 1
