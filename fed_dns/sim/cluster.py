"""SimCluster: one simulated Kubernetes API server on loopback, with a kill switch."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
from pathlib import Path

from aiohttp import web

from fed_dns.apiserver import handlers, tls
from fed_dns.apiserver.context import Served
from fed_dns.sim import kinds
from fed_dns.sim.controllers import Controllers, default_pod_cidr
from fed_dns.sim.storage import SimStorage
from fed_dns.sim.store import Store


def _kind(kind: str | kinds.Kind) -> kinds.Kind:
    return kinds.REGISTRY.find(kind)


class SimCluster:
    """A member cluster speaking the Kubernetes HTTP API (official client and kubectl work).

    Tests and the demo change its objects directly (`apply`, `delete`). By default there are
    no controllers, except that a Deployment's or ReplicaSet's status follows its spec
    (`ready_limit` caps ready replicas). With `pods=True` (once started) the controllers of
    `sim.controllers` run: Deployments get ReplicaSets, ReplicaSets get Pods with addresses
    from `pod_cidr` (default `controllers.default_pod_cidr(name)`: 10.<trailing number>.0.0/16)
    up to `capacity` scheduled pods (None: no limit; the rest stay Pending), Ready after
    `ready_delay` seconds, statuses follow, and Services with a selector get an EndpointSlice
    of their pods. `kill()` makes it unreachable (its pods keep running), `revive()` brings it
    back on the same port. `list_delay` (seconds) holds every list (not watches, not probes)
    that long before answering: a member slow to sync while it answers its health checks;
    `list_forbidden` answers every list 403 (RBAC that does not grant it), probes still 200.
    """

    def __init__(self, *, name: str, token: str | None = None, history_limit: int = 10_000,
                 bookmark_interval: float = 5.0, watch_timeout: float = 1800.0,
                 ready_limit: int | None = None, use_tls: bool = False, pods: bool = False,
                 capacity: int | None = None, ready_delay: float = 0.2,
                 pod_cidr: str | None = None) -> None:
        self.name = name
        self.use_tls = use_tls
        self._cert: tls.Certificate | None = None
        self._ssl = None
        self.token = token or secrets.token_urlsafe(24)
        self.store = Store(history_limit=history_limit, ready_limit=ready_limit, pods=pods)
        self.controllers = Controllers(
            store=self.store, cluster=name, pod_cidr=pod_cidr or default_pod_cidr(name),
            capacity=capacity, ready_delay=ready_delay) if pods else None
        self._served = Served(storage=SimStorage(self.store), registry=kinds.REGISTRY,
                              tokens=(self.token,), bookmark_interval=bookmark_interval,
                              watch_timeout=watch_timeout)
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None
        self._unlistening: asyncio.Task | None = None  # the listener's close, after kill()
        self.host = "127.0.0.1"
        self.port = 0
        self.state = "new"  # new | running | stopped | hung | closed
        self.list_delay = 0.0
        self.list_forbidden = False

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = handlers.build_app(self._served)
        app.middlewares.append(self._slow_lists)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        self.host = host
        if self.use_tls:
            self._cert = await asyncio.to_thread(tls.self_signed, host)
            self._ssl = self._cert.server_context()
        await self._listen(port)
        if self.controllers is not None:
            self.controllers.start()

    async def _listen(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._runner.server, self.host, port,
                                                reuse_address=True, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        self._served.url = self.url
        self.state = "running"

    @web.middleware
    async def _slow_lists(self, request: web.Request, handler):
        if request.method == "GET" and request.path.startswith("/api") \
                and request.query.get("watch") not in ("1", "true"):
            if self.list_delay:
                await asyncio.sleep(self.list_delay)
            if self.list_forbidden:
                return web.json_response({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "reason": "Forbidden", "code": 403,
                    "message": f"forbidden: cannot list resource at {request.path}"}, status=403)
        return await handler(request)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.use_tls else 'http'}://{host}:{self.port}"

    def kill(self, mode: str = "stop") -> None:
        """"stop": refuse connections and cut every open one (watches included).
        "hang": accept connections but answer nothing, and stall open watches."""
        if mode not in ("stop", "hang"):
            raise ValueError(f"kill mode must be 'stop' or 'hang', not {mode!r}")
        if self.state != "running":
            raise RuntimeError(f"cluster {self.name} is {self.state}, not running")
        if mode == "hang":
            self._served.hang()
            self.state = "hung"
            return
        self._stop_listening()
        self._cut_connections()
        self.store.close_watchers()
        self.state = "stopped"

    def _stop_listening(self) -> None:
        """Accept nothing more at once; close the listener when what it accepted is served.

        asyncio (CPython gh-109564, open) attaches an accepted connection to its server one
        loop step after accepting it, and a server closed in between makes that attach fail:
        the connection's socket is never closed or served (a ResourceWarning when collected).
        So the listener stops accepting now and closes after that step, then the connections
        it attached meanwhile (in aiohttp's list only after their connection_made) are cut."""
        server, self._server = self._server, None
        loop = asyncio.get_running_loop()
        for sock in server.sockets:
            loop.remove_reader(sock.fileno())  # an accept already due is cancelled too

        async def close_listener() -> None:
            server.close()  # this step runs after the attach steps queued before it
            await asyncio.sleep(0)  # ... and the connection_made calls those steps queued
            self._cut_connections()

        self._unlistening = loop.create_task(close_listener(), name=f"sim-{self.name}-unlisten")

    async def _stopped_listening(self) -> None:
        if self._unlistening is not None:
            await self._unlistening
            self._unlistening = None

    def _cut_connections(self) -> None:
        if self._runner is None or self._runner.server is None:
            return
        for handler in self._runner.server.connections:
            transport = handler.transport
            handler.force_close()
            if transport is not None:
                transport.abort()

    async def revive(self) -> None:
        """Serve again on the same port, with the same objects and history."""
        if self.state == "hung":
            self._cut_connections()  # what arrived while hung is never answered
            self.store.close_watchers()
            self._served.resume()
        elif self.state == "stopped":
            await self._stopped_listening()  # the port is free again
            await self._listen(self.port)
        else:
            raise RuntimeError(f"cluster {self.name} is {self.state}: nothing to revive")
        self.state = "running"

    async def close(self) -> None:
        if self.state == "closed":
            return
        if self.controllers is not None:
            self.controllers.stop()
        if self._server is not None:
            self._stop_listening()
        await self._stopped_listening()
        self._cut_connections()
        self.store.close_watchers()
        self._served.resume()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.state = "closed"

    async def __aenter__(self) -> SimCluster:
        if self.state == "new":
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- objects -------------------------------------------------------------------------

    def apply(self, obj: dict) -> dict:
        """Create or replace `obj` (its kind from `kind`), as given: status included."""
        stored = self.store.put(kinds.REGISTRY.for_object(obj), obj)
        return json.loads(stored.data)

    def delete(self, *, kind: str, namespace: str = "", name: str) -> dict | None:
        k = _kind(kind)
        if self.store.get(k, namespace=namespace, name=name) is None:
            return None
        return json.loads(self.store.delete(k, namespace=namespace, name=name).data)

    def get(self, *, kind: str, namespace: str = "", name: str) -> dict | None:
        stored = self.store.get(_kind(kind), namespace=namespace, name=name)
        return json.loads(stored.data) if stored else None

    def list(self, *, kind: str, namespace: str | None = None) -> list[dict]:
        items, _ = self.store.list(_kind(kind), namespace=namespace)
        return [json.loads(s.data) for s in items]

    def compact(self) -> None:
        self.store.compact()

    @property
    def resource_version(self) -> int:
        return self.store.rv

    @property
    def ready_limit(self) -> int | None:
        return self.store.ready_limit

    @ready_limit.setter
    def ready_limit(self, limit: int | None) -> None:
        self.store.set_ready_limit(limit)

    @property
    def capacity(self) -> int | None:
        """How many pods can be scheduled (pods=True only; None: no limit)."""
        return self.controllers.capacity if self.controllers is not None else None

    @capacity.setter
    def capacity(self, capacity: int | None) -> None:
        if self.controllers is None:
            raise RuntimeError(f"cluster {self.name} runs no pods (SimCluster(pods=True))")
        self.controllers.set_capacity(capacity)

    # -- kubeconfig ----------------------------------------------------------------------

    def kubeconfig(self) -> dict:
        """Cluster, user (bearer token) and context, all named after the cluster. kubectl
        sends the token only over TLS: use `use_tls=True` for a cluster kubectl must reach."""
        cluster: dict = {"server": self.url}
        if self._cert is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self._cert.cert_pem).decode()
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": self.name, "cluster": cluster}],
            "users": [{"name": self.name, "user": {"token": self.token}}],
            "contexts": [{"name": self.name, "context": {"cluster": self.name,
                                                         "user": self.name}}],
            "current-context": self.name,
        }

    def write_kubeconfig(self, path: str | os.PathLike) -> Path:
        """Write the kubeconfig (JSON, which is YAML) readable by its owner only."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.kubeconfig(), f, indent=2)
        return target
