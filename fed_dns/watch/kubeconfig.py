"""A member's kubeconfig -> an ApiClient of the official `kubernetes` client.

The client does the authentication as kubectl does (bearer tokens and token files, client
certificates, custom CAs, exec credential plugins with refresh). Failures become a
KubeconfigError naming the cluster, the file and what is wrong, never a credential: the
client's messages are passed through only after every secret value of the file is redacted.
"""

from __future__ import annotations

import os
from pathlib import Path

import kubernetes.client
import kubernetes.config
import yaml

from fed_dns.model import ClusterSpec

SECRET_KEYS = frozenset({"token", "password", "client-key-data", "client-certificate-data",
                         "certificate-authority-data", "id-token", "refresh-token",
                         "client-secret", "access-token"})


class KubeconfigError(Exception):
    """A member's kubeconfig cannot be used; the message is safe to log and show."""


def load(spec: ClusterSpec) -> kubernetes.client.ApiClient:
    """An ApiClient for `spec`: its kubeconfig file, else $KUBECONFIG (merged) / ~/.kube/config."""
    paths = config_paths(spec)
    shown = os.pathsep.join(str(p) for p in paths)
    where = f"cluster {spec.name!r}: kubeconfig {shown!r}"
    docs = [_read(path=p, where=where, missing_ok=len(paths) > 1) for p in paths]
    docs = [d for d in docs if d is not None]
    if not docs:
        raise KubeconfigError(f"{where}: file not found")
    contexts = [c.get("name") for d in docs for c in d.get("contexts") or () if isinstance(c, dict)]
    context = spec.context or next((d["current-context"] for d in docs if d.get("current-context")), None)
    if not context:
        raise KubeconfigError(f"{where}: no context given and no current-context set")
    if context not in contexts:
        known = ", ".join(repr(c) for c in contexts) or "none"
        raise KubeconfigError(f"{where}: unknown context {context!r} (contexts: {known})")
    try:
        client = kubernetes.config.new_client_from_config(
            config_file=shown, context=context, persist_config=False)
    except Exception as exc:  # noqa: BLE001 - the client raises many types; all are config errors
        message = redact(f"{type(exc).__name__}: {exc}", secrets=secret_values(docs))
        raise KubeconfigError(f"{where}, context {context!r}: {message}") from None
    if _uses_exec(docs=docs, context=context) and not _has_credentials(client.configuration):
        client.close()  # the client logs a failed plugin and goes on without credentials
        raise KubeconfigError(f"{where}, context {context!r}: "
                              "the exec credential plugin gave no credentials")
    return client


def _uses_exec(*, docs: list[dict], context: str) -> bool:
    ctx = next((c.get("context") or {} for d in docs for c in d.get("contexts") or ()
                if isinstance(c, dict) and c.get("name") == context), {})
    user = next((u.get("user") or {} for d in docs for u in d.get("users") or ()
                 if isinstance(u, dict) and u.get("name") == ctx.get("user")), {})
    return isinstance(user, dict) and "exec" in user and not user.get("token")


def _has_credentials(configuration: kubernetes.client.Configuration) -> bool:
    return bool(configuration.api_key.get("BearerToken") or configuration.cert_file)


def config_paths(spec: ClusterSpec) -> list[Path]:
    if spec.kubeconfig:
        return [Path(spec.kubeconfig).expanduser()]
    env = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return [Path(p).expanduser() for p in env or ["~/.kube/config"]]


def _read(*, path: Path, where: str, missing_ok: bool) -> dict | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return None
        raise KubeconfigError(f"{where}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KubeconfigError(f"{where}: cannot read {str(path)!r} ({type(exc).__name__})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise KubeconfigError(f"{where}: {str(path)!r} is not valid YAML{at}") from None
    if not isinstance(doc, dict):
        raise KubeconfigError(f"{where}: {str(path)!r} is not a kubeconfig (expected a mapping)")
    return doc


def secret_values(doc: object) -> set[str]:
    """Every value under a secret-looking key anywhere in the document (and exec env values)."""
    found: set[str] = set()
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in SECRET_KEYS and isinstance(value, str) and value:
                    found.add(value)
                elif key == "env" and isinstance(value, list):
                    found.update(str(e.get("value")) for e in value
                                 if isinstance(e, dict) and e.get("value"))
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return found


def redact(message: str, *, secrets: set[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            message = message.replace(secret, "<redacted>")
    return message[:500]
