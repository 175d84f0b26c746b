"""Batched UDP receive and send with Linux recvmmsg(2)/sendmmsg(2) through ctypes.

`Batch(sock, ...)` preallocates everything once: an array of `struct mmsghdr` for receiving
(each with one iovec into its own slot of a receive buffer and its own sockaddr storage) and
one for sending (each with one iovec into its own slot of a send buffer). Then per
`exchange(reply)`: recvmmsg blocks until at least one datagram is there (MSG_WAITFORONE:
then it takes what else is queued, up to the batch size, without waiting); each datagram
goes through `reply(data) -> bytes | None`; each response is copied into the send buffer,
its send entry pointing at the raw sockaddr its query came from (no Python address objects);
one sendmmsg sends them all (`send()`).

The GIL: a blocking call must release it, and taking it back after waits for whatever other
thread holds it (up to `sys.getswitchinterval()`, longer when that thread waits for a CPU).
So only the blocking receive (nothing queued) releases it: the send, and a receive of what is
already queued, are first tried non-blocking (MSG_DONTWAIT) with the GIL held (`PyDLL`), and
only a send that finds no room in the socket's buffer waits for it without the GIL. In a DNS
worker applying a failover's delta, a query used to wait for the GIL twice (after its read
and after its answer's send); it waits once.

Fields are read and written through integer memoryviews over the structs' bytes, not ctypes
attribute access (cheaper per message). `available()` says whether the calls exist and work
here (Linux, libc found, a probe on a socketpair round-trips); callers fall back otherwise.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import socket
import sys
import time

MSG_WAITFORONE = 0x10000
MSG_DONTWAIT = 0x40
_WOULD_BLOCK = (errno.EAGAIN, errno.EWOULDBLOCK)
_clock = time.perf_counter_ns

# struct msghdr (LP64): name ptr @0, namelen u32 @8, iov ptr @16, iovlen @24, control @32,
# controllen @40, flags i32 @48; struct mmsghdr adds msg_len u32 @56; sizeof 64.
_MMSG = 64
_IOV = 16  # struct iovec: base ptr @0, len @8
_NAME = {socket.AF_INET: 16, socket.AF_INET6: 28}  # what the kernel writes back per family
_NAME_SLOT = 128  # sizeof(struct sockaddr_storage)

_libc = None


def _load():
    global _libc
    if _libc is None:
        if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8:
            raise OSError("recvmmsg/sendmmsg: 64-bit Linux only")
        path = ctypes.util.find_library("c") or "libc.so.6"
        released = ctypes.CDLL(path, use_errno=True)  # the GIL released during calls
        held = ctypes.PyDLL(path, use_errno=True)  # the GIL kept: non-blocking calls only
        for lib in (released, held):
            lib.recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_void_p]
            lib.recvmmsg.restype = ctypes.c_int
            lib.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
            lib.sendmmsg.restype = ctypes.c_int
        _libc = (released, held)
    return _libc


def _address(buf: bytearray) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


def _headers(count: int, *, slot: int, data: bytearray, names: bytearray | None,
             namelen: int) -> tuple[bytearray, bytearray]:
    """`count` mmsghdr, entry i with one iovec on data[i*slot:(i+1)*slot] and name slot i."""
    hdrs, iovs = bytearray(count * _MMSG), bytearray(count * _IOV)
    q, iq = memoryview(hdrs).cast("Q"), memoryview(iovs).cast("Q")
    base, iov_base = _address(data), _address(iovs)
    name_base = _address(names) if names is not None else 0
    for i in range(count):
        iq[2 * i], iq[2 * i + 1] = base + i * slot, slot
        h = i * _MMSG // 8
        q[h] = name_base + i * _NAME_SLOT if names is not None else 0
        q[h + 1] = namelen  # namelen (u32) and the padding after it
        q[h + 2], q[h + 3] = iov_base + i * _IOV, 1
    return hdrs, iovs


class Batch:
    """recvmmsg/sendmmsg on one UDP socket, `size` datagrams at a time (see the module doc)."""

    def __init__(self, sock: socket.socket, *, size: int = 64, recv_slot: int = 4096,
                 send_slot: int = 4096) -> None:
        released, held = _load()
        self._recv, self._send = released.recvmmsg, released.sendmmsg
        self._recv_held, self._send_held = held.recvmmsg, held.sendmmsg
        self.sock = sock
        self.fd = sock.fileno()
        self.size = size
        self.recv_slot = recv_slot
        self.send_slot = send_slot
        namelen = _NAME.get(sock.family, _NAME_SLOT) if sock.family != socket.AF_UNIX else 0
        self._names = bytearray(size * _NAME_SLOT) if namelen else None
        self._rbuf = bytearray(size * recv_slot)
        self._sbuf = bytearray(size * send_slot)
        self._rhdrs, self._riovs = _headers(size, slot=recv_slot, data=self._rbuf,
                                            names=self._names, namelen=namelen)
        self._shdrs, self._siovs = _headers(size, slot=send_slot, data=self._sbuf,
                                            names=self._names, namelen=namelen)
        self._rptr = _address(self._rhdrs)
        self._sptr = _address(self._shdrs)
        self._rlen = memoryview(self._rhdrs).cast("I")  # msg_len of entry i: [16 * i + 14]
        self._sq = memoryview(self._shdrs).cast("Q")  # msg_name of entry j: [8 * j]
        self._siq = memoryview(self._siovs).cast("Q")  # iov_len of entry j: [2 * j + 1]
        self._rview = memoryview(self._rbuf)
        self._sview = memoryview(self._sbuf)
        self._name0 = _address(self._names) if self._names is not None else 0
        self._nview = memoryview(self._names) if self._names is not None else memoryview(b"")
        # the address in the sockaddr: sockaddr_in bytes 4..8, sockaddr_in6 bytes 8..24
        self._addr = {socket.AF_INET: (4, 8), socket.AF_INET6: (8, 24)}.get(sock.family, (0, 0))
        self.elapsed_ns = 0  # the last exchange's time from its datagrams read to answers sent
        self.waited = 0  # sends that found the socket's buffer full and waited for room

    def recv(self) -> int:
        """Datagrams received (>= 1): those already queued with the GIL held, else blocking
        for the first without it (on a blocking socket). Raises OSError (EINTR, EAGAIN on a
        non-blocking socket with nothing there, ...)."""
        n = self._recv_held(self.fd, self._rptr, self.size, MSG_DONTWAIT, None)
        if n > 0:
            return n
        if ctypes.get_errno() in _WOULD_BLOCK:
            n = self._recv(self.fd, self._rptr, self.size, MSG_WAITFORONE, None)
        if n < 0:
            e = ctypes.get_errno()
            raise OSError(e, errno.errorcode.get(e, str(e)))
        return n

    def send(self, total: int) -> None:
        """Send the first `total` send entries, with the GIL held while the socket's buffer
        has room, else waiting for room without it. A message the kernel refuses (an
        unreachable address, ...) is skipped, like a failed sendto."""
        done, send, flags = 0, self._send_held, MSG_DONTWAIT
        while done < total:
            n = send(self.fd, self._sptr + done * _MMSG, total - done, flags)
            if n >= 0:
                done += n
                continue
            e = ctypes.get_errno()
            if e in _WOULD_BLOCK and send is self._send_held:
                send, flags = self._send, 0  # no room: wait for it, the GIL released
                self.waited += 1
            elif e != errno.EINTR:
                done += 1  # skip the one that failed

    def exchange(self, reply, *, source: bool = False) -> int:
        """One round: recv() (blocking), `reply(data) -> bytes | None` for each datagram
        (cut at `recv_slot` bytes, like recvfrom), the responses sent in one send(). Returns
        the datagrams received. This is the server's hot loop: locals, no attribute access
        per datagram. A response longer than `send_slot` is dropped (callers size it).
        `source=True`: `reply(data, address)` instead, `address` the sender's packed IP (4 or
        16 bytes, read from the raw sockaddr; b"" for other families). `elapsed_ns` is then
        the time from the datagrams read (recv returned) to their answers sent."""
        n = self.recv()
        began = _clock()
        rview, rlen, rslot = self._rview, self._rlen, self.recv_slot
        sview, siq, sq, sslot = self._sview, self._siq, self._sq, self.send_slot
        name0, j = self._name0, 0
        nview, (off, stop) = self._nview, self._addr
        for i in range(n):
            start = i * rslot
            data = bytes(rview[start:start + rlen[16 * i + 14]])  # <= rslot
            if source:
                at = i * _NAME_SLOT
                response = reply(data, bytes(nview[at + off:at + stop]))
            else:
                response = reply(data)
            if response is not None:
                size = len(response)
                if size <= sslot:
                    start = j * sslot
                    sview[start:start + size] = response
                    siq[2 * j + 1] = size
                    sq[8 * j] = name0 + i * _NAME_SLOT
                    j += 1
        if j:
            self.send(j)
        self.elapsed_ns = _clock() - began
        return n


def available() -> bool:
    """recvmmsg and sendmmsg work here: two datagrams round-trip through exchange() on a
    socketpair (no network, nothing of the server's touched)."""
    try:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    except OSError:
        return False
    with a, b:
        try:
            b.setblocking(False)  # a broken probe fails with EAGAIN, never hangs
            a.settimeout(1)
            echo = Batch(b, size=4, recv_slot=64, send_slot=64)
            a.send(b"probe-1")
            a.send(b"probe-22")
            got = 0
            while got < 2:
                got += echo.exchange(lambda data: data[::-1])
            return [a.recv(64), a.recv(64)] == [b"1-eborp", b"22-eborp"]
        except (OSError, AttributeError, ValueError):
            return False
