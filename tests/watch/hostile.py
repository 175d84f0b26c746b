"""A hostile member on loopback: a raw HTTP server that answers lists and watches as told.

Lists answer an empty list unless told otherwise; every request not handled by a behaviour
answers like an idle API server. A behaviour is an async function (writer) -> None that owns
the rest of the connection. The server counts what it sent, so a test can say how much a
member pushed at the watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

Behaviour = Callable[[asyncio.StreamWriter], Awaitable[None]]

EMPTY_LIST = json.dumps({"kind": "List", "metadata": {"resourceVersion": "1"}, "items": []}).encode()


class HostileMember:
    """`list_` and `watch` are the behaviours for list and watch requests (None: answer well)."""

    def __init__(self, *, name: str = "hostile", list_: Behaviour | None = None,
                 watch: Behaviour | None = None) -> None:
        self.name = name
        self.list_ = list_
        self.watch = watch
        self.sent = 0  # bytes written by the behaviours
        self.requests: list[str] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def write_kubeconfig(self, path: str | os.PathLike) -> Path:
        doc = {"apiVersion": "v1", "kind": "Config", "current-context": self.name,
               "clusters": [{"name": self.name, "cluster": {"server": self.url}}],
               "users": [{"name": self.name, "user": {"token": "hostile-token"}}],
               "contexts": [{"name": self.name, "context": {"cluster": self.name, "user": self.name}}]}
        target = Path(path)
        target.write_text(json.dumps(doc))
        return target

    async def write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()
        self.sent += len(data)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1].decode()
                self.requests.append(target)
                behaviour = self.watch if "watch=true" in target.lower() else self.list_
                if behaviour is not None:
                    await behaviour(writer)
                    return
                if "watch=true" in target.lower():  # an idle watch: the server ends it at once
                    writer.write(headers(length=0))
                else:
                    writer.write(headers(length=len(EMPTY_LIST)) + EMPTY_LIST)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def headers(*, length: int | None) -> bytes:
    """200 OK JSON headers; no length: the body ends when the connection closes."""
    extra = f"Content-Length: {length}\r\n" if length is not None else "Connection: close\r\n"
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}\r\n".encode()


async def hang(writer: asyncio.StreamWriter) -> None:  # noqa: ARG001 - holds the connection
    await asyncio.Event().wait()
