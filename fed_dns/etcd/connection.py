"""ClusterClient: an aetcd client for an etcd cluster, connected to one member at a time.

aetcd's client talks to one host. A ClusterClient is an aetcd.Client that knows every
endpoint of `EtcdSettings.endpoints` and owns "the current connection": when a call fails
for a reason that says the member is away (unreachable, no answer in time, no raft leader,
its token refused), the channel is closed and the next call dials the next endpoint in turn.
A dial proves the member answers and knows a raft leader (a member cut off from the raft
majority loses its leader within an election timeout), so a minority member is passed over.

Every aetcd method (`get`, `put`, `transaction`, `lease`, `refresh_lease`, ...) goes through
this: aetcd calls our `connect()` before each call, and the methods are wrapped to report
their failures. Code that uses the stubs directly (`ranges`, the mirror's watch and probe)
reports a failure with `failed(generation, reason)`; `call(fn, ..., timeout=)` runs a call
under a deadline of the caller's and counts running out of it as a failure too.

A call that only ran out of time is not enough to leave a member: under load (a busy
daemon, a CPU-starved etcd) a big transaction may take longer than the deadline while the
member is fine, and moving closes the channel under every other user (the leader lease's
keepalive among them: a move there costs the leadership). So a timeout starts one check,
a linearizable read with a deadline of its own: the client moves only when that fails too
(a hung or cut-off member answers neither).

Several users share one ClusterClient. `generation` counts dials, and a failure reported for
a channel that is no longer current is ignored: one broken member causes one move, not one
per call in flight. Error texts name the endpoint, never the password.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aetcd
import aetcd.exceptions
import grpc
from aetcd import rpc, watcher

from fed_dns.etcd.client import (
    Endpoint, EtcdError, EtcdSettings, EtcdUnreachable, credentials, describe, parse_endpoint,
    scrub)
from fed_dns.etcd.ranges import RECEIVE_LIMIT

log = logging.getLogger(__name__)

T = TypeVar("T")

# gRPC codes after which another member may do better. etcd answers UNAVAILABLE for "no
# leader", "request timed out" and "leader changed"; UNAUTHENTICATED for an expired token
# (a new dial authenticates again).
MOVE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                        grpc.StatusCode.UNAUTHENTICATED})

# Every error a call on a member can end with that is not a bug of ours.
ERRORS = (aetcd.ClientError, grpc.RpcError, grpc.aio.BaseError, OSError, TimeoutError, EtcdError)


def moves_away(exc: BaseException) -> bool:
    """Whether an error from a call on a member says to use another member."""
    if isinstance(exc, (aetcd.ConnectionFailedError, aetcd.ConnectionTimeoutError,
                        aetcd.exceptions.UnauthenticatedError, TimeoutError, OSError, EtcdError,
                        grpc.aio.UsageError)):
        return True
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code() in MOVE_CODES
    return False


def timed_out(exc: BaseException) -> bool:
    """Whether an error says only that a call ran out of time."""
    if isinstance(exc, (TimeoutError, aetcd.ConnectionTimeoutError)):
        return True
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def usable(status: rpc.StatusResponse) -> str | None:
    """Why a member that answered Status must not be used (None: use it)."""
    if not status.leader:
        return "no raft leader (cut off from the majority, or electing)"
    return None


class ClusterClient(aetcd.Client):
    def __init__(self, *, settings: EtcdSettings) -> None:
        self.settings = settings
        self.endpoints: tuple[Endpoint, ...] = tuple(parse_endpoint(u) for u in settings.endpoints)
        first = self.endpoints[0]
        super().__init__(host=first.host, port=first.port, username=settings.username,
                         password=settings.password, timeout=settings.timeout,
                         connect_wait_timeout=settings.timeout,
                         options={"grpc.max_receive_message_length": RECEIVE_LIMIT})
        self._index = 0
        self._dial_lock = asyncio.Lock()
        self._closing: set[asyncio.Task] = set()
        self.generation = 0  # channels opened so far; the current one's number
        self.failovers = 0  # channels given up on after a failure
        self.timeouts_kept = 0  # timeouts after which the member answered the check: kept
        self.timed_out_call = ""  # the last call that ran out of time (logged with the check)
        self._checking: asyncio.Task | None = None
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"<ClusterClient {self.endpoint} connected={self.connected}>"

    # -- state ---------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The endpoint in use (when not connected: the one the next dial tries first)."""
        return str(self.endpoints[self._index])

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # -- connecting ----------------------------------------------------------------------

    async def connect(self) -> None:
        """Connected to a member that answers and knows a leader: the current one, else the
        first of the others, in turn, that does. EtcdUnreachable (an aetcd
        ConnectionFailedError too) naming every endpoint tried when none does."""
        if self._connected.is_set():
            return
        async with self._dial_lock:
            if self._connected.is_set():
                return
            problems = []
            for step in range(len(self.endpoints)):
                index = (self._index + step) % len(self.endpoints)
                endpoint = self.endpoints[index]
                try:
                    await self._open(endpoint)
                except (*ERRORS, asyncio.TimeoutError) as exc:
                    problems.append(f"{endpoint}: {self._reason(exc)}")
                    continue
                if index != self._index or self.generation:
                    log.info("etcd: using %s", endpoint)
                self._index = index
                self.generation += 1
                self.last_error = None
                self._connected.set()
                return
            self.last_error = "etcd unreachable: " + "; ".join(problems)
            raise EtcdUnreachable(self.last_error)

    async def _open(self, endpoint: Endpoint) -> None:
        """A channel to `endpoint`, authenticated, its stubs set, proven by a Status call."""
        target = endpoint.target
        options = self._options.items()
        if endpoint.tls or self.settings.ca_file:
            channel = rpc.secure_channel(target, credentials(self.settings), options=options)
        else:
            channel = rpc.insecure_channel(target, options=options)
        timeout = self.settings.timeout
        try:
            metadata = None
            if self._username is not None:
                reply = await rpc.AuthStub(channel).Authenticate(
                    rpc.AuthenticateRequest(name=self._username, password=self._password),
                    timeout=timeout)
                metadata = (("token", reply.token),)
            maintenance = rpc.MaintenanceStub(channel)
            status = await maintenance.Status(rpc.StatusRequest(), timeout=timeout,
                                              metadata=metadata)
            problem = usable(status)
            if problem is not None:
                raise EtcdError(problem)
        except BaseException:
            await _close_channel(channel, None)
            raise
        self._host, self._port = endpoint.host, endpoint.port
        self.channel, self.metadata, self.maintenancestub = channel, metadata, maintenance
        self.auth_stub = rpc.AuthStub(channel)
        self.kvstub = rpc.KVStub(channel)
        self.clusterstub = rpc.ClusterStub(channel)
        self.leasestub = rpc.LeaseStub(channel)
        self._watcher = watcher.Watcher(rpc.WatchStub(channel), timeout=timeout,
                                        metadata=metadata)

    # -- failing over --------------------------------------------------------------------

    def failed(self, generation: int, reason: BaseException | str) -> bool:
        """The channel numbered `generation` failed for `reason`: when it is still the
        current one, close it and make the next call dial the next endpoint. A reason that
        is only a timeout first checks the member (see the module's doc). True when this
        moved the client; False when it had moved already, was not connected, or a check
        decides."""
        if generation != self.generation or not self._connected.is_set():
            return False
        if not isinstance(reason, str) and timed_out(reason):
            if self._checking is None or self._checking.done():
                self._checking = asyncio.get_running_loop().create_task(
                    self._check(generation, reason), name="etcd-check")
            return False
        return self._move(generation, reason)

    async def _check(self, generation: int, reason: BaseException) -> None:
        """After a timeout on channel `generation`: keep it if the member serves a
        linearizable read within the deadline (it has a raft quorum and answers), else move."""
        try:
            await self.kvstub.Range(rpc.RangeRequest(key=b"\0", count_only=True),
                                    timeout=self.settings.timeout, metadata=self.metadata)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in MOVE_CODES:
                self._move(generation, reason)
                return
        except Exception:  # noqa: BLE001 - a closed channel, a dead transport: move
            self._move(generation, reason)
            return
        if generation == self.generation:
            self.timeouts_kept += 1
            log.info("etcd %s: a call (%s) ran out of time (%s) but the member answers: staying",
                     self.endpoint, self.timed_out_call, self._reason(reason))

    def _move(self, generation: int, reason: BaseException | str) -> bool:
        if generation != self.generation or not self._connected.is_set():
            return False
        endpoint = self.endpoint
        text = reason if isinstance(reason, str) else self._reason(reason)
        self.last_error = f"{endpoint}: {text}"
        self.failovers += 1
        log.warning("etcd %s failed (%s): moving to the next endpoint", endpoint, text)
        self._connected.clear()
        self._index = (self._index + 1) % len(self.endpoints)
        # The old stubs stay until the next dial: a user between two calls gets an error
        # from the closed channel, not a None.
        task = asyncio.get_running_loop().create_task(_close_channel(self.channel, self._watcher))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        return True

    async def call(self, fn: Callable[..., Awaitable[T]], /, *args, timeout: float,
                   **kwargs) -> T:
        """`await fn(*args, **kwargs)` (a call on this client) within `timeout` seconds;
        running out of time or failing as in `moves_away` moves to the next endpoint."""
        generation = self.generation
        try:
            async with asyncio.timeout(timeout):  # not wait_for (3.11)
                return await fn(*args, **kwargs)
        except BaseException as exc:
            if isinstance(exc, Exception) and timed_out(exc):
                self.timed_out_call = getattr(fn, "__qualname__", None) or repr(fn)  # for the log
            self._report(generation, exc)
            raise

    def _report(self, generation: int, exc: BaseException) -> None:
        """A call on channel `generation` ended with `exc`: a failure that says the member
        is away is reported (`failed`); a cancellation is checked (`_closed_under`)."""
        if isinstance(exc, asyncio.CancelledError):
            self._closed_under(generation)
        elif isinstance(exc, Exception) and moves_away(exc):
            self.failed(generation, exc)

    def _closed_under(self, generation: int) -> None:
        """A CancelledError out of a call: grpc.aio cancels the calls in flight on a channel
        being closed, and the caller's task gets that cancellation though nobody cancelled
        it. When the channel was ours and we moved off it, raise a connection error instead
        (the caller retries); a real cancellation of the task goes on."""
        task = asyncio.current_task()
        if generation != self.generation or not self._connected.is_set():
            if task is not None and not task.cancelling():
                raise aetcd.ConnectionFailedError(
                    "the channel was closed: moving to another endpoint") from None

    async def close(self) -> None:
        self._connected.clear()
        if self._checking is not None:
            self._checking.cancel()
            await asyncio.gather(self._checking, return_exceptions=True)
        channel, watch, self._watcher = self.channel, self._watcher, None
        self._init_channel_attrs()
        await _close_channel(channel, watch)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _reason(self, exc: BaseException) -> str:
        return scrub(describe(exc, timeout=self.settings.timeout),
                     secrets=(self.settings.password,))


