"""Simulated members on loopback and ClusterWatchers on them; every one is stopped."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import pytest

from tests.support import until  # noqa: F401 - the watch tests import it from here

from fed_dns.model import ClusterSpec, ClusterView, ServiceKey
from fed_dns.sim.cluster import SimCluster
from fed_dns.watch.cluster import ClusterWatcher
from fed_dns.watch.kubeconfig import load
from fed_dns.watch.parse import WatchOptions

FAST = WatchOptions(inactivity_timeout=3.0, backoff_initial=0.05, backoff_max=0.3)


@dataclass
class Watching:
    watcher: ClusterWatcher
    task: asyncio.Task
    views: list[ClusterView] = field(default_factory=list)
    changes: list[frozenset[ServiceKey]] = field(default_factory=list)  # on_change's `changed`, in order
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def view(self) -> ClusterView:
        return self.watcher.view

    def changed(self, since: int = 0) -> list[frozenset[ServiceKey]]:
        """The non-empty `changed` sets reported from on_change call number `since` on."""
        return [c for c in self.changes[since:] if c]

    def record(self, view: ClusterView, changed: frozenset[ServiceKey]) -> None:
        self.views.append(view)
        self.changes.append(changed)

    def names(self) -> set[str]:
        return {str(k) for k in self.watcher.view.services}


@pytest.fixture
async def sim():
    cluster = SimCluster(name="c1", bookmark_interval=0.5)
    await cluster.start()
    try:
        yield cluster
    finally:
        await cluster.close()


@pytest.fixture
async def watch(tmp_path):
    """watch(sim, options=FAST) -> Watching, already running; cancelled at teardown."""
    started: list[tuple[Watching, object]] = []

    async def start(cluster: SimCluster, *, options: WatchOptions = FAST, name: str | None = None) -> Watching:
        spec = ClusterSpec(name=name or cluster.name, kubeconfig=str(cluster.write_kubeconfig(tmp_path / f"{cluster.name}.kubeconfig")))
        api = load(spec)
        holder: list[Watching] = []
        watcher = ClusterWatcher(spec=spec, api_client=api, options=options,
                                 on_change=lambda v, changed: holder[0].record(v, changed),
                                 on_error=lambda c, m: holder[0].errors.append((c, m)))
        w = Watching(watcher=watcher, task=asyncio.create_task(watcher.run()))
        holder.append(w)
        started.append((w, api))
        return w

    yield start
    for w, api in started:
        w.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await w.task
        api.close()
