"""Settings for reaching etcd and `connect()`, which returns a ready aetcd client.

The client itself is a `connection.ClusterClient`: an aetcd client that uses every endpoint,
one at a time, and builds TLS channels (aetcd 1.0 builds plain-text ones only). Error messages name the endpoint (without any user:password part of
its URL) and never the password.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from typing import TYPE_CHECKING
from dataclasses import dataclass, field
from pathlib import Path

import aetcd
import grpc

if TYPE_CHECKING:
    from fed_dns.etcd.connection import ClusterClient

DEFAULT_PORT = 2379


class EtcdError(Exception):
    """etcd could not be reached or refused us. The message is safe to log."""


class EtcdUnreachable(EtcdError, aetcd.ConnectionFailedError):
    """No endpoint answered (as a member that knows a raft leader). An aetcd
    ConnectionFailedError too, so every retry loop treats it as the transient error it is."""


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


async def connect(settings: EtcdSettings) -> "ClusterClient":
    """A client of the etcd cluster at `settings.endpoints`, connected to the first member
    that answers and knows a raft leader; it moves to another member by itself when that
    one fails (see `connection.ClusterClient`).

    Raises EtcdUnreachable naming every endpoint tried and why it failed.
    """
    from fed_dns.etcd.connection import ClusterClient  # it builds on the settings here

    client = ClusterClient(settings=settings)
    try:
        await client.connect()
    except BaseException:
        await client.close()
        raise
    return client


def credentials(settings: EtcdSettings) -> grpc.ChannelCredentials:
    """The TLS credentials of `settings` (CA, client certificate and key: each optional)."""
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


def describe(exc: BaseException, *, timeout: float) -> str:
    """One line for an error of a call on etcd (not yet scrubbed of secrets)."""
    if isinstance(exc, grpc.RpcError):
        details = getattr(exc, "details", None)
        return (details() if callable(details) else None) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    return str(exc) or type(exc).__name__


def scrub(text: str, *, secrets: Iterable[str | None]) -> str:
    """`text` with every secret replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
