"""Server-level answer-order settings: client subnets -> regions, cluster regions and weights.

`Topology` is small, frozen and picklable (worker processes get it at start). Regions are
numbered 1..R in `regions` order; 0 is "no region" (a client in no configured subnet, or
topology off), which gets the plain (weighted) rotation. `Clients` maps a client address to
its region number through a bounded cache, so a query costs one dict lookup.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cached_property

OFF, ORDER, LOCAL_FIRST = "off", "order", "local-first"
MODES = (OFF, ORDER, LOCAL_FIRST)
MAX_CLIENTS = 65_536  # cached client addresses; the cache starts over past it


@dataclass(frozen=True, kw_only=True)
class Topology:
    """`subnets`: (CIDR, region), most specific first (the first match wins). `clusters`:
    (cluster, region) for clusters with a region. `weights`: (cluster, weight) for clusters
    whose weight is not 1."""

    mode: str = OFF
    subnets: tuple[tuple[str, str], ...] = ()
    trust_ecs: bool = False
    clusters: tuple[tuple[str, str], ...] = ()
    weights: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"topology mode {self.mode!r} is not one of {MODES}")

    @cached_property
    def regions(self) -> tuple[str, ...]:
        """The regions clients can be in, numbered from 1 in this order."""
        return tuple(sorted({region for _, region in self.subnets}))

    @cached_property
    def active(self) -> bool:
        """Whether the client's region can change an answer (queries need their source)."""
        return self.mode != OFF and bool(self.subnets)

    @cached_property
    def networks(self) -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int], ...]:
        number = {region: i + 1 for i, region in enumerate(self.regions)}
        return tuple((ipaddress.ip_network(cidr), number[region]) for cidr, region in self.subnets)

    @cached_property
    def region_of(self) -> dict[str, str]:
        """cluster -> region."""
        return dict(self.clusters)

    @cached_property
    def weight_of(self) -> dict[str, int]:
        """cluster -> weight, for the clusters whose weight is not 1."""
        return {c: w for c, w in self.weights if w != 1}


OFF_TOPOLOGY = Topology()


def client_region(topology: Topology, address: bytes | str) -> int:
    """The region number of a client address (packed 4 or 16 bytes, or text); 0 for none."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return 0
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for net, number in topology.networks:
        if ip.version == net.version and ip in net:
            return number
    return 0


def ecs_address(*, family: int, prefix: int, address: bytes) -> bytes | None:
    """The packed address of an EDNS Client Subnet option (RFC 7871: family 1 IPv4, 2 IPv6;
    the address holds only the prefix's bytes); None when malformed."""
    size = {1: 4, 2: 16}.get(family)
    if size is None or prefix > size * 8 or len(address) != (prefix + 7) // 8:
        return None
    return address + bytes(size - len(address))


class Clients:
    """Client address -> region number, cached (bounded). Used by one thread at a time."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.known: dict = {}

    def region(self, address: bytes | str) -> int:
        found = self.known.get(address)
        if found is None:
            if len(self.known) >= MAX_CLIENTS:
                self.known.clear()
            found = self.known[address] = client_region(self.topology, address)
        return found
