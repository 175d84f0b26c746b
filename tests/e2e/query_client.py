"""Back-to-back A queries from a process of their own (scale_observers.QueryLoad runs it).

    python -m tests.e2e.query_client PORT TIMEOUT < names (one line, space-separated)

Prints one line per query: its round trip in seconds, `T` for a timeout, `E` for an error.
Measured apart from the benchmark's process, whose members, observers and collections held
its GIL between a reply's arrival and its reading (p50 1.7 ms, p99 5 ms with nothing else
going on), so that a latency measured is the server's and the machine's, not the bench's.
"""

from __future__ import annotations

import sys
import time

import dns.exception
import dns.message
import dns.query

LOOPBACK = "127.0.0.1"


def main() -> None:
    port, timeout = int(sys.argv[1]), float(sys.argv[2])
    names = sys.stdin.readline().split()
    queries = [dns.message.make_query(name, "A", use_edns=0, payload=4096) for name in names]
    out = sys.stdout
    i = 0
    while True:
        query = queries[i % len(queries)]
        i += 1
        start = time.perf_counter()
        try:
            dns.query.udp(query, LOOPBACK, port=port, timeout=timeout)
            line = f"{time.perf_counter() - start:.6f}\n"
        except dns.exception.Timeout:
            line = "T\n"
        except (dns.exception.DNSException, OSError):
            line = "E\n"
            time.sleep(0.01)
        try:
            out.write(line)
            out.flush()
        except (BrokenPipeError, ValueError):
            return


if __name__ == "__main__":
    main()
