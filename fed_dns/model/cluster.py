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
