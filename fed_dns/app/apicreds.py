"""The federation API's credentials: its serving certificate and its bearer tokens.

What the config does not name is generated once in `api.dir` (default
~/.local/state/fed-dns/api): a self-signed certificate (tls.crt, tls.key) and a token file
(token), every secret file mode 0600. `fed-dns kubeconfig` reads the same files. Tokens and
keys are never logged.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fed_dns.apiserver import tls

DEFAULT_DIR = "~/.local/state/fed-dns/api"


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    cert_file: Path
    key_file: Path
    ca_pem: bytes  # what clients trust (the self-signed certificate, or ca_file)
    tokens: tuple[str, ...] = field(repr=False)


def write_private(path: Path, data: bytes) -> None:
    """Mode 0600 from the start, and whole or not at all: written to a new file of its own
    beside `path` (created exclusively with mode 0600, whatever the umask or a leftover),
    then renamed over it (a reader never sees a file still being written, nor one readable
    by others, even when `path` existed with a wider mode)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, aside = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(aside, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(aside)
        raise


def read_tokens(path: Path) -> tuple[str, ...]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


def serving_host(listen_host: str) -> str:
    """The host clients reach: a wildcard listen address means this machine's loopback."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(listen_host, listen_host)


@contextlib.contextmanager
def _generating(base: Path):
    """Held while files are generated in `base`: two processes starting at once (a daemon and
    `fed-dns kubeconfig`, two replicas on one volume) make one set of credentials, and neither
    reads a file the other is still writing."""
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(base / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure(section, *, generate: bool = True) -> Credentials:
    """The credentials of `section` (config.api), generating what is missing when `generate`
    (else FileNotFoundError)."""
    base = Path(os.path.expanduser(section.dir or DEFAULT_DIR))
    if section.cert_file:  # with its key_file: the config refuses one without the other
        cert, key = Path(section.cert_file), Path(section.key_file)
    else:
        cert, key = base / "tls.crt", base / "tls.key"
    token_file = Path(section.token_file) if section.token_file else base / "token"
    made = not section.cert_file and not cert.exists()
    if generate and (made or not token_file.exists()):
        with _generating(base):
            if not section.cert_file and not cert.exists():
                pair = tls.self_signed(serving_host(section.host))
                write_private(key, pair.key_pem)
                write_private(cert, pair.cert_pem)
            if not token_file.exists():
                write_private(token_file, secrets.token_urlsafe(32).encode() + b"\n")
    tokens = read_tokens(token_file)
    if not tokens:
        raise ValueError(f"api: the token file {token_file} holds no token")
    ca = Path(section.ca_file) if section.ca_file else cert
    return Credentials(cert_file=cert, key_file=key, ca_pem=ca.read_bytes(), tokens=tokens)


def server_url(section) -> str:
    host = serving_host(section.host)
    return f"https://{f'[{host}]' if ':' in host else host}:{section.port}"


def kubeconfig(*, server: str, creds: Credentials, name: str = "federation") -> dict:
    """A kubeconfig with one cluster, user and context, all named `name`."""
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": name, "cluster": {
            "server": server,
            "certificate-authority-data": base64.b64encode(creds.ca_pem).decode()}}],
        "users": [{"name": name, "user": {"token": creds.tokens[0]}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
