"""Small builders for views and a CoreDNS-like reader of rendered keys (tests only)."""

from __future__ import annotations

from collections.abc import Mapping

from fed_dns.model import Backend, ClusterView, Port, Record, ServiceKey, ServiceView, ZoneSettings
from fed_dns.records.names import name_to_key

ZONE = "fed.example.com."
OWNER = "fed-dns/fed.example.com."
SETTINGS = ZoneSettings(zone=ZONE)
MYSQL = ServiceKey(namespace="ns", name="mysql")
BASE = "/skydns/com/example/fed"


def backend(address: str, *ports: Port, hostname: str | None = None) -> Backend:
    return Backend(address=address, hostname=hostname, ports=ports)


def tcp(port: int, name: str = "") -> Port:
    return Port(name=name, port=port)


def service(key: ServiceKey, *backends: Backend, ready: bool = True) -> ServiceView:
    return ServiceView(key=key, backends=backends, ready=ready)


def view(cluster: str, *services: ServiceView, synced: bool = True) -> ClusterView:
    return ClusterView(cluster=cluster, synced=synced, services={s.key: s for s in services})


def leaf(host: str, port: int, cluster: str, ttl: int = 5) -> Record:
    return Record(host=host, port=port, ttl=ttl, owner=OWNER, cluster=cluster)


def answer(records: Mapping[str, Record], name: str) -> set[str]:
    """The hosts CoreDNS's etcd plugin would answer an A/CNAME-chasing query for `name` with.

    A prefix read of `<key>/`, else the exact key; a CNAME whose target is the name or below
    it is dropped as a loop; an in-zone CNAME is chased and
    kept only when the chase found something.
    """
    key = name_to_key(name=name)
    found = [r for k, r in records.items() if k.startswith(key + "/")]
    if not found and key in records:
        found = [records[key]]
    hosts: set[str] = set()
    bare = name.rstrip(".")
    for record in found:
        if record.host[:1].isdigit() or ":" in record.host:
            hosts.add(record.host)
        elif record.host == bare or record.host.endswith("." + bare):
            continue  # CoreDNS: "w.x CNAME x is a loop"
        elif record.host.endswith("." + ZONE.rstrip(".")):
            chased = answer(records, record.host + ".")
            hosts |= {f"CNAME {record.host}", *chased} if chased else set()
        else:
            hosts.add(f"CNAME {record.host}")
    return hosts
