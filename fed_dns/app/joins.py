"""The join loop: Cluster objects of the federation API -> members of the running daemon.

    joins = JoinLoop(storage=api.storage, add=daemon.add_member, remove=daemon.remove_member,
                     states=daemon.cluster_states, may_write=daemon._may_write_members)
    await joins.run()

Level-triggered: every `period` (and at once when a Cluster or Secret changes) it reads the
three Cluster kinds (`federation.joining` has the formats) and the Secrets they name, and
makes the running members match: a new Cluster joins (a kube ApiClient from its Secret's
credentials: `add(spec, api_client=...)`), a deleted one leaves (`await remove(name)`), one
whose endpoint, labels or credentials changed leaves and joins again. Then it writes each
object's status: a Ready condition (True/False/Unknown, reason, message) from the member's
health, or why it cannot run (no Secret, bad credentials, a name taken). A Karmada Cluster's
status also carries the member's `kubernetesVersion` (its VERSION column), asked of the
member's /version once it is Ready. Only where `may_write()` (the leader) are statuses
written; every replica runs the members.

A credential is never in a message, a log line or a status: messages are built from the
object's names, and the client library's errors are redacted of every secret value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fed_dns.apiserver import fedkinds
from fed_dns.apiserver.clusters import CLUSTER_KINDS, ClusterState
from fed_dns.apiserver.status import ApiError
from fed_dns.federation import joining
from fed_dns.federation.joining import Credentials, Join, Refusal
from fed_dns.model import ClusterSpec

log = logging.getLogger("fed_dns.joins")

ObjectKey = tuple[str, str, str]  # (format, namespace, name)


VERSION_RETRY = 10.0  # seconds between two /version asks of a member that failed one


@dataclass
class _Running:
    join: Join
    credentials: Credentials
    files: list[str]  # private temp files (a CA bundle) removed when it leaves
    client: object = None  # the member's kube ApiClient (the daemon owns it)
    version: str = ""  # its /version gitVersion, once asked
    asking: asyncio.Task | None = None
    failed_at: float = float("-inf")  # monotonic time of the last failed ask


def fetch_version(client, *, timeout: float = 2.0) -> str:
    """The member's gitVersion from /version (blocking: run it in a thread)."""
    import kubernetes.client

    info = kubernetes.client.VersionApi(client).get_code(_request_timeout=timeout)
    return info.git_version or ""


def build_client(credentials: Credentials):
    """A kube ApiClient from credentials, and the temp files it reads (removed by the
    caller when the member leaves). Refusal when the credentials cannot make one."""
    import kubernetes.client
    import kubernetes.config
    import yaml

    from fed_dns.watch import kubeconfig

    if credentials.kubeconfig:
        try:
            doc = yaml.safe_load(credentials.kubeconfig)
        except yaml.YAMLError:
            return Refusal(reason="InvalidKubeconfig", message="the kubeconfig is not YAML")
        if not isinstance(doc, dict):
            return Refusal(reason="InvalidKubeconfig", message="the kubeconfig is not a mapping")
        refusal = joining.kubeconfig_refusal(doc)
        if refusal is not None:
            return refusal
        secrets = kubeconfig.secret_values(doc) | set(credentials.secrets)
        try:
            client = kubernetes.config.new_client_from_config_dict(doc, persist_config=False)
        except Exception as exc:  # noqa: BLE001 - the loader raises many types
            text = kubeconfig.redact(f"{type(exc).__name__}: {exc}", secrets=secrets)
            return Refusal(reason="InvalidKubeconfig", message=text)
        if credentials.endpoint:
            client.configuration.host = credentials.endpoint
        return client, []
    configuration = kubernetes.client.Configuration()
    configuration.host = credentials.endpoint
    configuration.api_key = {"authorization": f"Bearer {credentials.token}"}
    files = []
    if credentials.insecure:
        configuration.verify_ssl = False
    elif credentials.ca_pem:
        fd, path = tempfile.mkstemp(prefix="fed-dns-ca-", suffix=".crt")  # mode 0600
        with os.fdopen(fd, "wb") as f:
            f.write(credentials.ca_pem)
        configuration.ssl_ca_cert = path
        files.append(path)
    return kubernetes.client.ApiClient(configuration=configuration), files


