"""The `/status` document: what an operator needs, never a credential."""

from __future__ import annotations

import time

from fed_dns.records import codec, names


def daemon_status(daemon) -> dict:
    rec = daemon.reconciler
    clusters = []
    for name, member in sorted(daemon.members.items()):
        watcher_stats = getattr(member.watcher, "stats", None)
        clusters.append({
            "name": name,
            "region": member.spec.region,
            "health": str(member.health),
            "synced": member.view.synced,
            "services": len(member.view.services),
            "last_error": member.last_error,
            "transitions": member.transitions,
            "watch": _plain(watcher_stats),
        })
    etcd = None
    if daemon.etcd is not None:
        mirror = daemon.etcd.mirror
        writer = daemon.etcd.writer
        etcd = {
            "endpoints": list(daemon.config.etcd.endpoints),
            "endpoint": getattr(mirror, "endpoint", None),  # the member the watch uses now
            "connected": bool(getattr(mirror, "connected", False)),
            "stale_seconds": float(getattr(mirror, "stale_seconds", 0.0)),
            "revision": getattr(mirror, "revision", None),
            "last_error": getattr(mirror, "last_error", None),
            "writer": {
                "endpoint": getattr(writer, "endpoint", None),
                "connected": bool(getattr(writer, "connected", False)),
                "last_error": getattr(writer, "last_error", None),
            },
            "compaction": _compaction(getattr(daemon.etcd, "compactor", None)),
        }
    leader = None
    if daemon.etcd is not None and daemon.etcd.leader is not None:
        leader = bool(daemon.etcd.leader.is_leader)
    elif daemon.etcd is not None:
        leader = True
    return {
        "zone": daemon.settings.zone,
        "owner_id": daemon.settings.owner_id,
        "identity": daemon.identity,
        "uptime_seconds": round(time.monotonic() - daemon.started, 3),
        "ready": daemon.ready(),
        "leader": leader,
        "clusters": clusters,
        "etcd": etcd,
        "api": daemon.api.url if getattr(daemon, "api", None) is not None else None,
        "placements": daemon.replicas.placements() if getattr(daemon, "replicas", None) else [],
        "records": len(rec.entries),
        "unsynced": daemon.unsynced(),
        "reconcile": {
            "dirty": rec.state.dirty,
            "steps": rec.stats.steps,
            "services_stepped": rec.stats.services_stepped,
            "longest_step_seconds": round(rec.stats.longest_step, 4),
            "last_run_duration_seconds": round(rec.stats.last_run_duration, 4),
            "resyncs": rec.stats.resyncs,
            "written_ops": rec.stats.written_ops,
            "runs": rec.stats.runs,
            "failures": rec.stats.failures,
            "writes": rec.stats.writes,
            "last_error": rec.stats.last_error,
            "failovers": rec.stats.failovers,
            "rejected": dict(rec.stats.rejected),
        },
    }


def records_table(*, entries, zone: str, prefix: str) -> list[dict]:
    """Every record as {name, type, target, ttl, cluster, owner}, sorted by name."""
    rows = []
    for key, value in sorted(entries.items()):
        try:
            record = codec.decode(value)
            name = names.key_to_name(key=key, prefix=prefix)
        except ValueError:
            continue
        if not name.endswith(zone):
            continue
        rows.append({
            "name": name,
            "target": record.host or record.text,
            "port": record.port,
            "ttl": record.ttl,
            "cluster": record.cluster,
            "owner": record.owner,
        })
    return rows


def _plain(stats) -> dict | None:
    if stats is None:
        return None
    if isinstance(stats, dict):
        return {k: v for k, v in stats.items() if isinstance(v, (int, float, str, dict))}
    fields = getattr(stats, "__dataclass_fields__", None) or {}
    out = {}
    for name in fields:
        value = getattr(stats, name)
        if isinstance(value, (int, float, str)):
            out[name] = value
        elif isinstance(value, dict):
            out[name] = {str(k): v for k, v in value.items()}
    return out


def main(args) -> int:
    """`fed-dns status` (the CLI's entry for this module)."""
    from fed_dns.app.admin import status_main

    return status_main(args)


def _compaction(compactor) -> dict | None:
    """The compactor's counters (None: etcd.compaction_interval is 0)."""
    if compactor is None:
        return None
    return {"rounds": compactor.rounds, "compactions": compactor.compactions,
            "compacted_revision": compactor.compacted, "errors": compactor.errors,
            "last_error": compactor.last_error}
