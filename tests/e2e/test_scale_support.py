"""The scale harness: when a change counts as in etcd, percentiles, addresses, the DNS query load."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
import types

import dns.message
import dns.name
import dns.rrset
import pytest

from tests.e2e import query_client
from tests.e2e.harness import a_texts
from tests.e2e.scale_observers import AnswerProbe, Change, QueryLoad, reached, unique_address
from tests.e2e.scale_phases import cpu_share, db_sizes, server_dns_delta
from tests.e2e.scale_support import machine_cpu_seconds, percentiles
from tests.support import LOOPBACK, wait_for


def change(at: float, n: int, address: str, member: int = 0) -> Change:
    return Change(at=at, member=member, n=n, address=address)


@pytest.mark.parametrize(("changes", "seen", "expected"), [
    pytest.param([change(1, 0, "a")], {"a": 1.5}, [1.5], id="seen"),
    pytest.param([change(1, 0, "a")], {}, [None], id="never"),
    pytest.param([change(1, 0, "a"), change(2, 0, "b")], {"b": 2.5}, [2.5, 2.5], id="superseded-by-a-later-one"),
    pytest.param([change(1, 0, "a"), change(2, 0, "b")], {"a": 3.0, "b": 2.5}, [2.5, 2.5], id="the-earliest-wins"),
    pytest.param([change(1, 0, "a"), change(2, 1, "b")], {"b": 2.5}, [None, 2.5], id="another-service-does-not-count"),
    pytest.param([change(1, 0, "a"), change(2, 0, "b", member=1)], {"b": 2.5}, [None, 2.5],
                 id="the-same-service-of-another-member-does-not-count"),
    pytest.param([change(1, 0, "a"), change(2, 0, "b"), change(3, 0, "c")], {"a": 1.2, "c": 3.1}, [1.2, 3.1, 3.1],
                 id="an-earlier-one-seen-first"),
])
def test_reached(changes, seen, expected):
    assert reached(changes, seen, key=lambda c: c.address) == expected


def test_percentiles():
    assert percentiles([]) is None
    assert percentiles([0.001 * i for i in range(1, 101)], scale=1000, digits=1) == {
        "n": 100, "p50": 50.5, "p99": 100.0, "max": 100.0}


def test_unique_addresses_are_distinct_and_never_seeded():
    addresses = [unique_address(i) for i in range(200_000)]
    assert len(set(addresses)) == len(addresses)
    assert all(200 <= int(a.split(".")[1]) < 250 for a in addresses)  # seeded: 10.<member + 1>.


def _answer(query: dns.message.Message, *, rcode: int = 0, records: int = 1,
            address: str | None = None) -> dns.message.Message:
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    if records:
        response.answer.append(dns.rrset.from_text_list(
            query.question[0].name, 30, "IN", "A",
            [address] if address else [f"10.0.0.{i + 1}" for i in range(records)]))
    return response


class _Responder:
    """A UDP socket on loopback answering each query on a thread: `mode` "answer" (an A
    record), "nxdomain", or "none" (no answer)."""

    def __init__(self, *, mode: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.mode = mode
        self.address: str | None = None  # "answer": this one address (None: 10.0.0.1)
        self.queries = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            self.queries += 1
            if self.mode != "none":
                query = dns.message.from_wire(data)
                response = (_answer(query, address=self.address) if self.mode == "answer"
                            else _answer(query, rcode=3, records=0))
                self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.sock.close()


@pytest.mark.parametrize("mode", ["answer", "none", "nxdomain"])
def test_query_load_asks_from_a_process_of_its_own(mode):
    server = _Responder(mode=mode)
    rig = types.SimpleNamespace(daemon=types.SimpleNamespace(dns_port=server.port))
    # a client timeout long enough that a loaded machine never turns an answer into one
    load = QueryLoad(rig, ["a.example.", "b.example."], timeout=2.0 if mode != "none" else 0.05, qps=200).start()
    try:
        assert load.proc.pid != os.getpid()
        wait_for(lambda: {"answer": len(load.rtts) >= 30, "none": load.timeouts >= 3,
                          "nxdomain": load.bad >= 3}[mode], timeout=20, what="queries")
        window = load.take()
        rtts, timeouts, bad = window.rtts, window.timeouts, window.bad
        if mode == "answer":  # 30 answers: one in FULL_CHECK was parsed whole
            assert len(rtts) >= 30 and all(0 < rtt < 2.0 for rtt in rtts) and not bad
            # each answer's arrival in the kernel, stamped (Linux): never after its read
            assert len(window.arrivals) == len(rtts)
            assert all(0 < arrived <= read + 1e-3 for arrived, read in zip(window.arrivals, rtts))
        elif mode == "none":
            assert timeouts >= 3 and not rtts and not bad and not window.arrivals
        else:
            assert bad >= 3 and not rtts and not timeouts
    finally:
        load.stop()
        server.close()
    assert load.proc.poll() is not None  # stopped with it


def test_the_answer_probe_times_a_change_once_its_address_is_answered():
    server = _Responder(mode="answer")
    rig = types.SimpleNamespace(daemon=types.SimpleNamespace(dns_port=server.port),
                                cluster_name=lambda member, n: f"m{member}.svc-{n}.ns.fed.example.com.")
    probe = AnswerProbe(rig, timeout=30.0).start()
    try:
        probe.offer(change(time.monotonic(), 3, "10.9.0.7"))
        wait_for(lambda: server.queries >= 5, timeout=20, what="polls")
        assert not probe.latencies and not probe.missed  # 10.0.0.1 is not the change
        server.address = "10.9.0.7"
        wait_for(lambda: probe.latencies, timeout=20, what="the change answered")
        assert len(probe.latencies) == 1 and 0 < probe.latencies[0] < 30
        assert probe.misread == 0 and probe.missed == 0
    finally:
        probe.stop()
        server.close()


def _query(name: str = "svc.ns.fed.example.com.") -> dns.message.Message:
    query = dns.message.make_query(name, "A", use_edns=0, payload=4096)
    query.id = 4660
    return query


def _flip(wire: bytes, at: int, value: int) -> bytes:
    return wire[:at] + bytes([value]) + wire[at + 1:]


_GOOD = _answer(_query(), records=30).to_wire()


@pytest.mark.parametrize(("answer", "ok"), [
    pytest.param(_GOOD, True, id="answer"),
    pytest.param(_answer(_query("SVC.NS.fed.example.com.")).to_wire(), True, id="question-case-differs"),
    pytest.param(_GOOD[:11], False, id="short"),
    pytest.param(_flip(_GOOD, 1, 0x35), False, id="another-id"),
    pytest.param(_flip(_GOOD, 2, _GOOD[2] & 0x7F), False, id="not-a-response"),
    pytest.param(_flip(_GOOD, 2, _GOOD[2] | 0x02), False, id="truncated"),
    pytest.param(_flip(_GOOD, 2, _GOOD[2] | 0x28), False, id="another-opcode"),
    pytest.param(_answer(_query(), rcode=2).to_wire(), False, id="servfail"),
    pytest.param(_answer(_query(), rcode=3, records=0).to_wire(), False, id="nxdomain"),
    pytest.param(_answer(_query(), records=0).to_wire(), False, id="no-records"),
    pytest.param(_answer(_query("other.ns.fed.example.com.")).to_wire(), False, id="another-question"),
])
def test_the_query_client_checks_each_answer_on_its_bytes(answer, ok):
    assert query_client.check(_query().to_wire(), answer) is ok


@pytest.mark.parametrize(("response", "ok"), [
    pytest.param(_answer(_query(), records=30), True, id="answer"),
    pytest.param(_answer(_query(), records=0), False, id="no-a-rrset"),
    pytest.param(_answer(_query(), rcode=2), False, id="servfail"),
])
def test_the_query_client_parses_a_sample_whole(response, ok):
    assert query_client.full_check(_query(), response.to_wire()) is ok


_TICK = os.sysconf("SC_CLK_TCK")


_STAMP = struct.pack("@qq", 1_700_000_000, 123_456_789)


@pytest.mark.parametrize(("ancillary", "expected"), [
    ([(socket.SOL_SOCKET, query_client.SO_TIMESTAMPNS, _STAMP)], 1_700_000_000_123_456_789),
    ([], None),  # no timestamp asked for, or none given
    ([(socket.IPPROTO_IP, query_client.SO_TIMESTAMPNS, _STAMP)], None),  # another level's
    ([(socket.SOL_SOCKET, query_client.SO_TIMESTAMPNS, _STAMP[:8])], None),  # cut short
], ids=["stamped", "none", "other-level", "short"])
def test_the_query_client_reads_the_arrival_stamp(ancillary, expected):
    assert query_client.arrival(ancillary) == expected


def test_the_arrival_stamp_is_the_kernels_not_the_read():
    """A datagram read 0.2 s after it came: its stamp says when it came. The kernel turns
    receive stamps on asynchronously (a deferred static key) when the first socket asks, and
    stamps a datagram that came before that at its read: so a few tries are allowed."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind((LOOPBACK, 0))
        assert query_client.stamp_arrivals(receiver)
        gaps = []
        for _ in range(10):
            sent = time.time_ns()
            sender.sendto(b"x", receiver.getsockname())
            time.sleep(0.2)
            data, ancillary, _, _ = receiver.recvmsg(16, query_client._ANCILLARY)
            read = time.time_ns()
            arrived = query_client.arrival(ancillary)
            assert data == b"x" and arrived is not None and arrived <= read
            gaps.append(read - arrived)
            if read - arrived >= 150_000_000:
                assert sent <= arrived + 1_000_000
                break
        assert gaps[-1] >= 150_000_000, gaps  # stamped at its arrival, not at its read
    finally:
        receiver.close()
        sender.close()


