"""`fed-dns run`: the composition root of the daemon.

Startup: DNS listeners and the HTTP endpoint, etcd (mirror, leader election, writer), then a
watcher and a health prober per member, then the reconcile loop. One TaskGroup runs them.
Shutdown, in order: stop the DNS listeners, let the in-flight etcd transaction finish (within
the grace period), close the watches and probes, resign leadership, close etcd, close HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass

from fed_dns.app.components import EtcdParts
from fed_dns.app.reconcile import Inputs, Reconciler
from fed_dns.federation import targets
from fed_dns.model import Changes, ClusterSpec, ClusterView, Health
from fed_dns.records import names

log = logging.getLogger("fed_dns.daemon")

SHUTDOWN_GRACE = 5.0


@dataclass
class Member:
    """Everything the daemon holds about one member cluster."""

    spec: ClusterSpec
    view: ClusterView
    health: Health = Health.UNKNOWN
    last_error: str = ""
    watcher: object | None = None
    prober: object | None = None
    api_client: object | None = None
    transitions: int = 0


class Daemon:
    """The daemon for one config. `await serve(stop=event)` runs until the event is set."""

    def __init__(self, *, config, members: tuple[ClusterSpec, ...] | None = None) -> None:
        self.config = config
        self.settings = config.zone_settings()
        specs = members if members is not None else config.cluster_specs()
        self.members: dict[str, Member] = {
            s.name: Member(spec=s, view=ClusterView(cluster=s.name)) for s in specs
        }
        self.zone_prefix = names.name_to_key(name=self.settings.zone, prefix=self.settings.prefix)
        self.identity = f"{socket.gethostname()}-{os.getpid()}"
        self.started = time.monotonic()
        self.dns = None
        self.workers = None  # extra DNS worker processes (dns.workers > 1)
        self.topology = None  # server.topology.Topology: answer order by region and weight
        self.http = None
        self.etcd: EtcdParts | None = None
        self.backend_prober = None
        self.memory: dict[str, bytes] = {}
        self.reconciler = Reconciler(
            settings=self.settings,
            inputs=self._inputs,
            publish=self._publish,
            write=self._write,
            may_write=self._may_write,
        )

    # -- inputs and outputs of the reconcile loop ------------------------------------------

    def _inputs(self) -> Inputs:
        current = self.etcd.mirror.snapshot if self.etcd else self.memory
        probes = self.backend_prober.results if self.backend_prober else {}
        return Inputs(
            views={n: m.view for n, m in self.members.items()},
            health={n: m.health for n, m in self.members.items()},
            probes=probes,
            current=current,
        )

    def _publish(self, entries: Mapping[str, bytes]) -> None:
        from fed_dns.server import table

        live = self.settled()
        if self.dns is not None and live:  # until then the loading table answers SERVFAIL
            self.dns.swap(table.build(zone=self.settings.zone, entries=entries,
                                      prefix=self.settings.prefix, previous=self.dns.table,
                                      topology=self.topology))
        if self.workers is not None:
            self.workers.publish(entries, live=live)
        if self.etcd is None:
            self.memory = dict(entries)

    def _may_write(self) -> bool:
        if self.etcd is None:
            return False
        if self.etcd.leader is not None and not self.etcd.leader.is_leader:
            return False
        return True

    async def _write(self, changes: Changes) -> None:
        if self.etcd is None:
            return
        if not getattr(self.etcd.mirror, "loaded", True):
            raise RuntimeError("etcd contents not loaded yet; records are served from memory")
        await self.etcd.writer.apply(changes)
        await self._await_mirror(changes)

    async def _await_mirror(self, changes: Changes, timeout: float = 2.0) -> None:
        """Wait until the mirror shows our own write, so the next run plans against it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            snap = self.etcd.mirror.snapshot
            if all(snap.get(k) == v for k, v in changes.puts.items()) and not any(
                k in snap for k in changes.deletes
            ):
                return
            await asyncio.sleep(0.002)
        log.warning("etcd watch did not show our write within %.1fs", timeout)

    # -- events ------------------------------------------------------------------------------

    def on_view(self, view: ClusterView) -> None:
        member = self.members[view.cluster]
        member.view = view
        self._update_backend_targets()
        self.reconciler.mark_dirty()

    def on_watch_error(self, cluster: str, message: str) -> None:
        member = self.members.get(cluster)
        if member is None:
            return
        member.last_error = message
        if member.prober is not None:
            member.prober.poke()

    def on_health(self, cluster: str, health: Health) -> None:
        member = self.members[cluster]
        if member.health != health:  # the prober logs the change, with the probe's error
            member.health = health
            member.transitions += 1
            self.reconciler.mark_dirty()

    def _update_backend_targets(self) -> None:
        if self.backend_prober is not None:
            self.backend_prober.set_targets(
                targets.from_views(views=[m.view for m in self.members.values()]))

    # -- lifecycle ---------------------------------------------------------------------------

    def settled(self) -> bool:
        """Whether the table can answer for the whole zone: every member's health is decided,
        or etcd's contents are in (they hold the records kept for `unknown` members). Until
        then the server answers SERVFAIL in the zone, never an NXDOMAIN a resolver would cache."""
        if self.etcd is not None and getattr(self.etcd.mirror, "loaded", False):
            return True
        return all(m.health is not Health.UNKNOWN for m in self.members.values())

    def ready(self) -> bool:
        if self.dns is None or not self.settled():
            return False
        if self.workers is not None and not self.workers.alive():
            return False
        return all(m.view.synced or m.health is Health.UNREACHABLE for m in self.members.values())

    async def serve(self, *, stop: asyncio.Event) -> None:
        tasks: dict[str, asyncio.Task] = {}
        try:
            async with asyncio.TaskGroup() as group:
                await self._start(group, tasks)
                stopper = group.create_task(stop.wait(), name="stop")
                await stopper
                await self._shutdown(tasks)
        finally:
            await self._close()

    async def _start(self, group: asyncio.TaskGroup, tasks: dict[str, asyncio.Task]) -> None:
        from fed_dns.app import components

        self.topology = components.topology(config=self.config,
                                            members=tuple(m.spec for m in self.members.values()))
        self.dns = await components.start_dns(config=self.config, settings=self.settings)
        self.workers = components.dns_workers(config=self.config, settings=self.settings,
                                              port=self.dns.port, topology=self.topology)
        self.http = await components.start_http(config=self.config, daemon=self)
        if self.config.etcd.endpoints:
            self.etcd = await components.start_etcd(
                config=self.config, prefix=self.zone_prefix, identity=self.identity,
                on_change=self.reconciler.mark_dirty)
            tasks["etcd-mirror"] = group.create_task(self.etcd.mirror.run(), name="etcd-mirror")
            if self.etcd.leader is not None:
                tasks["etcd-leader"] = group.create_task(self.etcd.leader.run(), name="etcd-leader")
        self.backend_prober = components.backend_prober(config=self.config,
                                                        on_change=self.reconciler.mark_dirty)
        tasks["backend-prober"] = group.create_task(self.backend_prober.run(), name="backend-prober")
        for name, member in self.members.items():
            try:
                member.api_client = components.kube_client(member.spec)
            except Exception as exc:  # a member that cannot be loaded is reported, others go on
                member.last_error = str(exc)
                member.health = Health.UNREACHABLE
                log.error("cluster %s: %s", name, exc)
                continue
            member.watcher = components.watcher(config=self.config, spec=member.spec,
                                                api_client=member.api_client,
                                                on_change=self.on_view, on_error=self.on_watch_error)
            member.prober = components.prober(config=self.config, name=name,
                                              api_client=member.api_client, on_change=self.on_health)
            tasks[f"watch-{name}"] = group.create_task(member.watcher.run(), name=f"watch-{name}")
            tasks[f"probe-{name}"] = group.create_task(member.prober.run(), name=f"probe-{name}")
        tasks["reconcile"] = group.create_task(self.reconciler.run(), name="reconcile")
        self.reconciler.mark_dirty()
        log.info("fed-dns running: zone %s, %d members, dns %s, http %s, etcd %s",
                 self.settings.zone, len(self.members), self.config.dns.listen,
                 self.config.http.listen, ",".join(self.config.etcd.endpoints) or "off")

    async def _shutdown(self, tasks: dict[str, asyncio.Task]) -> None:
        log.info("shutting down")
        await self._close_dns()
        reconcile = tasks.pop("reconcile", None)
        if reconcile is not None:
            await self.reconciler.stop(grace=SHUTDOWN_GRACE)
            await cancel(reconcile)
        for name in [n for n in tasks if n.startswith(("watch-", "probe-", "backend-"))]:
            await cancel(tasks.pop(name))
        if self.etcd is not None and self.etcd.leader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.etcd.leader.resign(), timeout=SHUTDOWN_GRACE)
        for name in list(tasks):
            await cancel(tasks.pop(name))

    async def _close_dns(self) -> None:
        if self.dns is not None:
            await self.dns.close()
            self.dns = None
        if self.workers is not None:
            await self.workers.close()
            self.workers = None

    async def _close(self) -> None:
        await self._close_dns()
        if self.etcd is not None:
            with contextlib.suppress(Exception):
                await self.etcd.client.close()
            self.etcd = None
        if self.http is not None:
            await self.http.close()
            self.http = None
        for member in self.members.values():
            client = member.api_client
            member.api_client = None
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()


async def cancel(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
