"""How to reach a member's API server the way its kubeconfig says, for plain HTTP probes.

The watchers use the official (blocking) `kubernetes` client; health probes use aiohttp so a
hung member times out exactly and needs no thread. Both read the same
`kubernetes.client.Configuration`, so bearer tokens, client certificates, custom CAs, exec
credential plugins (through the client's refresh hook), TLS server names and proxies of the
kubeconfig all apply as they are.

Both functions may block (they read files; an expired exec credential runs its plugin): call
them in a thread. Nothing here ever puts a credential into a message or a repr.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiEndpoint:
    """Where and how to connect: `base_url` has no credentials and no trailing slash."""

    base_url: str
    ssl: ssl.SSLContext | bool = field(repr=False)
    server_hostname: str | None = None
    proxy: str | None = field(default=None, repr=False)


def strip_userinfo(url: str) -> str:
    """`https://user:pass@host:6443/x` -> `https://host:6443/x` (safe to show)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def endpoint(configuration: Any) -> ApiEndpoint:
    """The probe endpoint of a `kubernetes.client.Configuration` (reads CA/cert files)."""
    host = (configuration.host or "").rstrip("/")
    if not host:
        raise ValueError("the kubeconfig names no server")
    context: ssl.SSLContext | bool = False
    if urlsplit(host).scheme == "https":
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None,
                                             cadata=getattr(configuration, "ca_cert_data", None) or None)
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
        if not configuration.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    return ApiEndpoint(
        base_url=strip_userinfo(host),
        ssl=context,
        server_hostname=getattr(configuration, "tls_server_name", None) or None,
        proxy=getattr(configuration, "proxy", None) or None,
    )


def auth_headers(configuration: Any) -> dict[str, str]:
    """The request headers that carry the member's credentials (may refresh an exec token)."""
    headers: dict[str, str] = {}
    for setting in configuration.auth_settings().values():
        if setting.get("in") == "header" and setting.get("value"):
            headers[setting["key"]] = setting["value"]
    return headers