@pytest.mark.parametrize(("stat", "expected"), [
    pytest.param(f"cpu  {_TICK} {_TICK} {_TICK} 900 7 {_TICK} {_TICK} {3 * _TICK} 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n",
                 {"all_busy": 5.0, "steal": 3.0}, id="user-nice-system-irq-softirq-and-steal"),
    pytest.param(f"intr 5\ncpu  {2 * _TICK} 0 0 {_TICK} 0 0 0 0 0 0\n", {"all_busy": 2.0, "steal": 0.0},
                 id="the-cpu-line-wherever-it-is"),
])
def test_the_machine_cpu_is_read_from_proc_stat(stat, expected):
    assert machine_cpu_seconds(stat) == expected


def test_the_machine_cpu_of_this_machine_only_grows():
    first = machine_cpu_seconds()
    sum(i * i for i in range(200_000))  # some CPU
    second = machine_cpu_seconds()
    assert first["all_busy"] > 0
    assert second["all_busy"] >= first["all_busy"] and second["steal"] >= first["steal"]


def test_cpu_shares_are_seconds_per_second_of_each_part():
    assert cpu_share({"daemon": 1.0, "steal": 2.0}, {"daemon": 2.5, "steal": 2.2, "etcd": 1.0}, 2.0) == \
        {"daemon": 0.75, "steal": 0.1, "etcd": 0.5}


