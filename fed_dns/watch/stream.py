"""Blocking list and watch calls of the `kubernetes` client, run in threads, fed to asyncio.

The client is synchronous. Each call runs in a thread of its own (a member holds two long
watches; a shared pool would starve). Responses are read raw (`_preload_content=False`) and
the JSON parsed here, which is far cheaper than the client's model deserialisation, and each
object kept in its compact form (compact.py), which is all the watcher keeps. A watch
thread hands each chunk's events to the event loop with `call_soon_threadsafe`, in order, onto
an asyncio.Queue. `Call.close()` shuts the socket down, so a thread blocked on a read ends at
once when its watcher is cancelled or its stream is declared dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import kubernetes.client

from fed_dns.watch.compact import ENDPOINT_SLICES, SERVICES, Compact, Malformed, parse_object

LIST_PAGE = 500
# Pages parsed at once in the whole process. Parsing (JSON and our compact form) holds the
# GIL: at a restart at 10 x 5,000 the 20 lists (10 members, 2 kinds) parsing side by side
# left the event loop so little of it that lease refreshes and health probes missed their
# deadlines for 5 s (the leader stepped down, 9 members were declared unreachable and
# withdrawn). Serialized, the lists take the same CPU and the loop gets half the GIL.
PARSING = threading.BoundedSemaphore(1)
CONNECT_TIMEOUT = 10.0
CHUNK = 256 * 1024
MiB = 1024 * 1024
# What a member may send before it is an error for that member, not memory growth: a list
# page of 500 objects (a real one is well below 1 MiB of Services, a few MiB of large
# EndpointSlices) and one watch event (one object) each.
MAX_LIST_PAGE = 16 * MiB
MAX_WATCH_LINE = 4 * MiB

# (ADDED | MODIFIED | DELETED, its Compact object) or (BOOKMARK | ERROR | another type, the raw object)
Event = tuple[str, Compact | Any]
OBJECT_EVENTS = frozenset({"ADDED", "MODIFIED", "DELETED"})


class Gone(Exception):
    """410: the resourceVersion is too old; the kind must be listed again."""


class StreamError(Exception):
    """A list or watch failed; the message is safe to show (no credentials) and does not
    name the kind (the watcher puts it in front)."""


@dataclass(frozen=True, slots=True)
class Resource:
    """A watched kind: its name in stats and the client method that lists (and watches) it."""

    name: str
    method: Callable[[kubernetes.client.ApiClient], Callable[..., Any]]


def prewarm() -> None:
    """Load the kubernetes client's API modules now (the package loads them on first use:
    ~0.9 s of CPU, 1.3 s of GIL time in the middle of a restart's lists when left to them)."""
    kubernetes.client.CoreV1Api  # noqa: B018 - the attribute access is the import
    kubernetes.client.DiscoveryV1Api  # noqa: B018


RESOURCES = (
    Resource(name=SERVICES,
             method=lambda c: kubernetes.client.CoreV1Api(c).list_service_for_all_namespaces),
    Resource(name=ENDPOINT_SLICES,
             method=lambda c: kubernetes.client.DiscoveryV1Api(c).list_endpoint_slice_for_all_namespaces),
)


class Call:
    """One request in a thread, which the event loop can abort."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._response: Any = None
        self.closed = False
        self.page_started = time.monotonic()  # when the list page being read was asked for

    def attach(self, response: Any) -> None:
        with self._lock:
            self._response = response
            closed = self.closed
        if closed:
            _shutdown(response)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            response = self._response
        if response is not None:
            _shutdown(response)


def _shutdown(response: Any) -> None:
    """Wake a thread blocked reading `response` (close() alone does not interrupt a recv)."""
    conn = getattr(response, "connection", None)
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _finish(response: Any, *, complete: bool) -> None:
    """Return the connection to the pool: as is when read to the end, else closed first."""
    with contextlib.suppress(Exception):
        if not complete:
            response.close()
        response.release_conn()


async def in_thread(fn: Callable[[], Any], *, name: str) -> Any:
    """Run a blocking `fn` in a new daemon thread; its result or exception, on the loop."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            (future.set_result if ok else future.set_exception)(value)

    def target() -> None:
        try:
            result = (True, fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the loop
            result = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, *result)

    threading.Thread(target=target, name=name, daemon=True).start()
    return await future


