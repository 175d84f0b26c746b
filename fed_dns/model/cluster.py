"""Member clusters and their health."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Health(enum.StrEnum):
    """Health of a member cluster's API (federation.md state machine)."""

    UNKNOWN = "unknown"
    READY = "ready"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterSpec:
    """A member cluster as declared in config (or found as a kubeconfig context)."""

    name: str
    kubeconfig: str | None = None
    context: str | None = None
    region: str | None = None
    zone_label: str | None = None
    weight: int = 1
    labels: tuple[tuple[str, str], ...] = ()  # sorted (key, value): kubefed/Karmada cluster selectors

    def label_map(self) -> dict[str, str]:
        """The labels cluster selectors match, with the usual topology labels added from
        `region` and `zone_label` (explicit labels win)."""
        out = {}
        if self.region:
            out["topology.kubernetes.io/region"] = self.region
            out["region"] = self.region
        if self.zone_label:
            out["topology.kubernetes.io/zone"] = self.zone_label
            out["zone"] = self.zone_label
        out.update(self.labels)
        return out
