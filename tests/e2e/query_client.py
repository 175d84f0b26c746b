"""A-query load at a steady rate from a process of its own (scale_observers.QueryLoad runs it).

    python -m tests.e2e.query_client PORT TIMEOUT QPS < names (one line, space-separated)

One query in flight at a time, sent every 1/QPS s (at once when the answer came later than
that; QPS 0: back to back). Prints one line per query: its round trip in seconds, `T` for a
timeout, `E` for a socket error, `B` for an answer that is not a NOERROR answer to it.

The round trip is the time from the send to the answer's arrival (what a resolver waits),
as dnsperf measures it: the answer is checked after that. Every answer's header and question
are checked on the bytes (ID, QR, opcode, RCODE, TC, one question equal to ours, at least
one answer record) and one in `FULL_CHECK` is parsed whole with dnspython (`is_response`, an
A RRset for the name). A whole parse of a merged name's answer (30 A records) takes dnspython
1.7 ms on a 2-vCPU machine: inside the timed window it was most of a quiet round trip (p50
2.4-2.9 ms where the server took under 0.1 ms), and parsing every answer kept a CPU of the
machine busy beside the daemon it measured.

Each round trip is printed twice: to the moment this process read the answer, and to the
answer's arrival in this machine's kernel (SO_TIMESTAMPNS, Linux; omitted where the socket
gives no timestamp). On a 2-vCPU machine shared by the daemon, etcd, the members and this
client, the first includes this client's own wait for a CPU after the answer came; the
second is what a resolver on a CPU of its own would see (the server's and the network's
time), since the clock is read just before the send.

Measured apart from the benchmark's process, whose members, observers and collections held
its GIL between a reply's arrival and its reading, so that a latency measured is the
server's and the machine's, not the bench's.
"""

from __future__ import annotations

import random
import socket
import struct
import sys
import time

import dns.message
import dns.rdataclass
import dns.rdatatype

LOOPBACK = "127.0.0.1"
FULL_CHECK = 25  # one answer in this many is parsed whole
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; SCM_TIMESTAMPNS is the same number
_TIMESPEC = struct.Struct("@qq")  # struct timespec on a 64-bit Linux
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0


def check(query: bytes, answer: bytes) -> bool:
    """`answer` is a NOERROR answer to `query` (one question, equal to the query's; not
    truncated; at least one answer record), read on the header's bytes."""
    if len(answer) < 12 or answer[:2] != query[:2]:
        return False
    flags, rcode = answer[2], answer[3] & 0x0F
    if not flags & 0x80 or flags & 0x78 or flags & 0x02 or rcode:  # QR, opcode QUERY, not TC
        return False
    if answer[4:6] != b"\x00\x01" or answer[6:8] == b"\x00\x00":
        return False
    end = query.index(0, 12) + 5  # the question: its name's end, type and class
    return answer[12:end].lower() == query[12:end].lower()


def a_addresses(answer: bytes) -> set[str]:
    """The addresses of the A records in `answer`'s answer section, read on its bytes (as
    `{rr.to_text() for A rrsets in reply.answer}` would, at a small fraction of dnspython's
    cost); ValueError for bytes that end early."""
    try:
        questions, records = struct.unpack_from("!HH", answer, 4)
        pos = 12
        for _ in range(questions):
            pos = _past_name(answer, pos) + 4
        out = set()
        for _ in range(records):
            pos = _past_name(answer, pos)
            rtype, _, _, length = struct.unpack_from("!HHIH", answer, pos)
            pos += 10
            if rtype == 1 and length == 4 and pos + 4 <= len(answer):
                out.add(socket.inet_ntoa(answer[pos:pos + 4]))
            pos += length
        if pos > len(answer):
            raise ValueError("the answer ends inside a record")
        return out
    except (IndexError, struct.error) as exc:
        raise ValueError(f"the answer ends early: {exc}") from None


def _past_name(wire: bytes, pos: int) -> int:
    """The offset just past the (possibly compressed) name at `pos`."""
    while True:
        length = wire[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += length + 1


def full_check(query: dns.message.Message, answer: bytes) -> bool:
    response = dns.message.from_wire(answer)
    return query.is_response(response) and response.rcode() == 0 and bool(
        response.get_rrset(response.answer, query.question[0].name, dns.rdataclass.IN, dns.rdatatype.A))


def _with_id(query: dns.message.Message, ident: int) -> dns.message.Message:
    query.id = ident
    return query


def main() -> None:
    port, timeout, qps = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    names = sys.stdin.readline().split()
    queries = [dns.message.make_query(name, "A", use_edns=0, payload=4096) for name in names]
    wires = [q.to_wire() for q in queries]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((LOOPBACK, port))
    stamp_arrivals(sock)
    out = sys.stdout
    gap = 1.0 / qps if qps > 0 else 0.0
    due = time.perf_counter()
    ident = random.randrange(1 << 16)
    i = 0
    while True:
        index = i % len(wires)
        i += 1
        ident = (ident + 1) & 0xFFFF
        wire = ident.to_bytes(2, "big") + wires[index][2:]
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        due = max(due + gap, time.perf_counter() - gap)  # no burst after a slow answer
        result = exchange(sock, wire, timeout)
        if isinstance(result, str):
            line = result
        elif not check(wire, result[0]):
            line = "B\n"
        elif i % FULL_CHECK == 0 and not full_check(_with_id(queries[index], ident), result[0]):
            line = "B\n"
        elif result[2] is None:
            line = f"{result[1]:.6f}\n"
        else:
            line = f"{result[1]:.6f} {result[2]:.6f}\n"
        try:
            out.write(line)
            out.flush()
        except (BrokenPipeError, ValueError):
            return


def stamp_arrivals(sock: socket.socket) -> bool:
    """Ask the kernel to stamp each datagram `sock` receives with its arrival time (read by
    `exchange`); False where it cannot (not Linux)."""
    if not _ANCILLARY:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def arrival(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The kernel's arrival time (ns, CLOCK_REALTIME) in a datagram's ancillary data; None
    when it has none."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return seconds * 1_000_000_000 + nanoseconds
    return None


def exchange(sock: socket.socket, wire: bytes, timeout: float) -> tuple | str:
    """Send `wire` and wait for the answer with its ID (a late answer to an earlier query is
    skipped): (answer bytes, seconds until read, seconds until its arrival in the kernel or
    None without a timestamp: see `stamp_arrivals`), or "T\\n" / "E\\n"."""
    start = time.perf_counter()
    sent_ns = time.time_ns()
    deadline = start + timeout
    try:
        sock.send(wire)
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                return "T\n"
            sock.settimeout(left)
            answer, ancillary, _, _ = sock.recvmsg(65535, _ANCILLARY)
            if answer[:2] == wire[:2]:
                read = time.perf_counter() - start
                arrived = arrival(ancillary)
                return answer, read, None if arrived is None else max(arrived - sent_ns, 0) / 1e9
    except TimeoutError:
        return "T\n"
    except OSError:
        time.sleep(0.01)
        return "E\n"


if __name__ == "__main__":
    main()