def _with_cname(query: dns.message.Message) -> dns.message.Message:
    """A CNAME to a target with two A records and a TXT beside (compressed names)."""
    response = dns.message.make_response(query)
    target = dns.name.from_text("target.fed.example.com.")
    response.answer.append(dns.rrset.from_text(query.question[0].name, 30, "IN", "CNAME", target.to_text()))
    response.answer.append(dns.rrset.from_text_list(target, 30, "IN", "A", ["192.0.2.1", "192.0.2.2"]))
    response.answer.append(dns.rrset.from_text(target, 30, "IN", "TXT", '"10.9.9.9"'))
    return response


@pytest.mark.parametrize(("response", "expected"), [
    pytest.param(_answer(_query(), records=30), {f"10.0.0.{i + 1}" for i in range(30)}, id="thirty"),
    pytest.param(_answer(_query(), records=0), set(), id="none"),
    pytest.param(_with_cname(_query()), {"192.0.2.1", "192.0.2.2"}, id="cname-then-a-txt-beside"),
    pytest.param(_answer(_query(), rcode=3, records=0), set(), id="nxdomain"),
])
def test_the_bytes_reader_reads_the_a_records_dnspython_reads(response, expected):
    wire = response.to_wire()
    assert a_texts(dns.message.from_wire(wire)) == expected
    assert query_client.a_addresses(wire) == expected


