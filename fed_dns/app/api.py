"""The federation API component: builds the API server from config and serves it.

    api = ApiServer(config=config, members=lambda: [ClusterState(...), ...])
    await api.start()        # HTTPS on config.api.listen; objects in etcd (or in memory)
    ...
    await api.close()

With etcd endpoints configured, objects live under /fed-dns/<owner_id>/api/ and every
replica serves the same objects (writes are compare-and-swap: no leader needed). Without
etcd they live in this process only (the demo).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Sequence

from aiohttp import web

from fed_dns.apiserver import fedkinds, handlers
from fed_dns.apiserver.admission import admit_for
from fed_dns.apiserver.clusters import CLUSTER, ClusterState, ClusterStorage
from fed_dns.apiserver.context import Served
from fed_dns.apiserver.etcd3 import EtcdStorage
from fed_dns.apiserver.memory import MemoryStorage, MemoryStore
from fed_dns.apiserver.routed import RoutedStorage
from fed_dns.apiserver.status import ApiError
from fed_dns.app import apicreds

log = logging.getLogger("fed_dns.api")

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public")


def api_prefix(owner_id: str) -> str:
    return f"/fed-dns/{owner_id.strip('/')}/api/"


class ApiServer:
    def __init__(self, *, config, members: Callable[[], Sequence[ClusterState]] = tuple,
                 bookmark_interval: float = 5.0) -> None:
        self.config = config
        self.section = config.api
        self._members = members
        self._bookmark_interval = bookmark_interval
        self._etcd = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.storage = None
        self.objects: EtcdStorage | MemoryStorage | None = None
        self.port = 0

    @property
    def url(self) -> str:
        host = apicreds.serving_host(self.section.host)
        return f"https://{f'[{host}]' if ':' in host else host}:{self.port}"

    async def start(self) -> None:
        creds = await asyncio.to_thread(apicreds.ensure, self.section)
        if self.config.etcd.endpoints:
            from fed_dns.app.components import etcd_settings
            from fed_dns.etcd.client import connect

            self._etcd = await connect(etcd_settings(self.config))
            objects = EtcdStorage(client=self._etcd, prefix=api_prefix(self.config.owner_id),
                                  timeout=self.config.etcd.timeout)
        else:
            objects = MemoryStorage(MemoryStore(fedkinds.KINDS))
        self.objects = objects
        self.storage = RoutedStorage(objects, by_kind={
            CLUSTER.key: ClusterStorage(self._members, objects)})
        await self._default_namespaces()
        served = Served(storage=self.storage, registry=fedkinds.REGISTRY, tokens=creds.tokens,
                        bookmark_interval=self._bookmark_interval,
                        admit=admit_for(clusters=lambda: [m.name for m in self._members()],
                                        reserved=lambda: [m.name for m in self._members()
                                                          if not m.joined]))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(creds.cert_file, creds.key_file)
        self._runner = web.AppRunner(handlers.build_app(served), handle_signals=False,
                                     access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.section.host, self.section.port,
                                 ssl_context=context, reuse_address=True)
        await self._site.start()
        self.port = self._site._server.sockets[0].getsockname()[1]
        served.url = self.url
        log.info("federation API on %s (objects in %s)", self.url,
                 "etcd" if self._etcd is not None else "memory")

    async def _default_namespaces(self) -> None:
        for name in DEFAULT_NAMESPACES:
            try:
                await self.storage.create(fedkinds.NAMESPACE, {"metadata": {"name": name},
                                                               "status": {"phase": "Active"}})
            except ApiError as exc:
                if exc.code != 409:
                    raise

    async def close(self) -> None:
        if isinstance(self.objects, EtcdStorage):
            self.objects.close_watchers()
        elif isinstance(self.objects, MemoryStorage):
            self.objects.store.close_watchers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._etcd is not None:
            await self._etcd.close()
            self._etcd = None
