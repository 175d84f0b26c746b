"""The watch stream: chunked, newline-delimited JSON events, bookmarks, timeoutSeconds."""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from fed_dns.apiserver import tables
from fed_dns.apiserver.context import Served
from fed_dns.apiserver.kinds import Kind
from fed_dns.apiserver.selectors import Matcher
from fed_dns.apiserver.status import ApiError
from fed_dns.apiserver.storage import bookmark
from fed_dns.apiserver.watchers import dumps, event_line


def _int(value: str | None, *, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(code=400, message=f"invalid {name}: {value!r}") from None


async def watch(request: web.Request, *, served: Served, kind: Kind, namespace: str | None,
                matcher: Matcher | None) -> web.StreamResponse:
    q = request.query
    rv = _int(q.get("resourceVersion"), name="resourceVersion")
    timeout = _int(q.get("timeoutSeconds"), name="timeoutSeconds")
    bookmarks = q.get("allowWatchBookmarks", "").lower() in ("1", "true")
    send_initial = q.get("sendInitialEvents", "").lower() in ("1", "true")
    table = tables.wanted(request)  # kubectl get --watch
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                   "Cache-Control": "no-cache, private"})
    resp.enable_chunked_encoding()
    try:
        watcher = await served.storage.watch(kind, namespace=namespace, matcher=matcher,
                                             resource_version=rv or None,
                                             send_initial=send_initial)
    except ApiError as exc:
        # The API server answers an expired resourceVersion with 200 and one ERROR event.
        await resp.prepare(request)
        await resp.write(event_line("ERROR", dumps(exc.status)))
        await resp.write_eof()
        return resp
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (timeout if timeout and timeout > 0 else served.watch_timeout)
    interval = served.bookmark_interval
    next_bookmark = loop.time() + interval if bookmarks and interval > 0 else None
    try:
        await resp.prepare(request)
        while True:
            await served.until_answering()
            if watcher.buffer and not watcher.overflowed:
                data = watcher.take()
                await resp.write(as_tables(kind, data) if table else data)
                continue
            if watcher.closed:
                break
            now = loop.time()
            if now >= deadline:
                break
            if next_bookmark is not None and now >= next_bookmark:
                watcher.push(bookmark(kind, served.storage.bookmark_revision(watcher)))
                next_bookmark = now + interval
                continue
            wake = deadline if next_bookmark is None else min(deadline, next_bookmark)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watcher.wakeup.wait(), wake - now)
    except ConnectionError:  # the client went away (or the cluster was killed)
        return resp
    finally:
        served.storage.unwatch(watcher)
    with contextlib.suppress(ConnectionError):
        await resp.write_eof()
    return resp


def as_tables(kind: Kind, data: bytes) -> bytes:
    """Watch lines with each object printed as a one-row Table (what `kubectl get -w` asks
    for). Only kubectl watches this way, so the cost of re-encoding does not matter."""
    out = []
    for line in data.splitlines():
        event = json.loads(line)
        if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
            event["object"] = tables.table(kind, [event["object"]], resource_version=None)
        out.append(dumps(event) + b"\n")
    return b"".join(out)
