"""Settings for reaching etcd and `connect()`, which returns a ready aetcd client.

aetcd 1.0 only builds plain-text channels, so TLS goes through a small subclass that builds a
secure channel instead. Error messages name the endpoint (without any user:password part of
its URL) and never the password.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aetcd
import grpc
from aetcd import rpc, watcher

DEFAULT_PORT = 2379

class EtcdError(Exception):
    """etcd could not be reached or refused us. The message is safe to log."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EtcdSettings:
    endpoints: tuple[str, ...] = ("http://127.0.0.1:2379",)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if isinstance(self.endpoints, str):
            object.__setattr__(self, "endpoints", (self.endpoints,))
        if not self.endpoints:
            raise ValueError("etcd: at least one endpoint is needed")
        for url in self.endpoints:
            parse_endpoint(url)
        if (self.username is None) != (self.password is None):
            raise ValueError("etcd: username and password go together")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("etcd: cert_file and key_file go together")
        if self.timeout <= 0:
            raise ValueError("etcd: timeout must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    host: str
    port: int
    tls: bool

    def __str__(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.target}"

    @property
    def target(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoint(url: str) -> Endpoint:
    """`http://host:port`, `https://host:port` or a bare `host:port` (plain text)."""
    parsed = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"etcd: endpoint {redact(url)!r} is not http(s)://host:port")
    try:
        port = parsed.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(f"etcd: endpoint {redact(url)!r} has a bad port") from None
    return Endpoint(host=parsed.hostname, port=port, tls=parsed.scheme == "https")


def redact(url: str) -> str:
    """The URL without a user:password@ part."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    netloc, slash, path = rest.partition("/")
    netloc = netloc.rpartition("@")[2]
    return f"{scheme}{sep}{netloc}{slash}{path}"


async def connect(settings: EtcdSettings) -> aetcd.Client:
    """A connected client for the first endpoint that answers (a Status call proves it).

    Raises EtcdError naming every endpoint tried and why it failed.
    """
    problems = []
    for url in settings.endpoints:
        endpoint = parse_endpoint(url)
        client = _client(settings=settings, endpoint=endpoint)
        try:
            await client.connect()
            await client.maintenancestub.Status(
                rpc.StatusRequest(), timeout=settings.timeout, metadata=client.metadata)
        except (aetcd.ClientError, grpc.RpcError, OSError, TimeoutError) as exc:
            await _close_quietly(client)
            problems.append(f"{endpoint}: {_reason(exc, settings)}")
            continue
        return client
    raise EtcdError("etcd unreachable: " + "; ".join(problems))


def _client(*, settings: EtcdSettings, endpoint: Endpoint) -> aetcd.Client:
    kwargs = dict(host=endpoint.host, port=endpoint.port, username=settings.username,
                  password=settings.password, timeout=settings.timeout,
                  connect_wait_timeout=settings.timeout)
    if endpoint.tls or settings.ca_file:
        return _TlsClient(credentials=_credentials(settings), **kwargs)
    return aetcd.Client(**kwargs)


def _credentials(settings: EtcdSettings) -> grpc.ChannelCredentials:
    def read(path: str | None) -> bytes | None:
        if path is None:
            return None
        try:
            return Path(path).expanduser().read_bytes()
        except OSError as exc:
            raise EtcdError(f"etcd: cannot read {path}: {exc.strerror}") from None

    return grpc.ssl_channel_credentials(root_certificates=read(settings.ca_file),
                                        private_key=read(settings.key_file),
                                        certificate_chain=read(settings.cert_file))


class _TlsClient(aetcd.Client):
    """aetcd.Client over a TLS channel (aetcd's own connect() is plain text only)."""

    def __init__(self, *, credentials: grpc.ChannelCredentials, **kwargs) -> None:
        super().__init__(**kwargs)
        self._credentials = credentials

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        target = f"{self._host}:{self._port}"
        self.channel = rpc.secure_channel(target, self._credentials, options=self._options.items())
        try:
            if self._username is not None:
                self.auth_stub = rpc.AuthStub(self.channel)
                resp = await self.auth_stub.Authenticate(
                    rpc.AuthenticateRequest(name=self._username, password=self._password),
                    timeout=self._timeout)
                self.metadata = (("token", resp.token),)
        except grpc.RpcError as exc:
            await self.channel.close()
            self._init_channel_attrs()
            raise aetcd.ClientError(_rpc_details(exc)) from None
        self.kvstub = rpc.KVStub(self.channel)
        self.clusterstub = rpc.ClusterStub(self.channel)
        self.leasestub = rpc.LeaseStub(self.channel)
        self.maintenancestub = rpc.MaintenanceStub(self.channel)
        self._watcher = watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout,
                                        metadata=self.metadata)
        self._connected.set()


def _rpc_details(exc: grpc.RpcError) -> str:
    details = getattr(exc, "details", None)
    return (details() if callable(details) else None) or type(exc).__name__


def _reason(exc: BaseException, settings: EtcdSettings) -> str:
    if isinstance(exc, grpc.RpcError):
        text = _rpc_details(exc)
    elif isinstance(exc, TimeoutError):
        text = f"no answer within {settings.timeout:g}s"
    else:
        text = str(exc) or type(exc).__name__
    return scrub(text, secrets=(settings.password,))


def scrub(text: str, *, secrets: Iterable[str | None]) -> str:
    """`text` with every secret replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


async def _close_quietly(client: aetcd.Client) -> None:
    try:
        await client.close()
    except Exception:  # noqa: BLE001 - a half-open channel may complain while closing
        pass
