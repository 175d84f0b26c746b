"""Cluster objects of the federation API read into members to join (pure; no network).

Three formats name a member and where its credentials are:

- Federation v1 `federation/v1beta1` Cluster: `spec.serverAddressByClientCIDRs` and
  `spec.secretRef.name` -> a Secret in namespace `default` with key `kubeconfig`;
- kubefed `core.kubefed.io/v1beta1` KubeFedCluster (namespaced, kube-federation-system as
  `kubefedctl join` makes it): `spec.apiEndpoint`, `spec.caBundle` (base64),
  `spec.secretRef.name` -> a Secret of its namespace with key `token`;
- Karmada `cluster.karmada.io/v1alpha1` Cluster: `spec.apiEndpoint`,
  `spec.secretRef: {namespace, name}` -> a Secret with `token` and `caBundle`,
  `spec.insecureSkipTLSVerification`.

`read_join` gives a `Join` (or why the object cannot be one), `credentials_of` the
credentials from its Secret (or a `Refusal` whose message never holds a credential),
`kubeconfig_refusal` why a Federation v1 kubeconfig is not accepted (a command or a local
file in it), `winners`
who holds each member name, and `ready_condition` the status condition of each format.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

FEDERATION_V1 = "federation/v1beta1"
KUBEFED = "core.kubefed.io/v1beta1"
KARMADA = "cluster.karmada.io/v1alpha1"
FORMATS = (FEDERATION_V1, KUBEFED, KARMADA)
V1_SECRET_NAMESPACE = "default"
REGION, ZONE = "topology.kubernetes.io/region", "topology.kubernetes.io/zone"


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Join:
    """One Cluster object as a member to run."""

    name: str
    format: str  # one of FORMATS
    namespace: str  # the object's ("" for cluster-scoped kinds)
    uid: str
    created: str  # creationTimestamp: the oldest object holds a name
    endpoint: str  # "" for the v1 format without a server address (the kubeconfig's then)
    secret: SecretRef | None
    ca_bundle: bytes = b""  # kubefed spec.caBundle, decoded
    insecure: bool = False  # Karmada spec.insecureSkipTLSVerification
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def region(self) -> str | None:
        return dict(self.labels).get(REGION) or None

    @property
    def zone(self) -> str | None:
        return dict(self.labels).get(ZONE) or None


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """What a client of the member needs; `secrets` are the values no message may show."""

    endpoint: str
    token: str = ""
    ca_pem: bytes = b""
    insecure: bool = False
    kubeconfig: str = ""  # v1: the whole kubeconfig (its current context is used)
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:  # never a credential in a log line or a traceback
        return f"Credentials(endpoint={self.endpoint!r}, insecure={self.insecure})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """Why a Cluster is not a running member: a condition reason and a credential-free message."""

    reason: str
    message: str


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def read_join(api_version: str, obj: Mapping) -> Join | Refusal:
    """A Cluster object of one of FORMATS as a Join; a Refusal when it names no endpoint or
    no Secret (admission refuses those; an object stored before stays harmless)."""
    meta = _dict(obj.get("metadata"))
    spec = _dict(obj.get("spec"))
    labels = tuple(sorted((str(k), str(v)) for k, v in _dict(meta.get("labels")).items()))
    name = _str(meta.get("name"))
    namespace = _str(meta.get("namespace"))
    ref = _dict(spec.get("secretRef"))
    ca = b""
    insecure = False
    if api_version == FEDERATION_V1:
        endpoint = server_address(spec.get("serverAddressByClientCIDRs"))
        secret_ns = _str(ref.get("namespace")) or V1_SECRET_NAMESPACE
    elif api_version == KUBEFED:
        endpoint = _str(spec.get("apiEndpoint"))
        secret_ns = namespace
        raw = _str(spec.get("caBundle"))
        if raw:
            try:
                ca = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                return Refusal(reason="InvalidCABundle", message="spec.caBundle is not base64")
    elif api_version == KARMADA:
        endpoint = _str(spec.get("apiEndpoint"))
        secret_ns = _str(ref.get("namespace"))
        insecure = spec.get("insecureSkipTLSVerification") is True
    else:
        raise ValueError(f"not a Cluster format: {api_version!r}")
    if api_version != FEDERATION_V1 and not endpoint:
        return Refusal(reason="NoEndpoint", message="spec.apiEndpoint is empty")
    secret = SecretRef(namespace=secret_ns, name=_str(ref.get("name"))) \
        if ref.get("name") and secret_ns else None
    if secret is None:
        return Refusal(reason="NoSecret", message="spec.secretRef names no Secret")
    return Join(name=name, format=api_version, namespace=namespace,
                uid=_str(meta.get("uid")), created=_str(meta.get("creationTimestamp")),
                endpoint=endpoint, secret=secret, ca_bundle=ca, insecure=insecure, labels=labels)


def server_address(entries: object) -> str:
    """The address for every client (clientCIDR 0.0.0.0/0 or ::/0), else the first one."""
    rows = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
    for row in rows:
        if row.get("clientCIDR") in ("0.0.0.0/0", "::/0") and _str(row.get("serverAddress")):
            return with_scheme(row["serverAddress"])
    first = next((_str(r.get("serverAddress")) for r in rows if _str(r.get("serverAddress"))), "")
    return with_scheme(first) if first else ""


def with_scheme(address: str) -> str:
    """Federation v1 allowed `host:port`: HTTPS then, as kubectl assumes."""
    return address if "://" in address else f"https://{address}"


def secret_value(secret: Mapping, key: str) -> bytes | None:
    """A Secret's value for `key`: `data` (base64) or `stringData` (as the API server merges)."""
    string_data = _dict(secret.get("stringData"))
    if isinstance(string_data.get(key), str):
        return string_data[key].encode()
    raw = _dict(secret.get("data")).get(key)
    if not isinstance(raw, str):
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return None


