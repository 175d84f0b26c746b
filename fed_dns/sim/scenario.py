"""Ready-made contents for simulated clusters (demo, tests, benchmarks)."""

from __future__ import annotations

from fed_dns.sim import objects

EXPORT = {"fed-dns.io/export": "true"}


def seed_mysql(cluster, *, index: int, namespace: str = "ns", ready: int = 2) -> None:
    """Namespace `ns`, an exported Service `mysql` (port "mysql" 3306) and an EndpointSlice
    with two endpoints 10.<index>.0.1 and 10.<index>.0.2, the first `ready` of them ready.
    The addresses are DNS data only: nothing ever connects to them."""
    ports = [("mysql", 3306)]
    cluster.apply(objects.namespace(name=namespace))
    cluster.apply(objects.service(name="mysql", namespace=namespace, ports=ports,
                                  cluster_ip=f"10.{100 + index % 100}.0.10", annotations=EXPORT))
    cluster.apply(objects.endpoint_slice(
        service="mysql", namespace=namespace,
        endpoints=[(f"10.{index}.0.{n}", n <= ready, None) for n in (1, 2)], ports=ports))


def many_addresses(*, index: int, n: int, endpoints: int = 3) -> list[str]:
    """The addresses `seed_many` gives Service svc-<n> of member `index` (distinct per
    Service up to 16,000 Services x 4 endpoints)."""
    base = n * endpoints
    return [f"10.{index % 256}.{(base + e) // 250 % 256}.{(base + e) % 250 + 1}" for e in range(endpoints)]


def many_slice(*, service: int, addresses: list[str], namespace: str = "bench") -> dict:
    """The EndpointSlice of svc-<service> (as `seed_many` writes it) with these ready addresses."""
    return objects.endpoint_slice(service=f"svc-{service}", namespace=namespace, ports=[("http", 8080)],
                                  endpoints=[(address, True, None) for address in addresses])


def seed_many(cluster, *, index: int, services: int, endpoints: int = 3,
              namespace: str = "bench") -> None:
    """`services` exported Services svc-<n> with one EndpointSlice of `endpoints` ready
    addresses each (`many_addresses`: 10.<index>.<...>, distinct per Service)."""
    cluster.apply(objects.namespace(name=namespace))
    for n in range(services):
        name = f"svc-{n}"
        cluster.apply(objects.service(name=name, namespace=namespace, ports=[("http", 80)],
                                      annotations=EXPORT))
        cluster.apply(many_slice(service=n, namespace=namespace,
                                 addresses=many_addresses(index=index, n=n, endpoints=endpoints)))