def _reporting(name: str):
    """aetcd.Client.<name>, reporting a failure that says to move to another member."""
    method = getattr(aetcd.Client, name)

    @functools.wraps(method)
    async def wrapper(self: ClusterClient, *args, **kwargs):
        await self.connect()
        generation = self.generation
        try:
            return await method(self, *args, **kwargs)
        except BaseException as exc:
            self._report(generation, exc)
            raise

    return wrapper


for _name in ("get", "get_prefix", "get_range", "get_all", "put", "delete", "delete_prefix",
              "delete_range", "replace", "transaction", "lease", "revoke_lease",
              "refresh_lease", "get_lease_info", "status", "members", "compact",
              "watch", "watch_prefix", "watch_once", "watch_prefix_once"):
    setattr(ClusterClient, _name, _reporting(_name))


async def call(client: aetcd.Client, fn: Callable[..., Awaitable[T]], /, *args, timeout: float,
               **kwargs) -> T:
    """`client.call(...)` on a ClusterClient; on any other client, the call within
    `timeout`."""
    if isinstance(client, ClusterClient):
        return await client.call(fn, *args, timeout=timeout, **kwargs)
    async with asyncio.timeout(timeout):  # not wait_for (3.11)
        return await fn(*args, **kwargs)


async def _close_channel(channel, watch: watcher.Watcher | None) -> None:
    """Close a channel that may be broken or hung (its server stopped): never blocks long."""
    try:
        if watch is not None:
            async with asyncio.timeout(1.0):  # not wait_for (3.11)
                await watch.shutdown()
    except Exception:  # noqa: BLE001 - the stream is usually broken already
        pass
    try:
        if channel is not None:
            async with asyncio.timeout(1.0):  # not wait_for (3.11)
                await channel.close()
    except Exception:  # noqa: BLE001 - closing a broken channel may complain
        pass
