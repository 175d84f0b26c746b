"""etcd write and load throughput of the Writer and the paginated read (run by hand; JSON).

    .venv/bin/python bench/etcd_write.py [--keys 300000] [--concurrency 1,4,8]
                                         [--max-ops 128] [--page-sizes auto,1000,5000]

For each concurrency, on a fresh etcd of its own (tests/support.py; loopback, its data dir in
/tmp): one fenced `Writer.apply` of N puts (SkyDNS records as the daemon writes them, ~130
bytes a key and value), then a paginated read of the whole prefix for each page size ("auto": the default, pages of
about 2 MiB), then
one apply of the N deletes. Prints ops/s and the writer process's CPU seconds (when the CPU
time is close to the wall time, Python is the limit, not etcd). etcd shares the machine's
cores with this process: read the numbers as such.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fed_dns.etcd import ranges  # noqa: E402
from fed_dns.etcd.client import EtcdSettings, connect  # noqa: E402
from fed_dns.etcd.writer import Writer  # noqa: E402
from fed_dns.model import Changes  # noqa: E402
from tests.support import running_etcd  # noqa: E402

PREFIX = "/skydns/com/example/fed/"


def zone(count: int) -> dict[str, bytes]:
    """10 members x count/10 Services, one endpoint record each, as the daemon names them."""
    out = {}
    for i in range(count):
        member, svc = i % 10, i // 10
        key = f"{PREFIX}ns{svc % 50}/svc{svc}/c{member}/{i:08x}"
        out[key] = json.dumps({"host": f"10.{member}.{(svc >> 8) & 255}.{svc & 255}",
                               "ttl": 30}).encode()
    return out


async def timed(coro) -> tuple[float, float]:
    wall, cpu = time.monotonic(), time.process_time()
    await coro
    return time.monotonic() - wall, time.process_time() - cpu


async def one(url: str, *, records: dict[str, bytes], concurrency: int, max_ops: int,
              page_sizes: list[int | None]) -> dict:
    client = await connect(EtcdSettings(endpoints=(url,), timeout=10.0))
    try:
        fence_key = b"/bench/leader"
        writer = Writer(client=client, max_ops=max_ops, concurrency=concurrency, timeout=30.0,
                        fence=lambda: client.transactions.version(fence_key) == 0)
        put_wall, put_cpu = await timed(writer.apply(Changes(puts=records)))
        loads = {}
        for size in page_sizes:
            start, cpu = time.monotonic(), time.process_time()
            loaded = await ranges.read_prefix(client, prefix=PREFIX.encode(), timeout=30.0,
                                              page_size=size)
            assert len(loaded.data) == len(records)
            loads[str(size or "auto")] = {"seconds": round(time.monotonic() - start, 2),
                                "cpu_seconds": round(time.process_time() - cpu, 2),
                                "pages": loaded.pages}
        del_wall, del_cpu = await timed(writer.apply(Changes(deletes=tuple(records))))
        assert (await client.get_prefix(PREFIX.encode())).kvs == []
        n = len(records)
        return {"concurrency": concurrency, "max_ops": max_ops, "transactions": writer.transactions,
                "puts": {"seconds": round(put_wall, 2), "ops_per_second": round(n / put_wall),
                         "cpu_seconds": round(put_cpu, 2)},
                "deletes": {"seconds": round(del_wall, 2), "ops_per_second": round(n / del_wall),
                            "cpu_seconds": round(del_cpu, 2)},
                "load": loads}
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=300_000)
    parser.add_argument("--concurrency", default="1,4,8")
    parser.add_argument("--max-ops", type=int, default=128)
    parser.add_argument("--page-sizes", default="auto,1000,5000")
    args = parser.parse_args()
    records = zone(args.keys)
    size = sum(len(k) + len(v) for k, v in records.items())
    results = []
    for concurrency in (int(c) for c in args.concurrency.split(",")):
        with running_etcd() as etcd:
            results.append(asyncio.run(one(
                etcd.url, records=records, concurrency=concurrency, max_ops=args.max_ops,
                page_sizes=[None if p == "auto" else int(p)
                            for p in args.page_sizes.split(",")])))
        print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({"keys": args.keys, "bytes": size, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