def spec_of(join: Join) -> ClusterSpec:
    return ClusterSpec(name=join.name, region=join.region, zone_label=join.zone,
                       labels=join.labels)


def status_of(join: Join | None, *, api_version: str, state: ClusterState | None,
              refusal: Refusal | None, version: str = "") -> dict:
    """The status a Cluster object of `api_version` shows: the Ready condition (for
    Federation v1 the fields `kubectl get clusters` prints; for Karmada the member's
    kubernetesVersion once known)."""
    health = state.health if state is not None and refusal is None else "unknown"
    condition = joining.ready_condition(
        health=health, synced=bool(state is not None and state.synced),
        message=state.message if state else "", refusal=refusal,
        since=state.since if state else "")
    status: dict = {"conditions": [condition]}
    if api_version == joining.FEDERATION_V1:
        status.update(health=health if refusal is None else "unreachable",
                      region=(join.region if join else None) or "",
                      zone=(join.zone if join else None) or "",
                      synced=bool(state is not None and refusal is None and state.synced))
    elif api_version == joining.KARMADA and version and refusal is None:
        status["kubernetesVersion"] = version
    return status


class JoinLoop:
    def __init__(self, *, storage, add: Callable[..., None],
                 remove: Callable[[str], Awaitable[None]],
                 states: Callable[[], Sequence[ClusterState]],
                 may_write: Callable[[], bool], period: float = 0.5,
                 build: Callable = build_client, version: Callable = fetch_version) -> None:
        self.storage = storage
        self._add = add
        self._remove = remove
        self._states = states
        self._may_write = may_write
        self._period = period
        self._build = build
        self._fetch_version = version
        self.running: dict[str, _Running] = {}
        self._broken: dict[tuple, Refusal] = {}  # credentials that made no client, by print
        self.last_error = ""

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.sync()
                except ApiError as exc:  # etcd away: try again next period
                    self.last_error = str(exc)
                    log.warning("joins: federation API: %s", exc)
                await asyncio.sleep(self._period)
        finally:
            for running in self.running.values():
                _stop_asking(running)
                _unlink(running.files)

    async def sync(self) -> None:
        """One pass: members match the Cluster objects; statuses written."""
        states = {s.name: s for s in self._states()}
        reserved = {n for n, s in states.items() if not s.joined}
        objects: dict[ObjectKey, tuple] = {}  # key -> (kind, stored object, Join | Refusal)
        for kind in CLUSTER_KINDS:
            listing = await self.storage.list(kind, namespace=None, matcher=None)
            for stored in listing.items:
                obj = stored.obj
                meta = obj.get("metadata") or {}
                name = meta.get("name") or ""
                if kind is fedkinds.CLUSTER and name in reserved and \
                        not (obj.get("spec") or {}).get("secretRef"):
                    continue  # a config member, shown by the API, not ours
                key = (kind.api_version, meta.get("namespace") or "", name)
                objects[key] = (kind, obj, joining.read_join(kind.api_version, obj))
        joins = [j for _, _, j in objects.values() if isinstance(j, Join)]
        held, refused = joining.winners(joins, reserved=reserved)
        for key, (_, _, read) in objects.items():
            if isinstance(read, Refusal):
                refused[key] = read
        wanted: dict[str, tuple[Join, Credentials]] = {}
        for name, join in held.items():
            secret = await self.storage.get(fedkinds.SECRET, namespace=join.secret.namespace,
                                            name=join.secret.name)
            creds = joining.credentials_of(join, secret.obj if secret is not None else None)
            if isinstance(creds, Refusal):
                refused[(join.format, join.namespace, join.name)] = creds
            else:
                wanted[name] = (join, creds)
        for name in [n for n in self.running if n not in wanted or
                     (self.running[n].join, self.running[n].credentials) != wanted[n]]:
            await self._leave(name)
        self._broken = {m: r for m, r in self._broken.items() if m in wanted.values()}
        for name, (join, creds) in wanted.items():
            if name in self.running:
                continue
            refusal = self._join(join, creds)
            if refusal is not None:
                refused[(join.format, join.namespace, join.name)] = refusal
        states = {s.name: s for s in self._states()}
        if self._may_write():
            for key, (kind, obj, read) in objects.items():
                refusal = refused.get(key)
                state = states.get(key[2]) if refusal is None else None
                version = self._version(read, state) if kind.api_version == joining.KARMADA \
                    and isinstance(read, Join) else ""
                await self._write_status(kind, obj, status_of(
                    read if isinstance(read, Join) else None, api_version=kind.api_version,
                    state=state, refusal=refusal, version=version))

    def _join(self, join: Join, creds: Credentials) -> Refusal | None:
        mark = (join, creds)
        if mark in self._broken:
            return self._broken[mark]
        try:
            built = self._build(creds)
        except Exception as exc:  # noqa: BLE001 - never a crash for bad credentials
            from fed_dns.watch.kubeconfig import redact

            built = Refusal(reason="InvalidCredentials",
                            message=redact(f"{type(exc).__name__}: {exc}", secrets=set(creds.secrets)))
        if isinstance(built, Refusal):
            log.warning("cluster %s (%s) cannot join: %s: %s", join.name, join.format,
                        built.reason, built.message)
            self._broken[mark] = built  # not tried again until the object or Secret changes
            return built
        client, files = built
        try:
            self._add(spec_of(join), api_client=client)
        except ValueError as exc:  # a name that is a member already (a config member)
            _unlink(files)
            with contextlib.suppress(Exception):
                client.close()
            return Refusal(reason="NameConflict", message=str(exc))
        self.running[join.name] = _Running(join=join, credentials=creds, files=files,
                                           client=client)
        log.info("cluster %s joined from %s %s", join.name, join.format,
                 f"{join.namespace}/{join.name}" if join.namespace else join.name)
        return None

    async def _leave(self, name: str) -> None:
        running = self.running.pop(name)
        _stop_asking(running)
        await self._remove(name)
        _unlink(running.files)
        log.info("cluster %s left (%s)", name, running.join.format)

    def _version(self, join: Join, state: ClusterState | None) -> str:
        """The member's version if known; else, once it is Ready, ask its /version (in a
        thread, off this loop's path; the answer shows in a later pass)."""
        running = self.running.get(join.name)
        if running is None or running.join != join:
            return ""
        if running.version or running.asking is not None or state is None or \
                state.health != "ready" or time.monotonic() - running.failed_at < VERSION_RETRY:
            return running.version
        running.asking = asyncio.create_task(self._ask_version(running),
                                             name=f"version-{join.name}")
        return ""

    async def _ask_version(self, running: _Running) -> None:
        try:
            running.version = await asyncio.to_thread(self._fetch_version, running.client)
        except Exception as exc:  # noqa: BLE001 - a column left empty, never a crash
            running.failed_at = time.monotonic()
            log.info("cluster %s: /version: %s", running.join.name, type(exc).__name__)
        finally:
            running.asking = None

    async def _write_status(self, kind, obj: dict, status: dict) -> None:
        if (obj.get("status") or {}) == status:
            return
        try:
            await self.storage.update(kind, dict(obj, status=status), subresource="status")
        except ApiError as exc:
            if exc.code not in (404, 409):  # gone or changed meanwhile: the next pass
                raise


def _stop_asking(running: _Running) -> None:
    if running.asking is not None:
        running.asking.cancel()
        running.asking = None


def _unlink(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)
