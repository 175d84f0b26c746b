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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fed_dns.app import runtime
from fed_dns.app.components import EtcdParts
from fed_dns.app.reconcile import Reconciler
from fed_dns.federation import targets
from fed_dns.model import Changes, ClusterSpec, ClusterView, Health, ServiceKey, ServiceView
from fed_dns.records import names

log = logging.getLogger("fed_dns.daemon")

SHUTDOWN_GRACE = 5.0
WATCH_HOLD = 10.0  # seconds a restart may hold member watches back while etcd's records load
WATCH_POLL = 0.05


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
    since: str = ""  # RFC 3339: when `health` last changed
    created: str = ""  # RFC 3339: when the daemon started watching it
    joined: bool = False  # from a Cluster object of the federation API (else from config)


class Daemon:
    """The daemon for one config. `await serve(stop=event)` runs until the event is set."""

    def __init__(self, *, config, members: tuple[ClusterSpec, ...] | None = None) -> None:
        from fed_dns.records.incremental import ZoneState

        self.config = config
        self.settings = config.zone_settings()
        specs = members if members is not None else config.cluster_specs()
        self.members: dict[str, Member] = {
            s.name: Member(spec=s, view=ClusterView(cluster=s.name), created=rfc3339()) for s in specs
        }
        self.zone_prefix = names.name_to_key(name=self.settings.zone, prefix=self.settings.prefix)
        self.identity = f"{socket.gethostname()}-{os.getpid()}"
        self.started = time.monotonic()
        self.dns = None
        self.workers = None  # app.workers.WorkerPool: the DNS processes (None: self.dns answers)
        self.topology = None  # server.topology.Topology: answer order by region and weight
        self.http = None
        self.api = None  # app.api.ApiServer: the federation API (kubectl), when api.enabled
        self.replicas = None  # app.replicas.ReplicaLoop: federated replicas, with the API
        self.joins = None  # app.joins.JoinLoop: Cluster objects of the API -> members
        self._group: asyncio.TaskGroup | None = None  # the TaskGroup of serve(), once started
        self._tasks: dict[str, asyncio.Task] = {}
        self.etcd: EtcdParts | None = None
        self.backend_prober = None
        self.table = None  # server.table.ZoneTable: what self.dns answers from once settled
        self.state = ZoneState(settings=self.settings)
        self._ready = False  # latched by ready()
        self._live = False  # latched by _publish: DNS answers from the live table
        self._freezer = runtime.Freezer()  # gc.freeze() every 1,000 changed keys
        self._drained_mark: int | None = None  # reconcile drains counted when all was answerable
        self._workers_mark: int | None = None  # deltas published when all was answerable
        self._grace: asyncio.TimerHandle | None = None  # a run once watch.sync_grace is over
        for name, member in self.members.items():
            self.state.set_health(name, member.health)
        self.reconciler = Reconciler(
            state=self.state,
            publish=self._publish,
            write=self._write,
            may_write=self._may_write,
            chunk=config.reconcile.chunk,
            slice_seconds=config.reconcile.slice,
            resync_period=config.reconcile.resync_period,
        )

    # -- outputs of the reconcile loop ---------------------------------------------------------

    def _publish(self, puts: Mapping[str, bytes], deletes: Iterable[str]) -> None:
        """A table delta, O(delta). With DNS workers it is queued for them (they answer, the
        daemon keeps no table); otherwise applied to the daemon's table at once. DNS answers
        from that table once the daemon is settled and the table holds what that settles:
        etcd's records all in it, and every Service marked so far stepped (until then SERVFAIL
        in the zone). Settling comes first: at a restart etcd's load settles every member at
        once, while its 300,000 records still go into the table a chunk per step, and at a
        start the members' lists are in seconds before the first pass has stepped their
        5,000 Services; going live then answered NXDOMAIN for most names for seconds (a
        worker went live with 27,000 of 300,000 records after a restart, 9,960 at a start).
        Once live, it stays live."""
        from fed_dns.server import table

        deletes = tuple(deletes)
        if not self._live:
            self._live = self.settled() and not self.state.seed_pending and not self.state.has_work
        live = self._live
        if self.workers is not None:
            self.workers.publish(puts=puts, deletes=deletes, live=live)
            self._freezer.changed(len(puts) + len(deletes))  # the state's new objects
        elif puts or deletes:
            with self._freezer.applying(len(puts) + len(deletes)):
                self.table = table.update(previous=self.table, puts=puts, deletes=deletes)
        if self.dns is not None and live and self.dns.table is not self.table:
            self.dns.swap(self.table)

    def _answering(self) -> bool:
        """DNS answers from the daemon's live records: the workers' tables or its own."""
        if not self.settled():
            return False
        if self.workers is not None:
            return self.workers.answering()
        return self.dns is not None and self.dns.table is self.table

    def _may_write(self) -> bool:
        if self.etcd is None:
            return False
        if not self.etcd.mirror.loaded:  # plan against what etcd holds, never against nothing
            return False
        if self.etcd.leader is not None and not self.etcd.leader.is_leader:
            return False
        return True

    def _may_write_members(self) -> bool:
        """Member Deployments are written by the leader (any replica without etcd)."""
        if self.etcd is None or self.etcd.leader is None:
            return True
        return self.etcd.leader.is_leader

    async def _write(self, changes: Changes) -> None:
        await self.etcd.writer.apply(changes)

    # -- events ------------------------------------------------------------------------------

    def on_view(self, view: ClusterView, changed: frozenset[ServiceKey]) -> None:
        member = self.members.get(view.cluster)
        if member is None:  # it left (a joined member)
            return
        member.view = view
        self.state.set_view(view, changed=changed)
        if self.backend_prober is not None:
            for key in changed:
                service = view.services.get(key)
                self.backend_prober.update_targets(
                    cluster=view.cluster, service=key,
                    targets=targets.of_service(cluster=view.cluster, view=service)
                    if service is not None else {})
        self.reconciler.mark_dirty()

    def on_probes(self, changed: Mapping) -> None:
        self.state.set_probes(changed)
        self.reconciler.mark_dirty()

    def on_store(self, change) -> None:
        """An etcd mirror batch (our own writes echoed back included)."""
        if change.reload:
            self.state.load_current(change.puts)
            runtime.release_free_memory()  # the load's pages, freed on gRPC's threads' arenas
        else:
            self.state.update_current(puts=change.puts, deletes=change.deletes)
        self.reconciler.mark_dirty()

    def on_leader(self, leader: bool) -> None:
        if self.replicas is not None:
            self.replicas.on_leader(leader)
        if leader:  # write what this replica only planned while it followed
            self.reconciler.became_leader()
        else:
            self.reconciler.mark_dirty()

    def on_watch_error(self, cluster: str, message: str) -> None:
        member = self.members.get(cluster)
        if member is None:
            return
        member.last_error = message
        if member.prober is not None:
            member.prober.poke()
        if not member.view.synced:  # it no longer holds the table back (see settled)
            self.reconciler.mark_dirty()

    def on_health(self, cluster: str, health: Health) -> None:
        member = self.members.get(cluster)
        if member is None:  # it left (a joined member)
            return
        if self.replicas is not None:
            self.replicas.on_health(cluster, health)
        if member.health != health:  # the prober logs the change, with the probe's error
            member.health = health
            member.since = rfc3339()
            member.transitions += 1
            self.state.set_health(cluster, health)
            self.reconciler.mark_dirty()

    # -- lifecycle ---------------------------------------------------------------------------

    def settled(self) -> bool:
        """Whether the table can answer for the whole zone: for every member, etcd holds its
        last records (kept while it is `unknown`), or it is declared unreachable, or it is
        ready and its lists are in, have failed (a member that refuses or breaks its lists
        is not waited for), or still are not after `watch.sync_grace` (one stuck member must
        not keep the zone from answering). Until then the server answers SERVFAIL in the
        zone, never an NXDOMAIN a resolver would cache: a ready member still listing has
        none of its names in the table (this once answered NXDOMAIN for them, at a restart
        for the seconds before etcd's records were loaded)."""
        if any(m.health is Health.UNKNOWN and not self._held(name)
               for name, m in self.members.items() if not m.joined):
            return False
        return self._grace_left() <= 0 or all(self.members[n].last_error for n in self.unanswered())

    def _grace_left(self) -> float:
        """Seconds until `watch.sync_grace` is over (counted from the start)."""
        return self.config.watch.sync_grace - (time.monotonic() - self.started)

    def ready(self) -> bool:
        """Whether this replica answers DNS correctly: listening, its table live, every
        member's records in it (the member synced, declared unreachable, or its last records
        loaded from etcd), and the reconcile has carried that into the table. A member that
        still has not synced after `watch.sync_grace` no longer holds readiness: it is reported
        in /status and metrics, and the others' records are served (one stuck member must not
        take every replica out of DNS service). Once ready, a replica stays ready while it
        serves its live table."""
        if not self._answering():
            return False  # DNS does not answer from the daemon's live records yet
        if self._ready:
            return True
        if self.unanswered() and self._grace_left() > 0:
            return False
        stats = self.reconciler.stats
        if self._drained_mark is None:
            self._drained_mark = stats.drained
        # Everything marked so far is in the table: nothing dirty now, or a run has drained
        # the queue since (under steady churn the queue is rarely empty when asked); or etcd
        # holds every member's records and the table holds etcd's (a restart: the pass over
        # every Service then changes only what differs).
        if self.state.has_work and stats.drained <= self._drained_mark and not self._etcd_served():
            return False
        if self.workers is not None:  # and the workers have applied what was published so far
            if self._workers_mark is None:
                self._workers_mark = self.workers.published
            if not self.workers.applied_through(self._workers_mark):
                return False
        self._ready = True
        log.info("ready: DNS answers from the live records of every member (%.2fs after start)",
                 time.monotonic() - self.started)
        return True

    def _etcd_loaded(self) -> bool:
        return self.etcd is not None and getattr(self.etcd.mirror, "loaded", False)

    def _held(self, name: str) -> bool:
        """Whether etcd, loaded, holds records of member `name` (its last published ones)."""
        return self._etcd_loaded() and self.state.holds(name)

    def _etcd_served(self) -> bool:
        """Whether the table holds etcd's records of every member (the restart seed is out)."""
        seeded = self.state.seeded
        return self._etcd_loaded() and not self.state.seed_pending and all(
            n in seeded for n, m in self.members.items() if not m.joined)

    def unanswered(self) -> list[str]:
        """Config members whose records the table cannot hold yet: not synced, not declared
        unreachable, and no records of theirs in etcd."""
        return [n for n in self.unsynced() if not self.members[n].joined and not self._held(n)]

    def cluster_states(self) -> list:
        """The members as the federation API's Cluster kind shows them."""
        from fed_dns.apiserver.clusters import ClusterState

        states = []
        for name, m in sorted(self.members.items()):
            host = getattr(getattr(m.api_client, "configuration", None), "host", "") or ""
            states.append(ClusterState(name=name, server=host, region=m.spec.region or "",
                                       zone=m.spec.zone_label or "", health=str(m.health),
                                       synced=bool(m.view.synced), since=m.since or m.created,
                                       message=self._why(m) if m.health is not Health.READY or not m.view.synced else "",
                                       created=m.created, joined=m.joined))
        return states

    @staticmethod
    def _why(member: Member) -> str:
        """Why a member is not ready: its last watch error, else its last probe's."""
        probe = getattr(member.prober, "last_error", None)
        return member.last_error or probe or ""

    def unsynced(self) -> list[str]:
        """Members neither synced nor declared unreachable."""
        return sorted(n for n, m in self.members.items()
                      if not m.view.synced and m.health is not Health.UNREACHABLE)

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

        if self.members:  # before etcd and the lease: not in the middle of the members' lists
            components.prewarm_kube()
        self.topology = components.topology(config=self.config,
                                            members=tuple(m.spec for m in self.members.values()))
        self.workers = await components.dns_workers(config=self.config, settings=self.settings,
                                                    topology=self.topology)
        if self.workers is None:  # the daemon answers DNS itself
            self.table = components.empty_table(settings=self.settings, topology=self.topology)
            self.dns = await components.start_dns(config=self.config, settings=self.settings)
        elif self.config.dns.control_nice:  # the workers started at our priority: now below them
            threads = runtime.lower_priority(by=self.config.dns.control_nice)
            log.info("control work at nice +%d (%d threads), the DNS workers' queries first",
                     self.config.dns.control_nice, threads)
        self.http = await components.start_http(config=self.config, daemon=self)
        self.api = await components.start_api(config=self.config, members=self.cluster_states)
        if self.config.etcd.endpoints:
            self.etcd = await components.start_etcd(
                config=self.config, prefix=self.zone_prefix, identity=self.identity,
                on_store=self.on_store, on_leader=self.on_leader)
            tasks["etcd-mirror"] = group.create_task(self.etcd.mirror.run(), name="etcd-mirror")
            if self.etcd.leader is not None:
                tasks["etcd-leader"] = group.create_task(self.etcd.leader.run(), name="etcd-leader")
            if self.etcd.compactor is not None:
                tasks["etcd-compactor"] = group.create_task(self.etcd.compactor.run(),
                                                            name="etcd-compactor")
        self.backend_prober = components.backend_prober(config=self.config,
                                                        on_change=self.on_probes)
        tasks["backend-prober"] = group.create_task(self.backend_prober.run(), name="backend-prober")
        self._group, self._tasks = group, tasks
        for name, member in self.members.items():
            try:
                member.api_client = components.kube_client(member.spec)
            except Exception as exc:  # a member that cannot be loaded is reported, others go on
                member.last_error = str(exc)
                member.health = Health.UNREACHABLE
                self.state.set_health(name, Health.UNREACHABLE)
                log.error("cluster %s: %s", name, exc)
                continue
            self._run_member(member)
        if self.api is not None:
            self.replicas = components.replica_loop(config=self.config, api=self.api,
                                                    members=self.members,
                                                    may_write=self._may_write_members)
            tasks["replicas"] = group.create_task(self.replicas.run(), name="replicas")
            from fed_dns.app.joins import JoinLoop

            self.joins = JoinLoop(storage=self.api.storage, add=self.add_member,
                                  remove=self.remove_member, states=self.cluster_states,
                                  may_write=self._may_write_members)
            tasks["joins"] = group.create_task(self.joins.run(), name="joins")
        tasks["reconcile"] = group.create_task(self.reconciler.run(), name="reconcile")
        self.reconciler.mark_dirty()
        # A member still listing stops holding the table back after the grace: a run then
        # publishes (and makes live) what is there, whatever else happens meanwhile.
        self._grace = asyncio.get_running_loop().call_later(max(0.0, self._grace_left()),
                                                            self.reconciler.mark_dirty)
        log.info("fed-dns running: zone %s, %d members, dns %s, http %s, etcd %s",
                 self.settings.zone, len(self.members), self.config.dns.listen,
                 self.config.http.listen, ",".join(self.config.etcd.endpoints) or "off")

    def _run_member(self, member: Member) -> None:
        """Start a member's watcher and prober (its api_client is set)."""
        from fed_dns.app import components

        name = member.spec.name
        member.watcher = components.watcher(config=self.config, spec=member.spec,
                                            api_client=member.api_client,
                                            on_change=self.on_view, on_error=self.on_watch_error)
        member.prober = components.prober(config=self.config, name=name,
                                          api_client=member.api_client, on_change=self.on_health)
        self._tasks[f"watch-{name}"] = self._group.create_task(self._watch(member),
                                                               name=f"watch-{name}")
        self._tasks[f"probe-{name}"] = self._group.create_task(member.prober.run(),
                                                               name=f"probe-{name}")

    async def _watch(self, member: Member) -> None:
        """A member's watch, started once etcd's records are loaded (at most WATCH_HOLD s
        after start; at once without etcd): its first plan is then made against what etcd
        holds, and rewrites nothing that is already there. The watch no longer waits for the
        loaded records to be in the table: DNS goes live only once every member has settled
        and the table holds all of it (`_publish`), so nothing is answered from a part of it,
        and the list (the heaviest part of a start) runs while the seed goes out (restart at
        10 x 5,000: 9.5 -> 8.3 s).
        Changes made while the daemon was down come with the list."""
        name = member.spec.name
        while self.etcd is not None and time.monotonic() - self.started < WATCH_HOLD:
            if self._etcd_loaded():
                break
            await asyncio.sleep(WATCH_POLL)
        if self._held(name):
            log.info("cluster %s: watching, after etcd's records of it are loaded (%.2fs)",
                     name, time.monotonic() - self.started)
        await member.watcher.run()

    # -- members joining and leaving at runtime (Cluster objects of the API: app.joins) ---

    def add_member(self, spec: ClusterSpec, *, api_client) -> None:
        """A member joins while the daemon runs: its watches and probes start now; its
        records are published once it is ready and synced; the replica loop may place
        workloads there. The daemon owns `api_client` from now on (closed when it leaves).
        ValueError for a name already a member."""
        if self._group is None:
            raise RuntimeError("the daemon is not running")
        if spec.name in self.members:
            raise ValueError(f"cluster {spec.name!r} is already a member")
        member = Member(spec=spec, view=ClusterView(cluster=spec.name), created=rfc3339(),
                        api_client=api_client, joined=True)
        self.members[spec.name] = member
        self.state.set_health(spec.name, member.health)
        self._run_member(member)
        if self.replicas is not None:
            from fed_dns.app.replicas import ReplicaMember

            self.replicas.add_member(ReplicaMember(name=spec.name, api_client=api_client,
                                                   labels=spec.label_map()))
        log.info("cluster %s joined (%s)", spec.name,
                 getattr(getattr(api_client, "configuration", None), "host", "") or "-")

    async def remove_member(self, name: str) -> None:
        """A joined member leaves: its watches and probes stop, its records go to the
        fallback CNAMEs (its backends are withdrawn, its cluster-local names point at the
        global ones), its backends are no longer probed and the replica loop plans its
        workloads without it. Config members never leave."""
        member = self.members.get(name)
        if member is None or not member.joined:
            return
        for task in (self._tasks.pop(f"watch-{name}", None), self._tasks.pop(f"probe-{name}", None)):
            if task is not None:
                await cancel(task)
        del self.members[name]
        if self.replicas is not None:
            self.replicas.remove_member(name)
        if self.backend_prober is not None:
            for key in member.view.services:
                self.backend_prober.update_targets(cluster=name, service=key, targets={})
        # Its records go to the fallback (naming.md), as a dead member's do: each of its
        # Services' keys holds the CNAME to the global name, so a client of the cluster-local
        # name keeps resolving. No backend of it stays, not even for serve-all: the cluster
        # is gone, not down. (A restart no longer knows it and deletes those keys.)
        self.state.set_view(ClusterView(cluster=name, synced=True, services={
            key: ServiceView(key=key, ready=False) for key in member.view.services}), changed=None)
        self.state.set_health(name, Health.UNREACHABLE)
        self.reconciler.mark_dirty()
        client, member.api_client = member.api_client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        log.info("cluster %s left", name)

    async def _shutdown(self, tasks: dict[str, asyncio.Task]) -> None:
        log.info("shutting down")
        if self._grace is not None:
            self._grace.cancel()
        await self._close_dns()
        reconcile = tasks.pop("reconcile", None)
        if reconcile is not None:
            await self.reconciler.stop(grace=SHUTDOWN_GRACE)
            await cancel(reconcile)
        joins = tasks.pop("joins", None)
        if joins is not None:  # no member joins or leaves while the others stop
            await cancel(joins)
        for name in [n for n in tasks if n.startswith(("watch-", "probe-", "backend-"))]:
            await cancel(tasks.pop(name))
        if self.etcd is not None and self.etcd.leader is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(SHUTDOWN_GRACE):  # not wait_for (3.11)
                    await self.etcd.leader.resign()
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
        if self.api is not None:
            with contextlib.suppress(Exception):
                await self.api.close()
            self.api = None
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


def rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


async def cancel(task: asyncio.Task, *, patience: float = SHUTDOWN_GRACE) -> None:
    """Cancel a task and wait for it, cancelling again while it goes on (on Python 3.11 an
    `asyncio.wait_for` inside a library can swallow a cancel that comes just as its call
    finishes); past `patience` it is left behind, logged, so shutdown always ends."""
    deadline = time.monotonic() + patience
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
        if not task.done() and time.monotonic() > deadline:
            log.error("task %s did not stop within %.0fs; leaving it", task.get_name(), patience)
            return
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
