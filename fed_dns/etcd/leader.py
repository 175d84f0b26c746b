"""LeaderElector: one leader among fed-dns replicas, through an etcd lease.

Campaign: grant a lease, then in one transaction create `key` (value: our identity, attached
to the lease) if it does not exist. The winner keeps the lease alive; everyone else watches
the key and campaigns again as soon as it is deleted (resign, lease expiry). The leader's
writes carry `fence()`: "the key still has the create revision we made it with", so a
deposed leader's transaction fails in etcd even if it still thinks it leads.

The leader steps down on its own when it has not been able to refresh its lease for 2/3 of
the TTL (etcd unreachable), so it stops acting before another replica can take over.

The client is a `connection.ClusterClient`: a lease refresh that fails, or gets no answer
within TTL/6, moves it to the next etcd member and is tried again there at once (the lease
is the cluster's, any member refreshes it), so a dead or hung member costs a leader a
fraction of its TTL, not its leadership.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

import aetcd
from aetcd import transactions

from fed_dns.etcd.backoff import Backoff, check_cancelled
from fed_dns.etcd.connection import ERRORS as _ERRORS
from fed_dns.etcd.connection import call

log = logging.getLogger(__name__)


class LeaderElector:
    def __init__(self, *, client: aetcd.Client, key: str, identity: str, ttl: float = 5.0,
                 on_change: Callable[[bool], None] | None = None,
                 backoff: Backoff = Backoff(initial=0.2, maximum=2.0)) -> None:
        if ttl < 2:
            raise ValueError("leader lease ttl must be at least 2s (etcd's minimum)")
        self._client = client
        self._key = key.encode()
        self._identity = identity.encode()
        self._ttl = ttl
        self._lease_ttl = math.ceil(ttl)
        self._on_change = on_change
        self._backoff = backoff
        self._is_leader = False
        self._lease: aetcd.Lease | None = None
        self._revision = 0  # create revision of our key while we lead
        self._confirmed = 0.0  # monotonic time our lease was last known to be alive
        self._leader: str | None = None
        self._resigned = False
        self.campaigns = 0
        self.regains = 0  # leads confirmed again after is_leader had gone stale
        self.terms = 0
        self.errors = 0

    @property
    def is_leader(self) -> bool:
        """We lead and our lease was confirmed alive less than 2/3 of the TTL ago. The age
        check is what stops a process woken from SIGSTOP (or a long stall): it still holds
        `_is_leader` until its next refresh fails, but the monotonic clock ran while it was
        stopped, so it acts on nothing before it has heard from etcd again."""
        return self._is_leader and not self._stale()

    def _stale(self) -> bool:
        """Our lease was last confirmed alive 2/3 of the TTL ago or longer: act on nothing."""
        return time.monotonic() - self._confirmed >= self._ttl * 2 / 3

    @property
    def leader(self) -> str | None:
        """The identity holding the key, as last seen (None when nobody or unknown)."""
        return self._leader

    def fence(self) -> transactions.BaseCompare | None:
        """The compare that makes a transaction conditional on our leadership; None when we
        do not lead (the Writer then refuses to write)."""
        if not self._is_leader:
            return None
        return transactions.Create(self._key) == self._revision

    async def run(self) -> None:
        """Campaign, lead, notice the loss, campaign again: until cancelled or resigned."""
        attempt = 0
        try:
            while not self._resigned:
                check_cancelled()
                try:
                    await self._campaign()
                    attempt = 0
                except _ERRORS as exc:
                    self.errors += 1
                    log.warning("leader election on %s: %s", self._key.decode(), exc)
                    self._set_leader(False)
                    await asyncio.sleep(self._backoff.delay(attempt))
                    attempt += 1
        finally:
            self._set_leader(False)

    async def resign(self) -> None:
        """Give up leadership and stop campaigning: revokes the lease, which deletes the key,
        so another replica takes over at once."""
        self._resigned = True
        self._set_leader(False)
        lease, self._lease = self._lease, None
        if lease is not None:
            try:
                async with asyncio.timeout(self._ttl):  # not wait_for (3.11)
                    await lease.revoke()
            except _ERRORS as exc:
                log.warning("could not revoke the leader lease (it expires by itself): %s", exc)

    async def _campaign(self) -> None:
        self.campaigns += 1
        granted = time.monotonic()
        lease = await self._client.lease(self._lease_ttl)
        tx = self._client.transactions
        won, responses = await self._client.transaction(
            compare=[tx.create(self._key) == 0],
            success=[tx.put(self._key, self._identity, lease=lease), tx.get(self._key)],
            failure=[tx.get(self._key)],
        )
        holder = responses[-1][0][1] if responses and responses[-1] else None
        if not won or holder is None or self._resigned:
            await self._revoke_quietly(lease)
            self._leader = holder.value.decode(errors="replace") if holder else None
            if holder is not None and not self._resigned:
                await self._wait_for_vacancy(holder)
            return
        self._lease, self._revision = lease, holder.create_revision
        self._confirmed = granted
        self._leader = self._identity.decode()
        self.terms += 1
        self._set_leader(True)
        log.info("leading %s as %s (revision %d)", self._key.decode(), self._leader,
                 self._revision)
        try:
            await self._hold(lease)
        finally:
            self._set_leader(False)
            if self._lease is lease:
                self._lease = None

    async def _hold(self, lease: aetcd.Lease) -> None:
        """Refresh the lease every ttl/4 (start to start) and check the key is still ours;
        returns when not. is_leader needs a confirmation within 2/3 of the TTL: refreshing
        start to start from the last confirmation, a quarter TTL apart, leaves 5/12 of it
        for a busy loop or a slow etcd (a period after the last answer, a third apart, the
        calls' time ate the margin and is_leader flickered under load). The lease counts as
        confirmed when its refresh is answered; the key check follows.
        After a failed refresh (the client has moved to another member) the next one comes
        after a short backoff, not a whole period."""
        period = self._ttl / 4
        patience = self._ttl / 6
        failures = 0
        while not self._resigned:
            check_cancelled()
            await asyncio.sleep(min(period, self._backoff.delay(failures - 1)) if failures
                                else max(0.0, self._confirmed + period - time.monotonic()))
            sent = time.monotonic()
            try:
                reply = await call(self._client, lease.refresh, timeout=patience)
                if reply is not None and reply.TTL > 0:
                    self._confirm(sent)
                current = await call(self._client, self._client.get, self._key,
                                     timeout=patience)
            except _ERRORS as exc:
                failures += 1
                if self._stale():
                    log.warning("stepping down from %s: lease not refreshed for %.1fs (%s)",
                                self._key.decode(), time.monotonic() - self._confirmed, exc)
                    self.errors += 1
                    await self._revoke_quietly(lease)
                    return
                continue
            failures = 0
            if reply is None or reply.TTL <= 0:
                log.warning("leader lease on %s expired", self._key.decode())
                return
            if current is None or current.create_revision != self._revision:
                log.warning("leader key %s was deleted or replaced", self._key.decode())
                await self._revoke_quietly(lease)
                return

    def _confirm(self, sent: float) -> None:
        """The lease was alive when `sent` (monotonic) was taken."""
        stale = self._stale()
        self._confirmed = max(self._confirmed, sent)
        if stale:  # is_leader said no for a while (a stall): what was refused meanwhile
            log.info("lease on %s confirmed again after a stall", self._key.decode())
            self.regains += 1
            self._notify(True)  # is written now, not at the next resync

    async def _wait_for_vacancy(self, holder: aetcd.Get) -> None:
        """Until the key is deleted (or a TTL passes: then the campaign simply runs again)."""
        try:
            await self._client.watch_once(self._key, timeout=self._ttl,
                                          start_revision=holder.header.revision + 1,
                                          kind=aetcd.EventKind.DELETE)
        except aetcd.WatchTimeoutError:
            pass

    async def _revoke_quietly(self, lease: aetcd.Lease) -> None:
        try:
            async with asyncio.timeout(self._ttl / 3):  # not wait_for (3.11)
                await lease.revoke()
        except _ERRORS + (asyncio.TimeoutError,):
            pass

    def _set_leader(self, leading: bool) -> None:
        if leading == self._is_leader:
            return
        self._is_leader = leading
        self._notify(leading)

    def _notify(self, leading: bool) -> None:
        if self._on_change is not None:
            try:
                self._on_change(leading)
            except Exception:  # noqa: BLE001 - a consumer's bug must not stop the election
                log.exception("leader on_change failed")
