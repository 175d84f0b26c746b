"""The resource types an API server serves: `Kind` (one resource) and `Registry` (the set).

A Kind carries what discovery, OpenAPI and `kubectl get` need: its URL names, subresources,
printer columns (`columns`, a `cells` function giving one row's values, and where Age goes
among them: `age_at`, as the real server prints that kind) and the other
group/versions it is also served as (`aliases`: extensions/v1beta1 for apps/v1 kinds; objects
are always stored in the Kind's own group/version).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
READ_VERBS = ("get", "list", "watch")


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
    columns: tuple[tuple[str, str], ...] = ()  # (name, type) after Name
    cells: Callable[[dict], list] | None = None  # one row's values for `columns`
    # where Age goes among `columns`: None after them all (kube-apiserver's built-in
    # printers, Karmada's), 0 first (kubefed's CRDs list `age` before `ready`)
    age_at: int | None = None
    aliases: tuple[str, ...] = ()  # other group/versions that serve the same objects
    read_only: bool = False  # get/list/watch only
    delete_returns_object: bool = False  # DELETE answers the object (else a Status)

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

    @property
    def verbs(self) -> tuple[str, ...]:
        return READ_VERBS if self.read_only else ALL_VERBS

    @property
    def served_as(self) -> tuple[str, ...]:
        """Every group/version this kind is served as, its own first."""
        return (self.group_version, *self.aliases)


class Registry:
    """The kinds one API server serves, looked up by group/version, plural, kind or name."""

    def __init__(self, kinds: Iterable[Kind]) -> None:
        self.kinds: tuple[Kind, ...] = tuple(kinds)
        self._by_gv: dict[str, dict[str, Kind]] = {}
        for k in self.kinds:
            for gv in k.served_as:
                self._by_gv.setdefault(gv, {})[k.plural] = k

    def __iter__(self):
        return iter(self.kinds)

    def group_versions(self) -> dict[str, list[Kind]]:
        """group/version -> its kinds, in a stable order (own versions before aliases)."""
        return {gv: list(by_plural.values()) for gv, by_plural in self._by_gv.items()}

    def kinds_by_plural(self, group_version: str) -> dict[str, Kind]:
        return self._by_gv.get(group_version, {})

    def for_object(self, obj: dict) -> Kind:
        """The Kind of an object from `kind` and `apiVersion` (an alias counts); KeyError."""
        api_version = obj.get("apiVersion")
        for k in self.kinds:
            if k.kind == obj.get("kind") and (not api_version or api_version in k.served_as):
                return k
        raise KeyError(f"{api_version} {obj.get('kind')}")

    def find(self, name: str | Kind) -> Kind:
        """A kind by any of its names (kind, plural, singular, short name, store key)."""
        if isinstance(name, Kind):
            return name
        for k in self.kinds:
            if name in (k.kind, k.plural, k.singular, k.key, *k.short_names):
                return k
        raise KeyError(f"unknown kind {name!r}")
