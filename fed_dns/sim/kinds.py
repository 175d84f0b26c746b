"""The resource types a simulated cluster serves, as discovery describes them."""

from __future__ import annotations

from dataclasses import dataclass

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True, kw_only=True)
class Kind:
    """One resource: where it lives in the URL space and how discovery names it."""

    kind: str
    plural: str
    group: str  # "" for the core group
    version: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    singular: str = ""
    subresources: tuple[str, ...] = ()  # "status", "scale"
    categories: tuple[str, ...] = ()  # "all": `kubectl get all`

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def key(self) -> str:
        """The store's name for the resource: "services", "endpointslices.discovery.k8s.io"."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


NAMESPACE = Kind(kind="Namespace", plural="namespaces", group="", version="v1", namespaced=False,
                 short_names=("ns",), singular="namespace", subresources=("status",))
SERVICE = Kind(kind="Service", plural="services", group="", version="v1", namespaced=True,
               short_names=("svc",), singular="service", subresources=("status",),
               categories=("all",))
ENDPOINT_SLICE = Kind(kind="EndpointSlice", plural="endpointslices", group="discovery.k8s.io",
                      version="v1", namespaced=True, singular="endpointslice")
DEPLOYMENT = Kind(kind="Deployment", plural="deployments", group="apps", version="v1",
                  namespaced=True, short_names=("deploy",), singular="deployment",
                  subresources=("status", "scale"), categories=("all",))

KINDS: tuple[Kind, ...] = (NAMESPACE, SERVICE, ENDPOINT_SLICE, DEPLOYMENT)
BY_KIND: dict[str, Kind] = {k.kind: k for k in KINDS}


def for_object(obj: dict) -> Kind:
    """The Kind of an object from its `kind` (and `apiVersion` when given); KeyError if unknown."""
    kind = BY_KIND[obj.get("kind", "")]
    api_version = obj.get("apiVersion")
    if api_version and api_version != kind.api_version:
        raise KeyError(f"{api_version} {obj.get('kind')}")
    return kind


def group_versions() -> dict[str, list[Kind]]:
    """group/version -> its kinds, in a stable order."""
    out: dict[str, list[Kind]] = {}
    for k in KINDS:
        out.setdefault(k.group_version, []).append(k)
    return out
