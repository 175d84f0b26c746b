"""A self-signed serving certificate, made with the `openssl` command (no extra dependency).

kubectl (client-go) sends a kubeconfig's bearer token only over TLS, so a simulated cluster
that kubectl must authenticate to serves HTTPS; its kubeconfig carries the certificate as
`certificate-authority-data`.
"""

from __future__ import annotations

import functools
import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Certificate:
    cert_pem: bytes
    key_pem: bytes

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory(prefix="fed-dns-sim-tls-") as tmp:
            cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
            cert.write_bytes(self.cert_pem)
            key.write_bytes(self.key_pem)
            key.chmod(0o600)
            ctx.load_cert_chain(cert, key)
        return ctx


@functools.lru_cache(maxsize=8)
def self_signed(host: str) -> Certificate:
    """A certificate for `host` (and localhost / 127.0.0.1 / ::1), valid for a year."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("TLS for a simulated cluster needs the `openssl` command")
    names = {"DNS:localhost", "IP:127.0.0.1", "IP:::1"}
    names.add(f"IP:{host}" if host.replace(".", "").isdigit() or ":" in host else f"DNS:{host}")
    with tempfile.TemporaryDirectory(prefix="fed-dns-sim-tls-") as tmp:
        cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "365",
             "-subj", "/CN=fed-dns-sim", "-addext", "subjectAltName=" + ",".join(sorted(names)),
             "-addext", "basicConstraints=critical,CA:TRUE"],
            check=True, capture_output=True, timeout=30)
        return Certificate(cert_pem=cert.read_bytes(), key_pem=key.read_bytes())
