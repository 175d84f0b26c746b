"""The baseline for bench/dns_qps.py: a naive DNS server that parses every query and builds
every answer with dnslib (what fed-dns's precompiled answers avoid). A records only.

    python bench/naive_dns.py --etcd URL --zone fed.example.com. --port 5354
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import dnslib
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support import EtcdKV  # noqa: E402


def read_zone(etcd_url: str, prefix: str) -> dict[str, list[str]]:
    """name -> addresses, every value at or below each name (as the etcd plugin reads)."""
    zone: dict[str, list[str]] = {}
    for key, value in EtcdKV(etcd_url).items(prefix).items():
        host = value["host"]
        labels = key.removeprefix("/skydns/").split("/")[::-1]
        for i in range(len(labels)):
            zone.setdefault(".".join(labels[i:]) + ".", []).append(host)
    return zone


class Naive(asyncio.DatagramProtocol):
    def __init__(self, zone: dict[str, list[str]]) -> None:
        self.zone = zone

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            q = dnslib.DNSRecord.parse(data)
        except Exception:  # noqa: BLE001
            return
        reply = q.reply()
        name = str(q.q.qname).lower()
        for ip in self.zone.get(name, ()) if q.q.qtype == dnslib.QTYPE.A else ():
            reply.add_answer(dnslib.RR(q.q.qname, dnslib.QTYPE.A, ttl=5, rdata=dnslib.A(ip)))
        if name not in self.zone:
            reply.header.rcode = dnslib.RCODE.NXDOMAIN
        self.transport.sendto(reply.pack(), addr)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--etcd", required=True)
    p.add_argument("--zone", required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    zone = read_zone(args.etcd, "/skydns/")
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: Naive(zone), local_addr=("127.0.0.1", args.port))
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main())
