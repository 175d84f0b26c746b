"""The daemon's HTTP endpoint (operations.md): /metrics, /healthz, /readyz, /status.

    endpoint = HttpEndpoint(host="127.0.0.1", port=9153, metrics=metrics,
                            status=lambda: {...}, ready=lambda: True)
    await endpoint.start(); endpoint.port; await endpoint.close()

- `/metrics`: Prometheus text format from `metrics.render()`.
- `/healthz`: 200 "ok" while the process (its event loop) runs.
- `/readyz`: 200 "ready" when `ready()` is true, else 503 "not ready" (also when it raises).
- `/status`: `status()` as JSON, passed through `logs.redact_value` first, so a credential
  that slipped into a field (a token, a password, a URL with user:password@, a PEM block) is
  masked. If `status()` raises, 500 with a generic message (the exception is logged).
- `/records` (when `records` is given): the published records as JSON rows, the same way.

With `token` set, `/status` and `/records` answer 401 unless the request carries
`Authorization: Bearer <token>` (compared in constant time); `/metrics`, `/healthz` and
`/readyz` stay open for scrapers and probes.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from fed_dns.app import logs

log = logging.getLogger(__name__)


class HttpEndpoint:
    def __init__(self, *, host: str, port: int, metrics: Any, status: Callable[[], dict],
                 ready: Callable[[], bool], records: Callable[[], Any] | None = None,
                 token: str | None = None) -> None:
        self._host = host
        self._port = port
        self._metrics = metrics
        self._status = status
        self._ready = ready
        self._records = records
        self._token = token
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when started with port 0)."""
        return self._port

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics_page)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/status", self._guarded(self._json_page(self._status, "status")))
        if self._records is not None:
            app.router.add_get("/records", self._guarded(self._json_page(self._records, "records")))
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = runner.addresses[0][1]

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        try:
            ready = bool(self._ready())
        except Exception:
            log.exception("readiness check failed")
            ready = False
        return web.Response(text="ready\n") if ready else web.Response(status=503, text="not ready\n")

    def _guarded(self, page):
        if not self._token:
            return page
        expected = f"Bearer {self._token}".encode()

        async def guarded(request: web.Request) -> web.Response:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return web.json_response({"error": "a bearer token is needed (http.token_file)"},
                                         status=401, headers={"WWW-Authenticate": "Bearer"})
            return await page(request)

        return guarded

    @staticmethod
    def _json_page(source: Callable[[], Any], what: str):
        async def page(request: web.Request) -> web.Response:
            try:
                body = json.dumps(logs.redact_value(source()), indent=2, sort_keys=True, default=str)
            except Exception:
                log.exception("building /%s failed", what)
                return web.json_response({"error": f"{what} unavailable, see the daemon's log"},
                                         status=500)
            return web.Response(text=body + "\n", content_type="application/json")

        return page
