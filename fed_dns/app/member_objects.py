"""One member's objects for the replica loop: a list/watch cache of the Deployments and
ReplicaSets, and of the ConfigMaps, Secrets and Services that follow them (`dependents`),
labelled `fed-dns.io/managed-by: <owner>`, and the writes to them. Only `Observed` is kept
(names, labels, hashes, counts): never a Secret's data.

It speaks HTTP with aiohttp, with the endpoint and credentials of the member's kubeconfig
(`federation.kubeapi`, as the health probes do): no thread per request, and a hung member
times out exactly (`request_timeout`). Each watch event names the object it changed through
`on_change(cluster, kind, namespace, name)`, so the loop marks only that workload dirty.
A write's answer goes into the cache at once, so the next run plans against it; an event
older than what the cache holds is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from fed_dns.federation import kubeapi
from fed_dns.federation.propagation import CREATE, DELETE, MANAGED_BY, Action, Observed

log = logging.getLogger("fed_dns.replicas")

NOT_SERVED_RECHECK = 30.0  # seconds between lists of a kind the member does not serve
# kind -> (API prefix, plural)
RESOURCES = {"Deployment": ("/apis/apps/v1", "deployments"),
             "ReplicaSet": ("/apis/apps/v1", "replicasets"),
             "ConfigMap": ("/api/v1", "configmaps"), "Secret": ("/api/v1", "secrets"),
             "Service": ("/api/v1", "services")}
PLURALS = {kind: plural for kind, (_, plural) in RESOURCES.items()}
Key = tuple[str, str, str]  # (kind, namespace, name)
OnChange = Callable[[str, str, str, str], None]


class WriteError(Exception):
    """A write failed; `code` is the HTTP status (0: no answer), `reason` the Status reason."""

    def __init__(self, message: str, *, code: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Written:
    """What a write left in the member: the object (None once deleted)."""

    observed: Observed | None


def _newer_or_equal(a: str, b: str) -> bool:
    """Whether resourceVersion `a` is at least `b` (numeric ones compared as numbers)."""
    if a.isdigit() and b.isdigit():
        return int(a) >= int(b)
    return True


class MemberObjects:
    def __init__(self, *, cluster: str, api_client: Any, owner: str, on_change: OnChange,
                 request_timeout: float = 5.0, watch_timeout: float = 300.0,
                 retry_max: float = 2.0) -> None:
        self.cluster = cluster
        self.owner = owner
        self._configuration = api_client.configuration
        self._on_change = on_change
        self._request_timeout = request_timeout
        self._watch_timeout = watch_timeout
        self._retry_max = retry_max
        self._endpoint: kubeapi.ApiEndpoint | None = None
        self._session: aiohttp.ClientSession | None = None
        self.objects: dict[Key, Observed] = {}
        self._gone: dict[Key, str] = {}  # deleted by us: the rv of the deletion
        self.synced: dict[str, bool] = dict.fromkeys(PLURALS, False)
        self.last_error = ""
        self._pokes = {kind: asyncio.Event() for kind in PLURALS}
        self.on_synced: Callable[[str], None] | None = None

    @property
    def listed(self) -> bool:
        return all(self.synced.values())

    # -- HTTP ------------------------------------------------------------------------------

    async def _ready(self) -> tuple[aiohttp.ClientSession, dict[str, str]]:
        if self._endpoint is None:
            self._endpoint = await asyncio.to_thread(kubeapi.endpoint, self._configuration)
        if self._session is None:
            self._session = aiohttp.ClientSession(trust_env=False)
        headers = await asyncio.to_thread(kubeapi.auth_headers, self._configuration)
        return self._session, headers

    async def _request(self, method: str, path: str, *, body: Any = None,
                       timeout: float | None = None) -> tuple[int, dict]:
        session, headers = await self._ready()
        ep = self._endpoint
        headers = dict(headers, Accept="application/json")
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body, separators=(",", ":"))
        try:
            async with session.request(
                    method, ep.base_url + path, data=data, headers=headers, ssl=ep.ssl,
                    server_hostname=ep.server_hostname, proxy=ep.proxy,
                    timeout=aiohttp.ClientTimeout(total=timeout or self._request_timeout)) as resp:
                text = await resp.read()
                try:
                    answer = json.loads(text) if text else {}
                except ValueError:
                    answer = {}
                return resp.status, answer if isinstance(answer, dict) else {}
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise WriteError(f"{self.cluster}: {method} {path.split('?')[0]}: "
                             f"{type(exc).__name__}: {exc}"[:300]) from None

    # -- the cache -------------------------------------------------------------------------

    def _store(self, obj: dict, *, notify: bool) -> None:
        o = Observed.of(obj)
        key = (o.kind, o.namespace, o.name)
        have = self.objects.get(key)
        if have is not None and not _newer_or_equal(o.resource_version, have.resource_version):
            return
        gone = self._gone.get(key)
        if gone is not None:
            if not _newer_or_equal(o.resource_version, gone) or o.resource_version == gone:
                return
            del self._gone[key]
        if o.managed_by != self.owner:  # relabelled by someone: no longer ours
            self._drop(key, rv=o.resource_version, notify=notify)
            return
        self.objects[key] = o
        if notify and have != o:
            self._on_change(self.cluster, *key)

    def _drop(self, key: Key, *, rv: str, notify: bool) -> None:
        have = self.objects.get(key)
        if have is not None and not _newer_or_equal(rv, have.resource_version):
            return
        if self.objects.pop(key, None) is not None and notify:
            self._on_change(self.cluster, *key)

    def get(self, kind: str, namespace: str, name: str) -> Observed | None:
        return self.objects.get((kind, namespace, name))

    # -- list and watch --------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for kind in PLURALS:
                    group.create_task(self._follow(kind), name=f"replicas-{self.cluster}-{kind}")
        finally:
            if self._session is not None:
                await self._session.close()
                self._session = None

    def poke(self) -> None:
        """List again now (the member is back): skip any backoff, end the current watches.
        Until every kind is listed again the member does not count as listed (a sync must
        not plan from one fresh kind and another's cache from before the outage)."""
        self.synced = dict.fromkeys(PLURALS, False)
        for event in self._pokes.values():
            event.set()

    async def _follow(self, kind: str) -> None:
        delay = 0.1
        poked = self._pokes[kind]
        while True:
            poked.clear()
            try:
                rv = await self._list(kind)
                delay = 0.1
                while not poked.is_set():
                    if not rv:  # not served: look again now and then
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(NOT_SERVED_RECHECK):  # not wait_for (3.11)
                                await poked.wait()
                        break
                    watch = asyncio.ensure_future(self._watch(kind, rv))
                    wake = asyncio.ensure_future(poked.wait())
                    try:
                        await asyncio.wait((watch, wake), return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        wake.cancel()
                        if not watch.done():
                            watch.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await watch
                    if watch.done() and not watch.cancelled():
                        rv = watch.result()
                continue
            except (WriteError, _Relist) as exc:
                self.last_error = str(exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):  # not wait_for (3.11)
                    await poked.wait()
            delay = min(self._retry_max, delay * 2)

    def _selector(self) -> str:
        return "labelSelector=" + quote(f"{MANAGED_BY}={self.owner}")

    async def _list(self, kind: str) -> str:
        code, body = await self._request(
            "GET", f"{RESOURCES[kind][0]}/{PLURALS[kind]}?{self._selector()}")
        if code == 404:  # the member does not serve the kind: none of ours there
            body = {"items": [], "metadata": {}}
        elif code != 200:
            raise WriteError(f"{self.cluster}: list {PLURALS[kind]}: HTTP {code}", code=code)
        seen = set()
        for item in body.get("items") or ():
            item.setdefault("kind", kind)
            self._store(item, notify=True)
            o = Observed.of(item)
            seen.add((kind, o.namespace, o.name))
        for key in [k for k in self.objects if k[0] == kind and k not in seen]:
            self.objects.pop(key)
            self._on_change(self.cluster, *key)
        self.synced[kind] = True
        if self.listed and self.on_synced is not None:
            self.on_synced(self.cluster)
        return str((body.get("metadata") or {}).get("resourceVersion") or "")

    async def _watch(self, kind: str, rv: str) -> str:
        session, headers = await self._ready()
        ep = self._endpoint
        path = (f"{RESOURCES[kind][0]}/{PLURALS[kind]}?{self._selector()}&watch=1&"
                f"allowWatchBookmarks=true&timeoutSeconds={int(self._watch_timeout)}"
                f"&resourceVersion={quote(rv)}")
        try:
            async with session.get(ep.base_url + path, headers=headers, ssl=ep.ssl,
                                   server_hostname=ep.server_hostname, proxy=ep.proxy,
                                   timeout=aiohttp.ClientTimeout(
                                       total=None, connect=self._request_timeout,
                                       sock_read=self._watch_timeout + 30)) as resp:
                if resp.status != 200:
                    raise WriteError(f"{self.cluster}: watch {PLURALS[kind]}: HTTP {resp.status}")
                async for line in resp.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    if event.get("type") == "ERROR":
                        raise _Relist(f"{self.cluster}: watch {PLURALS[kind]}: "
                                      f"{obj.get('message', 'error')}")
                    obj.setdefault("kind", kind)
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self._store(obj, notify=True)
                    elif event.get("type") == "DELETED":
                        meta = obj.get("metadata") or {}
                        self._drop((kind, meta.get("namespace", ""), meta.get("name", "")),
                                   rv=str(meta.get("resourceVersion") or ""), notify=True)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise WriteError(f"{self.cluster}: watch {PLURALS[kind]}: "
                             f"{type(exc).__name__}: {exc}"[:300]) from None
        return rv

    # -- writes ----------------------------------------------------------------------------

    async def read(self, *, kind: str, namespace: str, name: str) -> Observed | None:
        """The object of that name whatever its labels (None: there is none)."""
        code, body = await self._request("GET", _path(kind, namespace, name))
        if code == 404:
            return None
        if code != 200:
            raise WriteError(f"{self.cluster}: read {kind} {namespace}/{name}: HTTP {code}",
                             code=code)
        body.setdefault("kind", kind)
        self._store(body, notify=False)
        return Observed.of(body)

    async def apply(self, action: Action) -> Written:
        """Make one write. WriteError with code 409 (reason AlreadyExists or Conflict) when the
        object is not as planned; other failures with their code (0: no answer)."""
        path = _path(action.kind, action.namespace, action.name)
        if action.verb == DELETE:
            code, body = await self._request("DELETE", path, body={
                "apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background",
                "preconditions": {"resourceVersion": action.resource_version}})
            if code in (200, 202, 404):
                key = (action.kind, action.namespace, action.name)
                rv = str(((body.get("metadata") or {}) if code != 404 else {})
                         .get("resourceVersion") or action.resource_version)
                self._gone[key] = rv
                self.objects.pop(key, None)
                return Written(observed=None)
            raise _failed(self.cluster, action, code, body)
        if action.verb == CREATE:
            code, body = await self._request("POST", path.rsplit("/", 1)[0], body=action.body)
            if code == 404 and _namespace_missing(body):
                await self._create_namespace(action.namespace)
                code, body = await self._request("POST", path.rsplit("/", 1)[0],
                                                 body=action.body)
        else:
            code, body = await self._request("PUT", path, body=action.body)
        if code in (200, 201):
            body.setdefault("kind", action.kind)
            self._store(body, notify=False)
            return Written(observed=Observed.of(body))
        raise _failed(self.cluster, action, code, body)

    async def _create_namespace(self, namespace: str) -> None:
        code, body = await self._request("POST", "/api/v1/namespaces", body={
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {MANAGED_BY: self.owner}}})
        if code not in (200, 201, 409):
            raise WriteError(f"{self.cluster}: create namespace {namespace}: HTTP {code}",
                             code=code, reason=str(body.get("reason") or ""))
        log.info("cluster %s: created namespace %s", self.cluster, namespace)

    async def close(self) -> None:
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
            self._session = None


class _Relist(Exception):
    pass


def _path(kind: str, namespace: str, name: str) -> str:
    prefix, plural = RESOURCES[kind]
    return f"{prefix}/namespaces/{quote(namespace)}/{plural}/{quote(name)}"


def _namespace_missing(body: dict) -> bool:
    return (body.get("details") or {}).get("kind") == "namespaces"


def _failed(cluster: str, action: Action, code: int, body: dict) -> WriteError:
    # a member's message may quote what it refused: never a Secret's
    message = "" if action.kind == "Secret" else str(body.get("message") or "")[:200]
    return WriteError(f"{cluster}: {action.verb} {action.kind} {action.namespace}/"
                      f"{action.name}: HTTP {code}" + (f": {message}" if message else ""),
                      code=code, reason=str(body.get("reason") or ""))
