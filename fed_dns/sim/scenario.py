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


def seed_many(cluster, *, index: int, services: int, endpoints: int = 3,
              namespace: str = "bench") -> None:
    """`services` exported Services svc-<n> with one EndpointSlice of `endpoints` ready
    addresses each (10.<index>.<n // 250>.<n % 250 + 1>-ish, distinct per Service)."""
    cluster.apply(objects.namespace(name=namespace))
    for n in range(services):
        name = f"svc-{n}"
        cluster.apply(objects.service(name=name, namespace=namespace, ports=[("http", 80)],
                                      annotations=EXPORT))
        base = n * endpoints
        cluster.apply(objects.endpoint_slice(
            service=name, namespace=namespace, ports=[("http", 8080)],
            endpoints=[(f"10.{index % 256}.{(base + e) // 250 % 256}.{(base + e) % 250 + 1}",
                        True, None) for e in range(endpoints)]))
