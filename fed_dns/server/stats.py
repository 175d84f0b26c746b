"""Plain counters, cheap enough for the hot path; the app publishes them off it.

Shapes match fed_dns.app.metrics' sources: `requests` maps (protocol, type, rcode) -> n,
`dropped` maps (protocol, reason) -> n, `durations` maps (protocol,) -> (bucket counts by
upper bound in seconds, sum of seconds).
"""

from __future__ import annotations

import bisect
import math

from fed_dns.server import resolve as rs
from fed_dns.server.table import KNOWN_TYPES, RCODES

LATENCY_BOUNDS_US = (10, 25, 50, 100, 250, 500, 1000, 2500, 10000)  # then +Inf
_TYPE_NAMES = {rs.T_A: "A", rs.T_AAAA: "AAAA", rs.T_SRV: "SRV", rs.T_TXT: "TXT",
               rs.T_CNAME: "CNAME", rs.T_MX: "MX", rs.T_NS: "NS", rs.T_SOA: "SOA",
               rs.T_ANY: "ANY"}
_ROWS = (*(_TYPE_NAMES[t] for t in KNOWN_TYPES), "OTHER")
_RCODE_NAMES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "OTHER")
SLOTS = len(_ROWS) * RCODES
PROTOCOLS = ("udp", "tcp")


class Histogram:
    """Microsecond latencies in fixed buckets: every request (a UDP batch's requests observed
    together, each with the batch's time)."""

    __slots__ = ("counts", "sum_us")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BOUNDS_US) + 1)
        self.sum_us = 0.0

    def observe_us(self, micros: float, n: int = 1) -> None:
        """`n` requests that each took `micros`."""
        self.counts[bisect.bisect_left(LATENCY_BOUNDS_US, micros)] += n
        self.sum_us += micros * n

    def seconds(self) -> tuple[dict[float, int], float]:
        bounds = (*(b / 1e6 for b in LATENCY_BOUNDS_US), math.inf)
        return dict(zip(bounds, self.counts)), self.sum_us / 1e6


class Stats:
    """Answers by protocol, qtype and rcode; drops by reason; TCP; latency."""

    def __init__(self) -> None:
        self.slots = {p: [0] * SLOTS for p in PROTOCOLS}  # by table.stat_slot(qtype, rcode)
        # protocol -> reason -> n; one dict per protocol, each written by one thread only
        self.drops: dict[str, dict[str, int]] = {p: {} for p in PROTOCOLS}
        self.truncated = 0
        self.errors = 0  # internal errors (each cost one answer)
        self.tcp_connections = 0  # accepted, in all
        self.tcp_open = 0
        self.tcp_idle_closed = 0  # no complete query within the idle timeout
        self.tcp_evicted = 0  # the least recently active, closed to admit a new one (cap full)
        self.tcp_unread_closed = 0  # unsent answers past the bound: a client that does not read
        self.latency = {p: Histogram() for p in PROTOCOLS}
        self.table_swaps = 0

    def drop(self, protocol: str, reason: str) -> None:
        d = self.drops[protocol]
        d[reason] = d.get(reason, 0) + 1

    @property
    def requests(self) -> dict[tuple[str, str, str], int]:
        out = {}
        for proto, slots in self.slots.items():
            for i, n in enumerate(slots):
                if n:
                    out[(proto, _ROWS[i // RCODES], _RCODE_NAMES[i % RCODES])] = n
        return out

    @property
    def dropped(self) -> dict[tuple[str, str], int]:
        return {(p, reason): n for p, d in self.drops.items() for reason, n in list(d.items())}

    @property
    def malformed(self) -> int:
        return sum(d.get("malformed", 0) for d in self.drops.values())

    @property
    def durations(self) -> dict[tuple[str], tuple[dict[float, int], float]]:
        return {(p, ): h.seconds() for p, h in self.latency.items()}

    def answered(self) -> int:
        return sum(sum(s) for s in self.slots.values())

    def snapshot(self) -> dict:
        """A JSON-able copy for status pages and the benchmark."""
        return {
            "requests": {"/".join(k): n for k, n in self.requests.items()},
            "dropped": {"/".join(k): n for k, n in self.dropped.items()},
            "truncated": self.truncated,
            "errors": self.errors,
            "tcp": {"connections": self.tcp_connections, "open": self.tcp_open,
                    "idle_closed": self.tcp_idle_closed, "evicted": self.tcp_evicted,
                    "unread_closed": self.tcp_unread_closed},
            "latency_us": {"bounds": list(LATENCY_BOUNDS_US),
                           **{p: list(h.counts) for p, h in self.latency.items()}},
            "table_swaps": self.table_swaps,
        }
