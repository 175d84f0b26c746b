"""`fed-dns status` and `fed-dns records`: read-only views of a running daemon or of etcd."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.error
import urllib.request

from fed_dns.app import status as status_doc


def fetch(url: str, path: str, *, token_file: str | None = None) -> object:
    request = urllib.request.Request(url.rstrip("/") + path)
    if token_file:
        with open(token_file, encoding="utf-8") as f:
            request.add_header("Authorization", f"Bearer {f.readline().strip()}")
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.load(resp)


def daemon_unreachable(url: str, exc: Exception) -> int:
    print(f"fed-dns: cannot reach the daemon at {url} ({exc}); is `fed-dns run` running? "
          "(--url sets its HTTP endpoint)", file=sys.stderr)
    return 1


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def status_main(args) -> int:
    try:
        doc = fetch(args.url, "/status", token_file=getattr(args, "token_file", None))
    except (OSError, urllib.error.URLError, ValueError) as exc:
        return daemon_unreachable(args.url, exc)
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
        return 0
    etcd = doc.get("etcd")
    print(f"zone {doc['zone']}  owner {doc['owner_id']}  ready {doc['ready']}  leader {doc['leader']}")
    if etcd:
        print(f"etcd {','.join(etcd['endpoints'])}  connected {etcd['connected']}  "
              f"stale {etcd['stale_seconds']:.1f}s  revision {etcd['revision']}")
    else:
        print("etcd off (records live in the DNS table only)")
    rows = [["CLUSTER", "HEALTH", "SYNCED", "SERVICES", "LAST ERROR"]]
    for c in doc["clusters"]:
        rows.append([c["name"], c["health"], str(c["synced"]), str(c["services"]), c["last_error"] or "-"])
    print_table(rows)
    rec = doc["reconcile"]
    print(f"records {doc['records']}  reconcile runs {rec['runs']} failures {rec['failures']} "
          f"writes {rec['writes']} failovers {rec['failovers']}"
          + (f"  last error: {rec['last_error']}" if rec["last_error"] else ""))
    placements = doc.get("placements") or []
    if placements:
        print_table(placement_rows(placements))
    else:
        print("federated workloads: none")
    return 0


def placement_rows(placements: list[dict]) -> list[list[str]]:
    """The table of federated replicas: one row per workload and member (a workload that
    cannot be planned: one row with its error), then its conflicts."""
    rows = [["WORKLOAD", "CLUSTER", "DESIRED", "REPLICAS", "READY", "REASON"]]
    for p in placements:
        workload = f"{p.get('kind', '')}/{p.get('namespace', '')}/{p.get('name', '')}"
        if p.get("error"):
            rows.append([workload, "-", "-", "-", "-", f"error: {p['error']}"])
        for c in p.get("clusters") or ():
            rows.append([workload, str(c.get("cluster", "")), str(c.get("desired", "")),
                         str(c.get("replicas", "")), str(c.get("ready", "")),
                         str(c.get("reason", "")) or "-"])
        for cluster in p.get("conflicts") or ():  # its object there is not fed-dns's
            rows.append([workload, str(cluster), "-", "-", "-",
                         "Conflict: an object of that name not managed by fed-dns"])
        for text in p.get("dependent_conflicts") or ():
            rows.append([workload, "-", "-", "-", "-", f"Conflict: {text}"])
    return rows


def records_main(args) -> int:
    if args.etcd:
        if not args.zone:
            print("fed-dns records: --etcd needs --zone", file=sys.stderr)
            return 2
        try:
            rows = asyncio.run(_records_from_etcd(args))
        except ValueError as exc:
            print(f"fed-dns records: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # noqa: BLE001 - etcd unreachable: one readable line
            print(f"fed-dns records: cannot read etcd: {exc}", file=sys.stderr)
            return 1
    else:
        try:
            rows = fetch(args.url, "/records", token_file=getattr(args, "token_file", None))
        except (OSError, urllib.error.URLError, ValueError) as exc:
            return daemon_unreachable(args.url, exc)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [["NAME", "TARGET", "PORT", "TTL", "CLUSTER"]]
    for row in rows:
        table.append([row["name"], row["target"], str(row["port"]), str(row["ttl"]), row["cluster"] or "-"])
    print_table(table)
    return 0


async def _records_from_etcd(args) -> list[dict]:
    from fed_dns.etcd.client import EtcdSettings, connect
    from fed_dns.etcd.store import EtcdStore
    from fed_dns.records import names

    zone = names.normalize_zone(args.zone)
    settings = EtcdSettings(endpoints=tuple(e.strip() for e in args.etcd.split(",")))
    client = await connect(settings)
    try:
        store = EtcdStore(client=client, settings=settings)
        entries = await store.read(prefix=names.name_to_key(name=zone, prefix=args.prefix) + "/")
    finally:
        await client.close()
    return status_doc.records_table(entries=entries, zone=zone, prefix=args.prefix)
