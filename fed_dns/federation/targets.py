"""Which backends get data-plane probes, from the `fed-dns.io/probe` annotation. Pure.

`parse("tcp") -> ("tcp", "")`, `parse("http:/healthz") -> ("http", "/healthz")`, anything
else -> None (not probed; the app counts it as rejected). `from_views(views=...)` gives the
targets `BackendProber.set_targets` takes: every backend of every Service that asks for a
probe, on the backend's first TCP port.
"""

from __future__ import annotations

from collections.abc import Iterable

from fed_dns.model import ClusterView, ServiceKey

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


def from_views(*, views: Iterable[ClusterView]) -> dict[TargetKey, Target]:
    targets: dict[TargetKey, Target] = {}
    for view in views:
        for key, service in view.services.items():
            probe = parse(service.probe)
            if probe is None:
                continue
            kind, path = probe
            for backend in service.backends:
                port = next((p.port for p in backend.ports if p.protocol == "TCP"), None)
                if port is not None:
                    targets[(view.cluster, key, backend.address)] = (kind, port, path)
    return targets
