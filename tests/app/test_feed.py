"""`fed-dns serve`'s Feed: etcd mirror changes -> tables. Pending changes coalesce between
builds, deltas go through `table.update`, a reload through a full build."""

from __future__ import annotations

import asyncio
import json
from types import MappingProxyType

import pytest

from fed_dns.app.serve import Feed, ServeOptions
from fed_dns.etcd.mirror import MirrorChange
from fed_dns.server import table as table_mod
from fed_dns.server.dns import DnsServer
from tests.support import LOOPBACK, running, until

ZONE = "fed.example.com."
OPTS = ServeOptions(endpoints=("http://127.0.0.1:2379",), zone=ZONE, host=LOOPBACK, port=0,
                    prefix="/skydns", workers=1, http=None)


def key(leaf: str) -> str:
    return f"/skydns/com/example/fed/ns/svc/{leaf}"


def val(address: str) -> bytes:
    return json.dumps({"host": address}).encode()


def change(puts=None, deletes=(), *, reload=False, revision=1) -> MirrorChange:
    return MirrorChange(puts=MappingProxyType(dict(puts or {})), deletes=frozenset(deletes),
                        reload=reload, revision=revision)


def addresses(t) -> list[str]:
    return sorted(r[3] for r in t.answer(name=f"svc.ns.{ZONE}", qtype=1).answer)


def feed() -> Feed:
    server = DnsServer(host=LOOPBACK, port=0, table=table_mod.loading(zone=ZONE))
    return Feed(opts=OPTS, server=server)


LOAD = change({key("a"): val("10.0.0.1"), key("b"): val("10.0.0.2")}, reload=True)


@pytest.mark.parametrize(("changes", "expect"), [
    ([LOAD], ["10.0.0.1", "10.0.0.2"]),
    ([LOAD, change({key("c"): val("10.0.0.3")})], ["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
    ([LOAD, change({key("c"): val("10.0.0.3")}), change(deletes=[key("c")])],
     ["10.0.0.1", "10.0.0.2"]),
    ([LOAD, change(deletes=[key("a")]), change({key("a"): val("10.0.0.9")})],
     ["10.0.0.2", "10.0.0.9"]),
    ([LOAD, change({key("a"): val("10.0.0.7")}), change({key("a"): val("10.0.0.8")})],
     ["10.0.0.2", "10.0.0.8"]),
    ([change({key("x"): val("10.0.0.5")}), LOAD], ["10.0.0.1", "10.0.0.2"]),
    ([LOAD, change({key("x"): val("10.0.0.5")}), change({key("z"): val("10.0.0.6")}, reload=True)],
     ["10.0.0.6"]),
], ids=["load", "put", "put-then-delete", "delete-then-put", "later-put-wins",
        "reload-replaces-pending", "second-reload-replaces-pending"])
def test_pending_changes_coalesce_into_one_build(changes, expect):
    f = feed()
    for c in changes:
        f.on_change(c)
    new = f.build()
    assert addresses(new) == expect and f.build() is None  # nothing left pending


def test_deltas_before_the_first_load_wait_for_it():
    f = feed()
    f.on_change(change({key("a"): val("10.0.0.1")}))
    assert f.build() is None and f.server.table.loading


def test_deltas_keep_the_compiled_answers_of_other_names():
    f = feed()
    f.on_change(change({key("a"): val("10.0.0.1"), "/skydns/com/example/fed/ns/other/x":
                        val("10.0.1.1")}, reload=True))
    f.server.swap(f.build())
    other = table_mod.wire_name(f"other.ns.{ZONE}")
    kept = f.server.table.entry(other, 1)
    f.on_change(change({key("b"): val("10.0.0.2")}, revision=2))
    new = f.build()
    assert addresses(new) == ["10.0.0.1", "10.0.0.2"]
    assert new.cache.get(table_mod.fast_key(other, 1)) is kept
    f.server.swap(new)
    f.on_change(change({key("a"): val("10.0.0.1"), key("b"): val("10.0.0.2"),
                        "/skydns/com/example/fed/ns/other/x": val("10.0.1.1")},
                       reload=True, revision=3))  # a reload of the same data
    again = f.build()
    assert again.cache.get(table_mod.fast_key(other, 1)) is kept and f.revision == 3


async def test_run_swaps_each_build_into_the_server():
    f = feed()
    async with running(f.run()):
        f.on_change(LOAD)
        await until(lambda: f.builds == 1, what="the first build")
        assert addresses(f.server.table) == ["10.0.0.1", "10.0.0.2"]
        f.on_change(change(deletes=[key("a")]))
        f.on_change(change({key("c"): val("10.0.0.3")}))
        await until(lambda: addresses(f.server.table) == ["10.0.0.2", "10.0.0.3"],
                    what="the coalesced deltas")
        await asyncio.sleep(0)
        assert f.builds == 2 and f.server.stats.table_swaps == 2