def list_all(*, api_client: kubernetes.client.ApiClient, resource: Resource, call: Call,
             read_timeout: float) -> tuple[list[Compact], str]:
    """Every object (compact) and the list's resourceVersion, page by page. Blocking."""
    method = resource.method(api_client)
    items: list[Compact] = []
    token = None
    while True:
        kwargs = {"limit": LIST_PAGE, "_preload_content": False,
                  "_request_timeout": (CONNECT_TIMEOUT, read_timeout)}
        if token:
            kwargs["_continue"] = token
        call.page_started = time.monotonic()
        response = _request(method, kwargs)
        call.attach(response)
        complete = False
        try:
            raw = _read_bounded(response, limit=MAX_LIST_PAGE, what="list")
            complete = True
        finally:
            _finish(response, complete=complete)
        with PARSING:  # one page parsed at a time, whichever member it comes from
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise StreamError("list: the answer is not JSON") from exc
            del raw
            if not isinstance(body, dict):
                raise StreamError("list: the answer is not a list")
            if call.closed:
                raise StreamError("list: closed")
            try:
                items.extend(parse_object(kind=resource.name, obj=o) for o in body.get("items") or ())
            except Malformed as exc:
                raise StreamError(f"list: {exc}") from None
        meta = body.get("metadata") or {}
        token = meta.get("continue")
        if not token:
            return items, str(meta.get("resourceVersion") or "")


def _read_bounded(response: Any, *, limit: int, what: str) -> bytes:
    """The whole body, or StreamError as soon as it is longer than `limit` bytes."""
    body = bytearray()
    for chunk in response.stream(CHUNK, decode_content=True):
        body += chunk
        if len(body) > limit:
            body.clear()  # not held by the traceback until a cycle collection
            raise StreamError(f"{what}: the answer is longer than {limit // MiB} MiB")
    return bytes(body)


async def list_with_deadline(*, page_timeout: float, thread_name: str, **kwargs: Any) -> tuple[list[Compact], str]:
    """list_all in a new thread; StreamError when a page is not read whole within
    `page_timeout` seconds of asking for it (a member that accepts and never answers, sends
    headers then nothing, or part of a body then nothing or a trickle). The abandoned thread
    ends when its socket times out; its connection is shut down if it ever gets an answer."""
    call = Call()
    task = asyncio.ensure_future(in_thread(lambda: list_all(call=call, **kwargs), name=thread_name))
    try:
        while True:
            left = call.page_started + page_timeout - time.monotonic()
            if left <= 0:
                raise StreamError(f"list: no whole page within {page_timeout:g}s")
            done, _ = await asyncio.wait({task}, timeout=left)
            if done:
                return task.result()
    finally:
        call.close()
        task.cancel()


def watch_lines(*, api_client: kubernetes.client.ApiClient, resource: Resource, call: Call,
                resource_version: str, bookmarks: bool, server_timeout: float,
                read_timeout: float, deliver: Callable[[list[Event]], None]) -> None:
    """Stream one watch until the server ends it; each chunk's events go to `deliver`. Blocking."""
    response = _request(resource.method(api_client), {
        "watch": True, "resource_version": resource_version or None,
        "allow_watch_bookmarks": bookmarks,
        "timeout_seconds": max(1, int(server_timeout * (0.5 + random.random() / 2))),
        "_preload_content": False, "_request_timeout": (CONNECT_TIMEOUT, read_timeout)})
    call.attach(response)
    complete = False
    try:
        buffer = bytearray()
        for chunk in response.stream(CHUNK, decode_content=True):
            if call.closed:
                return
            buffer += chunk
            if b"\n" in chunk:
                *lines, rest = buffer.split(b"\n")
                buffer = bytearray(rest)
                if any(len(line) > MAX_WATCH_LINE for line in lines):
                    _too_long(buffer, lines)
                events = [_event(line, resource.name) for line in lines if line.strip()]
                if events:
                    deliver(events)
            if len(buffer) > MAX_WATCH_LINE:  # held at most MAX_WATCH_LINE + CHUNK bytes
                _too_long(buffer, [])
        if buffer.strip():
            deliver([_event(buffer, resource.name)])
        complete = True
    finally:
        _finish(response, complete=complete)