@pytest.mark.parametrize("cut", [5, 13, 40, -12])  # -12: the last A record (the OPT record is 11 bytes)
def test_the_bytes_reader_refuses_an_answer_that_ends_early(cut):
    with pytest.raises(ValueError):
        query_client.a_addresses(_GOOD[:cut])


@pytest.mark.parametrize(("before", "after", "expected"), [
    pytest.param((0, 0, {}), (100, 0, {0.0005: 50, 0.001: 99, 0.01: 100, float("inf"): 100}),
                 {"n": 100, "p99_under_ms": 1.0, "over_1ms": 1, "over_10ms": 0}, id="p99-at-1ms"),
    pytest.param((100, 0, {0.001: 99, 0.01: 100, float("inf"): 100}),
                 (200, 0, {0.001: 150, 0.01: 180, float("inf"): 200}),
                 {"n": 100, "p99_under_ms": None, "over_1ms": 49, "over_10ms": 20}, id="over-the-last-bound"),
    pytest.param((5, 0, {0.001: 5, float("inf"): 5}), (5, 0, {0.001: 5, float("inf"): 5}),
                 {"n": 0, "p99_under_ms": None, "over_1ms": 0, "over_10ms": 0}, id="none"),
])
def test_server_dns_delta(before, after, expected):
    assert server_dns_delta(before, after) == expected


_DB_METRICS = """# HELP etcd_mvcc_db_total_size_in_bytes Total size of the underlying database physically allocated in bytes.
# TYPE etcd_mvcc_db_total_size_in_bytes gauge
etcd_mvcc_db_total_size_in_bytes 2.4576e+08
# HELP etcd_mvcc_db_total_size_in_use_in_bytes Total size of the underlying database logically in use in bytes.
# TYPE etcd_mvcc_db_total_size_in_use_in_bytes gauge
etcd_mvcc_db_total_size_in_use_in_bytes 6.1440e+07
# TYPE etcd_server_has_leader gauge
etcd_server_has_leader 1
"""


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param(_DB_METRICS, {"size_mb": 245.76, "in_use_mb": 61.44}, id="both"),
    pytest.param(_DB_METRICS.split("# HELP etcd_mvcc_db_total_size_in_use")[0], {"size_mb": 245.76}, id="size-only"),
    pytest.param("", {}, id="etcd-away"),
])
def test_the_etcd_database_sizes_are_read_from_its_metrics(text, expected):
    assert db_sizes(text) == expected


def test_the_etcd_database_sizes_of_a_real_etcd(etcd_server):
    rig = types.SimpleNamespace(etcd_url=etcd_server.url)
    from tests.e2e.scale_phases import etcd_metrics

    sizes = db_sizes(etcd_metrics(rig))
    assert set(sizes) == {"size_mb", "in_use_mb"} and 0 <= sizes["in_use_mb"] <= sizes["size_mb"]
    assert sizes["size_mb"] > 0



def test_latency_reports_both_round_trips_of_every_window():
    from tests.e2e.scale_observers import Window
    from tests.e2e.scale_phases import latency

    windows = [Window(rtts=[0.001, 0.003], arrivals=[0.0005, 0.002], timeouts=0, bad=0),
               Window(rtts=[0.002], arrivals=[], timeouts=1, bad=0)]
    out = latency("q", windows)
    assert out["q"] == percentiles([0.001, 0.003, 0.002], scale=1000, digits=2)
    assert out["q_at_arrival"] == percentiles([0.0005, 0.002], scale=1000, digits=2)
    assert latency("none", [])["none"] is None
