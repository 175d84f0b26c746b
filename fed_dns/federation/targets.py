"""Which backends get data-plane probes, from the `fed-dns.io/probe` annotation. Pure.

`parse("tcp") -> ("tcp", "")`, `parse("http:/healthz") -> ("http", "/healthz")`, anything
else -> None (not probed; the app counts it as rejected). `of_service(cluster=..., view=...)`
gives one Service's targets (what `BackendProber.update_targets` takes when that Service
changes): every backend of a Service that asks for a probe, on the backend's first TCP port.
`from_views(views=...)` is the same for every Service of every view (`set_targets`, tests).
"""

from __future__ import annotations

from collections.abc import Iterable

from fed_dns.model import ClusterView, ServiceKey, ServiceView

TargetKey = tuple[str, ServiceKey, str]  # (cluster, Service, address)
Target = tuple[str, int, str]  # (kind "tcp" | "http", port, path)


def parse(annotation: str | None) -> tuple[str, str] | None:
    if not annotation:
        return None
    text = annotation.strip()
    if text == "tcp":
        return ("tcp", "")
    if text.startswith("http:"):
        path = text[len("http:"):] or "/"
        if path.startswith("/") and " " not in path and len(path) <= 1024:
            return ("http", path)
    return None


def of_service(*, cluster: str, view: ServiceView) -> dict[TargetKey, Target]:
    """The probe targets of one Service in one cluster (empty when it asks for no probe)."""
    probe = parse(view.probe)
    if probe is None:
        return {}
    kind, path = probe
    targets: dict[TargetKey, Target] = {}
    for backend in view.backends:
        port = next((p.port for p in backend.ports if p.protocol == "TCP"), None)
        if port is not None:
            targets[(cluster, view.key, backend.address)] = (kind, port, path)
    return targets


def from_views(*, views: Iterable[ClusterView]) -> dict[TargetKey, Target]:
    targets: dict[TargetKey, Target] = {}
    for view in views:
        for service in view.services.values():
            targets.update(of_service(cluster=view.cluster, view=service))
    return targets
