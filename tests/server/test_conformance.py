"""Every recorded CoreDNS etcd-plugin answer (shared/conformance/coredns-etcd.yaml), asked of
a table built directly and of a real `fed-dns serve` reading the keys from a real etcd."""

from __future__ import annotations

import uuid

import dns.message
import pytest

from fed_dns.server import table as table_mod
from fed_dns.server.respond import respond
from tests.server.helpers import (EtcdKV, ServeProcess, ask, case_entries, expected,
                                  load_cases, queries, query_id, split_q, summary)

CASES = load_cases()
QUERIES = queries(CASES)


def test_the_recorded_cases_are_there():
    assert len(CASES) >= 7 and len(QUERIES) >= 30


@pytest.mark.parametrize("item", QUERIES, ids=[query_id(x) for x in QUERIES])
def test_table_answers_like_coredns(item):
    case, ex = item
    table = table_mod.build(zone=case["zone"], entries=case_entries(case))
    name, rdtype, tcp = split_q(ex["q"])
    query = dns.message.make_query(name, rdtype)
    outcome = respond(table, query.to_wire(), tcp=tcp)
    assert summary(dns.message.from_wire(outcome.response)) == expected(ex)


@pytest.fixture(scope="module")
def served_cases(etcd_server):
    """One `fed-dns serve` per case (each under its own key prefix), started together."""
    kv = EtcdKV(etcd_server.url)
    procs = {}
    try:
        for case in CASES:
            prefix = f"/conf-{uuid.uuid4().hex[:8]}"
            kv.put_all(case_entries(case, prefix=prefix))
            procs[case["name"]] = proc = ServeProcess(etcd_url=etcd_server.url, zone=case["zone"],
                                                      prefix=prefix)
            proc.start()
        for proc in procs.values():
            proc.wait_answering()
        yield procs
    finally:
        codes = {name: proc.stop() for name, proc in procs.items()}
        assert all(rc == 0 for rc in codes.values()), codes


def _loaded(proc: ServeProcess, case: dict) -> None:
    """Wait until the case's keys are in the table (its first key's name exists)."""
    from fed_dns.records.names import key_to_name
    from tests.support import wait_for

    name = key_to_name(key=next(iter(case["keys"])), prefix="/skydns")
    wait_for(lambda: ask(proc.port, name, "A").rcode() == 0, timeout=10, what=f"{name} loaded")


@pytest.mark.etcd
@pytest.mark.parametrize("item", QUERIES, ids=[query_id(x) for x in QUERIES])
def test_serve_answers_like_coredns(item, served_cases):
    case, ex = item
    proc = served_cases[case["name"]]
    _loaded(proc, case)
    name, rdtype, tcp = split_q(ex["q"])
    assert summary(ask(proc.port, name, rdtype, tcp=tcp)) == expected(ex)