def _too_long(buffer: bytearray, lines: list) -> None:
    """Raise StreamError, first freeing what the frame holds: the traceback keeps the frame
    alive, and the watcher's error path makes a cycle that only the collector breaks."""
    buffer.clear()
    lines.clear()
    raise StreamError(f"watch: an event is longer than {MAX_WATCH_LINE // MiB} MiB")


def _event(line: bytes, kind: str) -> Event:
    try:
        raw = json.loads(line)
        type_, obj = raw["type"], raw["object"]
    except (ValueError, KeyError, TypeError) as exc:
        raise StreamError("watch: an event is not JSON") from exc
    if type_ in OBJECT_EVENTS:
        try:
            obj = parse_object(kind=kind, obj=obj)
        except Malformed as exc:
            raise StreamError(f"watch: {exc}") from None
    return type_, obj


def _request(method: Callable[..., Any], kwargs: dict) -> Any:
    try:
        return method(**kwargs)
    except kubernetes.client.ApiException as exc:
        if exc.status == 410:
            raise Gone(_api_message(exc)) from None
        raise StreamError(_api_message(exc)) from None


def _api_message(exc: kubernetes.client.ApiException) -> str:
    """HTTP status and the Status message of the body; never headers (nor what we sent)."""
    message = ""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        message = str(json.loads(exc.body).get("message") or "")
    return f"HTTP {exc.status} {exc.reason or ''}".rstrip() + (f": {message[:200]}" if message else "")


def start_watch(*, thread_name: str, **kwargs: Any) -> tuple[asyncio.Queue, Call]:
    """watch_lines in a new thread; its batches, then ("end", None) or ("error", exc), queued."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    call = Call()

    def put(item: tuple[str, Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def target() -> None:
        try:
            watch_lines(call=call, deliver=lambda batch: put(("events", batch)), **kwargs)
            put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the loop
            put(("error", exc))

    threading.Thread(target=target, name=thread_name, daemon=True).start()
    return queue, call


def describe(exc: BaseException) -> str:
    """A short, credential-free description of why a list or watch failed."""
    if isinstance(exc, (Gone, StreamError)):
        return str(exc)
    reason = getattr(exc, "reason", None)  # urllib3 MaxRetryError: the underlying error
    if isinstance(reason, BaseException):
        exc = reason
    text = str(exc)
    if "Errno" in text:  # "<...>: Failed to establish a new connection: [Errno 111] Connection refused"
        text = text[text.index("[Errno"):]
    elif "Read timed out" in text:
        text = "read timed out"
    return f"{type(exc).__name__}: {text}"[:300]


async def events(*, queue: asyncio.Queue, inactivity_timeout: float) -> AsyncIterator[list[Event]]:
    """The batches a watch thread delivers, until it ends; raises what it raised.

    No batch (events or bookmarks) for `inactivity_timeout` seconds: StreamError (dead stream).
    """
    while True:
        try:
            async with asyncio.timeout(inactivity_timeout):
                kind, payload = await queue.get()
        except TimeoutError:
            raise StreamError(f"no event or bookmark for {inactivity_timeout:g}s") from None
        if kind == "events":
            yield payload
        elif kind == "error":
            try:
                raise payload
            finally:
                del payload  # no cycle frame -> exception -> traceback -> frame
        else:
            return
