"""A tiny loopback stand-in for a member's API server: only /readyz and /healthz."""

from __future__ import annotations

import asyncio
import ssl

import kubernetes.client
from aiohttp import web

from tests.support import LOOPBACK


class FakeApiServer:
    """`mode`: ready | unready | no-readyz | hang. Requires `Bearer <token>` when token is set."""

    def __init__(self, *, token: str | None = "s3cret-token", mode: str = "ready",
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.token = token
        self.mode = mode
        self.paths: list[str] = []
        self.port = 0
        self._ssl = ssl_context
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()

    @property
    def url(self) -> str:
        return f"{'https' if self._ssl else 'http'}://{LOOPBACK}:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/healthz", self._healthz)
        self._release = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, self.port, ssl_context=self._ssl, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Kill it: connections are refused until start() again (same port)."""
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def client(self, *, token: str | None = None, ca_file: str | None = None) -> kubernetes.client.ApiClient:
        configuration = kubernetes.client.Configuration(host=self.url)
        if token or self.token:
            configuration.api_key = {"authorization": token or self.token}
            configuration.api_key_prefix = {"authorization": "Bearer"}
        configuration.ssl_ca_cert = ca_file
        return kubernetes.client.ApiClient(configuration)

    async def _answer(self, request: web.Request, *, found: bool) -> web.Response:
        self.paths.append(request.path)
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401, text="Unauthorized")
        if self.mode == "hang":
            await self._release.wait()
        if not found:
            return web.Response(status=404, text="not found")
        if self.mode == "unready":
            return web.Response(status=500, text="[-]etcd failed: reason withheld")
        return web.Response(text="ok")

    async def _readyz(self, request: web.Request) -> web.Response:
        return await self._answer(request, found=self.mode != "no-readyz")

    async def _healthz(self, request: web.Request) -> web.Response:
        return await self._answer(request, found=True)
