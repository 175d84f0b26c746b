"""Factories that build each package's running parts from the config.

This is the one place that knows how config sections map onto server, etcd, watch and
federation objects; the daemon, `serve` and the demo share it.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

from fed_dns.model import ClusterSpec, Publish

log = logging.getLogger("fed_dns.components")


@dataclass(frozen=True, slots=True, kw_only=True)
class EtcdParts:
    """The daemon's etcd pieces; the daemon runs `mirror.run()`, `leader.run()` and
    `compactor.run()` itself."""

    client: object
    mirror: object
    writer: object
    leader: object | None = None
    compactor: object | None = None  # etcd.compactor.Compactor (etcd.compaction_interval 0: None)


def etcd_settings(config):
    from fed_dns.etcd.client import EtcdSettings

    section = config.etcd
    tls = section.tls
    password = section.password.get_secret_value() if section.password is not None else None
    return EtcdSettings(
        endpoints=tuple(section.endpoints),
        ca_file=tls.ca_file, cert_file=tls.cert_file, key_file=tls.key_file,
        username=section.username, password=password, timeout=section.timeout,
    )


def empty_table(*, settings, topology=None):
    """The daemon's table before its first reconcile run: no records (not the loading table:
    deltas are applied to it from the first run on, while DNS still answers SERVFAIL)."""
    from fed_dns.server import table

    return table.build(zone=settings.zone, entries={}, prefix=settings.prefix, topology=topology)


async def start_dns(*, config, settings):
    from fed_dns.server import dns, table

    host, port = config.dns.host, config.dns.port
    # SERVFAIL in the zone until the first reconcile run: resolvers must not cache an NXDOMAIN
    server = dns.DnsServer(
        host=host, port=port, table=table.loading(zone=settings.zone, prefix=settings.prefix),
        reuse_port=False,  # the only process answering (with workers, the daemon answers none)
        identity=f"{socket.gethostname()} worker 0 pid {os.getpid()}",
        tcp_idle_timeout=config.dns.tcp_idle_timeout,
        max_tcp_connections=config.dns.max_tcp_connections,
        max_udp_size=config.dns.max_udp_size,
        max_tcp_unsent=config.dns.max_tcp_unsent,
    )
    await server.start()
    return server


async def start_http(*, config, daemon):
    from fed_dns.app import http, metrics, status

    host, port = config.http.host, config.http.port
    registry = metrics.daemon_metrics(daemon)
    endpoint = http.HttpEndpoint(host=host, port=port, metrics=registry,
                                 token=config.http.token(),
                                 status=lambda: status.daemon_status(daemon),
                                 ready=daemon.ready,
                                 records=lambda: status.records_table(
                                     entries=daemon.reconciler.entries, zone=daemon.settings.zone,
                                     prefix=daemon.settings.prefix))
    await endpoint.start()
    return endpoint


async def start_api(*, config, members):
    """The federation API (kubectl's endpoint) when `api.enabled`, else None."""
    if not config.api.enabled:
        return None
    from fed_dns.app.api import ApiServer

    api = ApiServer(config=config, members=members)
    await api.start()
    return api


def replica_loop(*, config, api, members, may_write):
    """The federated-replica loop over the API's objects and the members that could be
    loaded (a member without a client is left out: it is unreachable anyway)."""
    from fed_dns.app.replicas import ReplicaLoop, ReplicaMember

    return ReplicaLoop(
        storage=api.storage, owner_id=config.owner_id, may_write=may_write,
        unschedulable_after=config.unschedulable_after,
        members=[ReplicaMember(name=name, api_client=m.api_client, labels=m.spec.label_map())
                 for name, m in members.items() if m.api_client is not None])


async def start_etcd(*, config, prefix: str, identity: str, on_store, on_leader) -> EtcdParts:
    """`on_store(MirrorChange)`: every batch of the zone's etcd events (the first one a full
    load); `on_leader(bool)`: leadership gained or lost."""
    from fed_dns.etcd import client as etcd_client
    from fed_dns.etcd import leader as etcd_leader
    from fed_dns.etcd import mirror as etcd_mirror
    from fed_dns.etcd import writer as etcd_writer

    settings = etcd_settings(config)
    client = await etcd_client.connect(settings)
    # A stream: the daemon's ZoneState keeps the zone (and what etcd holds of our writes in
    # flight), so a second copy in the mirror (keys and values: ~80 MB at 300,000 keys) is
    # not needed.
    mirror = etcd_mirror.ZoneMirror(settings=settings, prefix=prefix + "/", on_change=on_store,
                                    keep=False)
    elector = None
    owner = config.zone_settings().owner_id
    if config.leader_election.enabled:
        elector = etcd_leader.LeaderElector(
            client=client, key=f"/fed-dns/{owner}/leader", identity=identity,
            ttl=config.leader_election.lease_ttl, on_change=on_leader)
    writer = etcd_writer.Writer(client=client, fence=elector.fence if elector else None,
                                max_ops=config.etcd.max_txn_ops,
                                concurrency=config.etcd.write_concurrency,
                                # a write whose outcome is unknown (a member that hung) must not
                                # land later over a newer one: every txn checks this token
                                epoch_key=f"/fed-dns/{owner}/writer-epoch")
    compactor = None
    if config.etcd.compaction_interval:
        from fed_dns.etcd import compactor as etcd_compactor

        compactor = etcd_compactor.Compactor(client=client, interval=config.etcd.compaction_interval,
                                             timeout=settings.timeout)
    return EtcdParts(client=client, mirror=mirror, writer=writer, leader=elector, compactor=compactor)


def topology(*, config, members: tuple[ClusterSpec, ...]):
    """The DNS answer-order settings: `topology` section, member regions and weights."""
    from fed_dns.server.topology import Topology

    section = config.topology
    return Topology(
        mode=str(section.mode),
        subnets=tuple((str(net), region) for net, region in section.networks()),
        trust_ecs=bool(section.trust_ecs),
        clusters=tuple((m.name, m.region) for m in members if m.region),
        weights=tuple((m.name, m.weight) for m in members if m.weight != 1))


async def dns_workers(*, config, settings, topology=None):
    """The worker processes that answer DNS (started and listening), or None when the daemon
    answers itself (`dns.workers` 0, or `auto` on one CPU)."""
    count = config.dns.worker_processes
    if count == 0:
        return None
    from fed_dns.app import logs
    from fed_dns.app.workers import WorkerPool, WorkerSettings

    log_format, log_level = logs.current()
    pool = WorkerPool(count=count, settings=WorkerSettings(
        zone=settings.zone, prefix=settings.prefix, host=config.dns.host, port=config.dns.port,
        tcp_idle_timeout=config.dns.tcp_idle_timeout,
        max_tcp_connections=config.dns.max_tcp_connections,
        max_udp_size=config.dns.max_udp_size, max_tcp_unsent=config.dns.max_tcp_unsent,
        log_format=log_format, log_level=log_level, topology=topology))
    try:
        await pool.start()
    except BaseException:
        await pool.close()
        raise
    return pool


def prewarm_kube() -> None:
    """The kubernetes client's lazily loaded API modules, loaded now (see watch.stream)."""
    from fed_dns.watch import stream

    stream.prewarm()


def kube_client(spec: ClusterSpec):
    from fed_dns.watch import kubeconfig

    return kubeconfig.load(spec)


def watch_options(config):
    from fed_dns.watch.parse import WatchOptions

    return WatchOptions(
        publish=Publish(config.publish),
        export_all=config.export == "all",
        include=tuple(config.namespaces.include),
        exclude=tuple(config.namespaces.exclude),
        inactivity_timeout=config.watch.inactivity_timeout,
        backoff_max=config.watch.backoff_max,
    )


def watcher(*, config, spec: ClusterSpec, api_client, on_change, on_error):
    from fed_dns.watch.cluster import ClusterWatcher

    return ClusterWatcher(spec=spec, api_client=api_client, options=watch_options(config),
                          on_change=on_change, on_error=on_error)


def thresholds(config):
    from fed_dns.federation.health import Thresholds

    return Thresholds(failure=config.health.failure_threshold,
                      success=config.health.success_threshold)


def prober(*, config, name: str, api_client, on_change):
    from fed_dns.federation.prober import ClusterProber

    return ClusterProber(name=name, api_client=api_client, period=config.health.period,
                         timeout=config.health.timeout, thresholds=thresholds(config),
                         on_change=on_change)


def backend_prober(*, config, on_change):
    from fed_dns.federation.prober import BackendProber

    return BackendProber(period=config.health.period, timeout=config.health.timeout,
                         thresholds=thresholds(config), on_change=on_change)