def credentials_of(join: Join, secret: Mapping | None) -> Credentials | Refusal:
    """The credentials `join` names, from its Secret (None: not found)."""
    ref = join.secret
    if secret is None:
        return Refusal(reason="SecretNotFound", message=f"secret {ref} not found")
    wanted = {FEDERATION_V1: ("kubeconfig",), KUBEFED: ("token",),
              KARMADA: ("token",)}[join.format]
    values = {}
    for key in wanted:
        value = secret_value(secret, key)
        if not value:
            return Refusal(reason="InvalidSecret", message=f"secret {ref} has no key {key!r}")
        try:
            values[key] = value.decode()
        except UnicodeDecodeError:
            return Refusal(reason="InvalidSecret", message=f"secret {ref}: {key!r} is not text")
    if join.format == FEDERATION_V1:
        text = values["kubeconfig"]
        return Credentials(endpoint=join.endpoint, kubeconfig=text,
                           secrets=_secret_lines(text))
    token = values["token"].strip()
    ca = join.ca_bundle
    if join.format == KARMADA:
        ca = secret_value(secret, "caBundle") or b""
    return Credentials(endpoint=join.endpoint, token=token, ca_pem=ca,
                       insecure=join.insecure, secrets=(token,))


# What a kubeconfig from the federation API may not hold: a command to run or a local file to
# read (a token file, a key) would let whoever may write Secrets and Clusters run programs on
# the fed-dns host or send its files to an endpoint of their choice. Inline data only.
_USER_LOCAL = ("exec", "auth-provider", "tokenFile", "client-certificate", "client-key")
_CLUSTER_LOCAL = ("certificate-authority",)


def kubeconfig_refusal(doc: Mapping) -> Refusal | None:
    """Why a joined cluster's kubeconfig (parsed) is not accepted, or None: every user and
    cluster entry must carry its credentials inline (token, *-data, username/password)."""
    for section, entry, banned in (("users", "user", _USER_LOCAL),
                                   ("clusters", "cluster", _CLUSTER_LOCAL)):
        rows = doc.get(section)
        for row in rows if isinstance(rows, list) else ():
            fields = _dict(_dict(row).get(entry))
            found = [key for key in banned if fields.get(key)]
            if found:
                name = _str(_dict(row).get("name")) or "?"
                return Refusal(reason="UnsupportedKubeconfig", message=(
                    f"{section[:-1]} {name!r} uses {', '.join(found)}: a joined cluster's "
                    "kubeconfig must carry its credentials inline (no commands, no local files)"))
    return None


def _secret_lines(text: str) -> tuple[str, ...]:
    """Every value of a kubeconfig long enough to be a credential (for redaction)."""
    out = []
    for line in text.splitlines():
        _, _, value = line.partition(":")
        value = value.strip().strip("'\"")
        if len(value) >= 8 and "://" not in value:
            out.append(value)
    return tuple(out)


def winners(joins: Iterable[Join], *, reserved: Iterable[str]) -> tuple[dict[str, Join],
                                                                       dict[tuple[str, str, str], Refusal]]:
    """Who holds each member name: the oldest object of that name (then format, namespace,
    uid); the others, and names of config members, are refused. Keys of the refusals:
    (format, namespace, name)."""
    taken = set(reserved)
    held: dict[str, Join] = {}
    refused: dict[tuple[str, str, str], Refusal] = {}
    for j in sorted(joins, key=lambda j: (j.created, FORMATS.index(j.format), j.namespace, j.uid)):
        key = (j.format, j.namespace, j.name)
        if j.name in taken:
            refused[key] = Refusal(reason="NameConflict", message=f"member {j.name!r} is "
                                   "declared in the config file")
        elif j.name in held:
            other = held[j.name]
            where = f"{other.namespace}/" if other.namespace else ""
            refused[key] = Refusal(reason="NameConflict", message=f"member {j.name!r} is "
                                   f"already joined by {other.format} {where}{other.name}")
        else:
            held[j.name] = j
    return held, refused


def ready_condition(*, health: str, synced: bool = True, message: str = "",
                    refusal: Refusal | None = None, since: str = "") -> dict:
    """The Ready condition every format shows (kubefed and Karmada read `type: Ready`): True
    once the member answers its probes and its first lists are in. A member whose /readyz
    answers (often open to anyone) but whose watches are refused is not Ready."""
    if refusal is not None:
        status, reason, text = "False", refusal.reason, refusal.message
    elif health == "ready" and synced:
        status, reason, text = "True", "ClusterReady", "cluster is reachable"
    elif health == "ready" and message:
        status, reason, text = "False", _watch_reason(message), message
    elif health == "ready":
        status, reason, text = "Unknown", "ClusterNotSynced", "listing the cluster's Services"
    elif health == "unreachable":
        status, reason, text = "False", "ClusterNotReachable", message or "cluster is not reachable"
    else:
        status, reason, text = "Unknown", "ClusterStateUnknown", "cluster has not been probed yet"
    out = {"type": "Ready", "status": status, "reason": reason, "message": text}
    if since:
        out["lastTransitionTime"] = out["lastProbeTime"] = since
    return out


def _watch_reason(message: str) -> str:
    if "401" in message:
        return "Unauthorized"
    if "403" in message:
        return "Forbidden"
    return "ClusterNotSynced"
