"""An in-process DnsServer on a free loopback port, on uvloop in a thread of its own, so the
tests can ask it with dnspython's ordinary blocking client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator

import pytest
import uvloop

from fed_dns.server import table as table_mod
from fed_dns.server.dns import DnsServer
from tests.support import LOOPBACK

ZONE = "fed.example.com."


def entries(records: dict[str, dict]) -> dict[str, bytes]:
    """{"mysql.ns": {...}} (names relative to the zone) -> etcd keys and compact values."""
    out = {}
    for rel, value in records.items():
        out["/skydns/com/example/fed/" + "/".join(reversed(rel.split(".")))] = \
            json.dumps(value).encode()
    return out


class Running:
    def __init__(self, server: DnsServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def stats(self):
        return self.server.stats

    def call(self, fn, *args):
        """Run fn(*args) on the server's loop and return its result."""
        async def run():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    def swap(self, table) -> None:
        self.call(self.server.swap, table)


@contextlib.contextmanager
def running_server(table, *, host: str = LOOPBACK, **kwargs) -> Iterator[Running]:
    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="dns-server", daemon=True)
    thread.start()
    server = DnsServer(host=host, port=0, table=table, **kwargs)
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=10)
        yield Running(server, loop)
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture
def serve_records():
    """serve_records({"mysql.ns": {...}}, **DnsServer kwargs) -> Running (stopped after the test)."""
    with contextlib.ExitStack() as stack:
        def start(records: dict[str, dict], **kwargs) -> Running:
            table = table_mod.build(zone=ZONE, entries=entries(records))
            return stack.enter_context(running_server(table, **kwargs))
        yield start
