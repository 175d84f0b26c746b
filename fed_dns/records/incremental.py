"""The zone kept incrementally: the cost of a change follows the change, not the zone. Pure.

`ZoneState` holds what `render.render` and `plan.diff` decide from (member views, health,
probe results, the store's contents) and the results of its last steps. Inputs mark
*groups* dirty: a group is a Service (`ServiceKey`), the unit of every rule (serve-all is
decided per Service) and of every store key `<prefix>/<reversed zone>/<ns>/<svc>/...`; the
zone's keys of any other shape form the group `GROUPLESS`. `step` recomputes dirty groups
and returns the owner-safe etcd writes and the DNS-table delta for them.

After any sequence of calls, stepping until nothing is dirty gives exactly what the full
pure functions give: the table equals `apply(current, plan.calculate(current=current,
desired=render.render(...).zone))` and the latest changes of every group together are that
plan (tests/records/test_incremental.py proves it with hypothesis).

Cost: a dirty Service costs O(its records). Its part in each cluster (`render.Part`) is
cached with the inputs it came from (the ServiceView object, the cluster's health, its probe
results) together with its encoded records, so a member's health change re-renders only that
member's part of each Service; the others are reused unless the Service's serve-all choice
flips. When only parts changed (a view, a health, probe results: not the store, not which
clusters are kept) and the group's last plan is written, only the changed parts' keys are
planned and swapped in the table (O(those records), not O(the Service's records in every
member)). The store's keys are indexed per group, and per cluster named in their values, so one
Service's diff never scans the zone.

Views may be live mappings owned by a watcher (changed in place between calls): they are read
when a group is stepped and never copied.
"""

from __future__ import annotations

import types
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import filterfalse

from fed_dns.model import Changes, ClusterView, Health, Record, ServiceKey, ServiceView, ZoneSettings
from fed_dns.records.codec import claimed_clusters, encode
from fed_dns.records.plan import Conflict, Plan, deepest_first, plan_keys
from fed_dns.records.render import (
    Emitted,
    Part,
    Rejection,
    cluster_rejection,
    emit,
    emit_fallback,
    layout,
    passes_none,
    publishes,
    rejections,
    serve_all,
    service_part,
)

GROUPLESS = ServiceKey(namespace="", name="")  # zone keys not shaped <ns>/<svc>/...
_NO_PROBES: Mapping[str, bool] = types.MappingProxyType({})
_PUBLISH, _KEEP, _REJECT = "publish", "keep", "reject"
ASSUME, WRITTEN = "assume", "written"  # step(own=...)


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """What one `step` recomputed and what follows from it.

    `changes`: the etcd writes of the recomputed groups (as `plan.calculate` restricted to
    them). `table_puts`/`table_deletes`: the delta of `entries` since the previous step.
    `failovers`: (cluster, target) fallbacks that appeared in this step. `services`: the
    groups recomputed; `whole`: how many of them were planned key by key over every member
    (the others part by part); `rendered`: (Service, cluster) parts rendered anew; `encoded`:
    records encoded (cost counters). `remaining`: groups still dirty.
    """

    changes: Changes
    table_puts: Mapping[str, bytes]
    table_deletes: tuple[str, ...]
    rejected: tuple[Rejection, ...]
    conflicts: tuple[Conflict, ...]
    failovers: tuple[tuple[str, str], ...]
    services: tuple[ServiceKey, ...]
    whole: int
    rendered: int
    encoded: int
    remaining: int


@dataclass(frozen=True, slots=True)
class _Out:
    """The encoded records of one part in one serve-all mode."""

    keys: tuple[str, ...]
    values: tuple[bytes, ...]  # one object per distinct record (a plain leaf and its SRV leaf)
    rejected: frozenset[Rejection]
    fallback: str | None


class _Cached:
    """One Service's part in one cluster and the inputs it was rendered from."""

    __slots__ = ("source", "health", "probes", "healthy", "rejected", "named", "outs")

    def __init__(self, source: ServiceView, health: Health | str, probes: Mapping[str, bool],
                 healthy: bool, rejected: frozenset[Rejection], named: bool) -> None:
        self.source = source
        self.health = health
        self.probes = probes
        self.healthy = healthy
        self.rejected = rejected
        self.named = named
        self.outs: dict[bool, _Out] = {}

    def fits(self, source: ServiceView, health: Health | str, probes: Mapping[str, bool]) -> bool:
        return (self.probes is probes and self.health == health
                and (self.source is source or self.source == source))


@dataclass(frozen=True, slots=True)
class _Result:
    """What a group's last recompute left in force."""

    records: int
    rejected: frozenset[Rejection]
    fallbacks: tuple[tuple[str, str], ...]
    conflicts: tuple[Conflict, ...]
    table: tuple[str, ...]  # the group's keys in the table
    mode: bool | None = None  # the serve-all choice it was made with (None: no parts)


SEED_CHUNK = 1_000  # seeded table entries emitted per limited step (a step stays short; a
# limited step recomputes no group while the seed is pending: 300,000 seeded keys went out in
# 300 steps of 20 recomputes each, 2.3 s of CPU and 6 s or more at a restart)

_EMPTY = _Result(records=0, rejected=frozenset(), fallbacks=(), conflicts=(), table=())
_NO_PARTS: Mapping[str, _Cached] = types.MappingProxyType({})
_NO_CLAIMS: Mapping[ServiceKey, int] = types.MappingProxyType({})


class ZoneState:
    """Inputs in, deltas out: a deterministic state machine over render's and plan's rules."""

    def __init__(self, *, settings: ZoneSettings) -> None:
        self._layout = layout(settings)  # ValueError for a bad zone or prefix, as render()
        self._scope = self._layout.base + "/"
        # inputs
        self._views: dict[str, ClusterView] = {}
        self._health: dict[str, Health | str] = {}
        self._probes: dict[tuple[str, ServiceKey], Mapping[str, bool]] = {}  # replaced, never mutated
        self._status: dict[str, str] = {}
        self._publishing: tuple[str, ...] = ()
        self._keeping: tuple[str, ...] = ()
        self._keep: frozenset[str] = frozenset()
        self._cluster_rejections: dict[str, Rejection] = {}
        self._current: dict[str, bytes] = {}
        # The store's own value (None: no key) of each key `_current` holds an assumed write
        # of, until the store reports that key: the one copy of the zone is `_current`.
        self._confirmed: dict[str, bytes | None] = {}
        self._held: dict[ServiceKey, set[str]] = {}  # group -> its current keys
        self._claims: dict[str, dict[ServiceKey, int]] = {}  # cluster -> groups with values naming it
        self._outside_pending: set[str] = set()
        self._seed: dict[str, bytes] = {}  # table entries seeded from the store, not yet emitted
        self._adopt: set[ServiceKey] = set()  # groups whose keys are still the store's strings
        self._seed_fresh: set[str] = set()  # seeded keys the table's reader never had
        self._seeded: frozenset[str] = frozenset()  # members with records in the last load
        # results
        self._parts: dict[ServiceKey, dict[str, _Cached]] = {}
        self._parted: dict[str, set[ServiceKey]] = {}  # cluster -> groups with a part there
        self._results: dict[ServiceKey, _Result] = {}
        self._table: dict[str, bytes] = {}
        self._outside: set[str] = set()  # table keys outside the zone
        self._records = 0
        self._rejections: Counter[Rejection] = Counter()
        self._fallbacks: Counter[tuple[str, str]] = Counter()
        # The dirty groups, each with the clusters whose part in it may have changed since
        # its last step (None: any of them, or more than its parts).
        self._dirty: dict[ServiceKey, set[str] | None] = {}
        self._full: set[ServiceKey] = set()  # dirty for more than their parts: plan every key
        # Groups with keys naming a cluster whose status changed since their last plan (a
        # member listed at a restart): whether those keys are stale may have changed.
        self._review: dict[ServiceKey, set[str]] = {}
        self._whole = 0
        self._unwritten: set[ServiceKey] = set()  # groups whose last plan was not empty
        self._queue: deque[ServiceKey] = deque()
        self._rendered = 0
        self._encoded = 0

    # -- inputs ----------------------------------------------------------------------------

    def load_current(self, entries: Mapping[str, bytes]) -> None:
        """The store's whole contents: forget what it held before; everything is dirty."""
        self._outside_pending |= self._outside
        self._mark(self._held.keys())  # their last plans may name keys that are gone now
        self._current = dict(entries)
        self._confirmed = {}
        self._held = {}
        self._claims = {}
        # What _apply_keys does, for the whole store at once: a ServiceKey hashes in Python, so the
        # keys are grouped by their two labels (a str tuple) first (300,000 keys: 2.0 -> 1.3 s).
        by_labels: dict[tuple[str, ...], list[str]] = {}
        for key in entries:
            labels = self._labels(key)
            if labels is None:
                self._outside_pending.add(key)
            else:
                by_labels.setdefault(labels, []).append(key)
        # A value is often held twice (the A and the SRV key of an endpoint): read once, and
        # kept as one object (the load made one per key; the DNS workers' seed pickles it
        # once per message then, 38 MB less in a worker after a restart).
        claimed: dict[bytes, tuple[bytes, tuple[str, ...]]] = {}
        current = self._current
        for labels, keys in by_labels.items():
            group = ServiceKey(namespace=labels[0], name=labels[1]) if labels else GROUPLESS
            self._held[group] = set(keys)
            counts: dict[str, int] = {}
            for key in keys:
                value = entries[key]
                seen = claimed.get(value)
                if seen is None:
                    seen = claimed[value] = (value, claimed_clusters(value))
                elif seen[0] is not value:
                    current[key] = seen[0]
                for cluster in seen[1]:
                    counts[cluster] = counts.get(cluster, 0) + 1
            for cluster, count in counts.items():
                self._claims.setdefault(cluster, {})[group] = count
            self._mark((group,))
        self._adopt = set(self._held)
        self._seed_table()
        self.mark_all()

    def _seed_table(self) -> None:
        """Groups with no result yet (a start, or new in a reload) enter the table as the
        store holds them, so DNS answers what etcd holds (as CoreDNS on the same etcd does)
        before the first pass has recomputed them; each group's recompute then changes
        only what differs. Steps emit the seed as table puts (SEED_CHUNK per limited step)."""
        table, current, results, seed = self._table, self._current, self._results, self._seed
        self._seeded = frozenset(c for c, claims in self._claims.items() if claims)
        for group, keys in self._held.items():
            if group in results:
                continue
            for key in keys:
                value = current[key]
                there = table.get(key)
                if there != value:
                    if there is None:
                        self._seed_fresh.add(key)  # the table's reader has never had it
                    table[key] = seed[key] = value
            results[group] = _Result(records=0, rejected=frozenset(), fallbacks=(), conflicts=(),
                                     table=tuple(keys))

    def update_current(self, *, puts: Mapping[str, bytes], deletes: Iterable[str],
                       planned: bool = False) -> None:
        """Store events (deletes applied first; a key it does not hold is ignored): marks
        only the groups of the keys. `planned`: the changes are this state's own last plans,
        now in a store that reports nothing back (no etcd: the table is the store), so their
        groups are not stepped again, as with `assume`."""
        deletes = tuple(deletes)
        if self._confirmed:  # what the store reports is what it holds
            for keys in (deletes, puts):
                for key in keys:
                    self._confirmed.pop(key, None)
        if planned:
            self._take_own(puts=puts, deletes=deletes, confirm=False)
            return
        current = self._current
        gone = [key for key in deletes if key in current]
        redone = set(gone) if gone and puts else ()  # deleted first, then put again
        changed = {key: value for key, value in puts.items()
                   if key in redone or (held := current.get(key)) is None or held != value}
        for group, (group_puts, group_deletes) in self._by_group(puts=changed, deletes=gone).items():
            self._apply_keys(group, group_puts, group_deletes)
            if group is not None:
                self._mark((group,))  # someone else's write: re-planned

    def assume(self, *, puts: Mapping[str, bytes], deletes: Iterable[str]) -> None:
        """Our own writes (the changes of the plans the last steps made), handed to etcd but
        not yet reported back: planned against as if the store held them, while `stored`
        still gives what it does hold. Their groups are not stepped again: each one's plan
        against its own writes is empty (stepping them again doubled the cost of every
        change: a failover of 5,000 Services stepped 10,000). `step(own=ASSUME)` does this
        for each plan as it is made."""
        self._take_own(puts=puts, deletes=deletes, confirm=True)

    def _take_own(self, *, puts: Mapping[str, bytes], deletes: Iterable[str], confirm: bool) -> None:
        """Own writes given as changes of any groups: `_apply_own`, group by group."""
        for group, (group_puts, group_deletes) in self._by_group(puts=puts, deletes=deletes).items():
            self._apply_own(group, group_puts, group_deletes, confirm=confirm)

    def _by_group(self, *, puts: Mapping[str, bytes], deletes: Iterable[str],
                  ) -> dict[ServiceKey | None, tuple[dict[str, bytes], list[str]]]:
        """Changes split by group (None: keys outside the zone)."""
        by_group: dict[ServiceKey | None, tuple[dict[str, bytes], list[str]]] = {}
        for key in deletes:
            by_group.setdefault(self._group(key), ({}, []))[1].append(key)
        for key, value in puts.items():
            by_group.setdefault(self._group(key), ({}, []))[0][key] = value
        return by_group

    def _apply_own(self, group: ServiceKey | None, puts: Mapping[str, bytes], deletes: Iterable[str], *,
                   confirm: bool) -> None:
        """One group's own writes, as the store will hold them (`_apply_keys`), with the group
        known once (worked out key by key, a failover's 35,000 keys took 12 us each in the
        daemon). The group is not stepped again for them. `confirm`: the store has not
        reported them: what it does report is kept (`stored`)."""
        if confirm:
            current, confirmed = self._current, self._confirmed
            for keys in (deletes, puts):
                for key in keys:
                    if key not in confirmed:
                        confirmed[key] = current.get(key)
        self._apply_keys(group, puts, deletes)
        if group is not None:
            self._unwritten.discard(group)

    def _apply_keys(self, group: ServiceKey | None, puts: Mapping[str, bytes], deletes: Iterable[str]) -> None:
        """One group's keys in `_current` changed (deletes first; a delete of a key not held
        and a put of the value held change nothing), with its held keys and the claims of
        their values. Group None: keys outside the zone, which only the table follows."""
        current = self._current
        if group is None:
            for key in deletes:
                current.pop(key, None)
            current.update(puts)
            self._outside_pending.update(deletes, puts)
            return
        held = self._held.get(group)
        counts: dict[str, int] = {}
        for key in deletes:
            value = current.pop(key, None)
            if value is None:
                continue
            held.discard(key)
            for cluster in claimed_clusters(value):
                counts[cluster] = counts.get(cluster, 0) - 1
        for key, value in puts.items():
            was = current.get(key)
            if was is None:
                if held is None:
                    held = self._held[group] = set()
                held.add(key)
            elif was is value or was == value:
                continue
            else:
                for cluster in claimed_clusters(was):
                    counts[cluster] = counts.get(cluster, 0) - 1
            current[key] = value
            for cluster in claimed_clusters(value):
                counts[cluster] = counts.get(cluster, 0) + 1
        if held is not None and not held:
            del self._held[group]
        for cluster, count in counts.items():
            if count:
                claims = self._claims.get(cluster)
                if claims is None:
                    claims = self._claims[cluster] = {}
                count += claims.get(group, 0)
                if count:
                    claims[group] = count
                else:
                    del claims[group]

    def stored(self, key: str) -> bytes | None:
        """The store's value of `key` as last reported (None: it holds no such key), whatever
        was assumed since."""
        confirmed = self._confirmed
        if key in confirmed:
            return confirmed[key]
        return self._current.get(key)

    @property
    def assumed(self) -> int:
        """Keys whose assumed value the store has not reported yet."""
        return len(self._confirmed)

    def set_view(self, view: ClusterView, *, changed: Iterable[ServiceKey] | None) -> None:
        """A member's view; `changed`: the Services whose ServiceView changed (None: find them)."""
        cluster = view.cluster
        old = self._views.get(cluster)
        self._views[cluster] = view
        if changed is None:
            changed = self._changed_services(cluster, old, view)
        self._mark(changed, parts_only=True, cluster=cluster)
        extra = old.services.keys() if old is not None and old.services is not view.services else ()
        self._restatus(cluster, extra=extra)

    def set_health(self, cluster: str, health: Health | str) -> None:
        old = self._health.get(cluster)
        self._health[cluster] = health
        if old is not None and old == health:
            return
        if not self._restatus(cluster, extra=()) and self._status[cluster] == _PUBLISH:
            self._mark_parts(cluster)  # READY <-> UNREACHABLE: its parts change

    def remove_cluster(self, cluster: str) -> None:
        """A member left the federation: its view, health and probe results are forgotten,
        so its records are no longer desired, and it is neither publishing nor kept: the
        keys naming it are deleted from the store (they are ours; the cluster is gone)."""
        view = self._views.pop(cluster, None)
        self._health.pop(cluster, None)
        self._cluster_rejections.pop(cluster, None)
        for pair in [p for p in self._probes if p[0] == cluster]:
            del self._probes[pair]
        if view is not None:
            self._mark(view.services.keys())
        self._mark(self._parted.get(cluster, ()))
        self._mark(self._claims.get(cluster, {}).keys())
        if self._status.pop(cluster, None) is not None:
            self._publishing = tuple(c for c in self._publishing if c != cluster)
            self._keeping = tuple(c for c in self._keeping if c != cluster)
            self._keep = frozenset(self._keeping)

    def set_probes(self, changed: Mapping[tuple[str, ServiceKey, str], bool | None]) -> None:
        """Probe results that changed (None: no result any more)."""
        by_pair: dict[tuple[str, ServiceKey], dict[str, bool | None]] = {}
        for (cluster, key, address), result in changed.items():
            by_pair.setdefault((cluster, key), {})[address] = result
        for pair, results in by_pair.items():
            probes = dict(self._probes.get(pair, _NO_PROBES))
            for address, result in results.items():
                if result is None:
                    probes.pop(address, None)
                else:
                    probes[address] = result
            if probes:
                self._probes[pair] = types.MappingProxyType(probes)
            else:
                self._probes.pop(pair, None)
            self._mark((pair[1],), parts_only=True, cluster=pair[0])

    def mark_all(self) -> None:
        """Every group dirty (a full consistency pass, stepped through in chunks)."""
        for view in self._views.values():
            self._mark(view.services.keys())
        self._mark(self._held.keys())
        self._mark(self._parts.keys())
        self._mark(self._results.keys())

    def mark_unwritten(self) -> int:
        """The groups whose last plan was not empty dirty again (their writes were planned
        but, on a follower, never made): what a replica that becomes leader must write, in
        O(those groups) instead of a full pass. Returns how many."""
        groups = list(self._unwritten)
        self._mark(groups)
        return len(groups)

    def mark_keys(self, keys: Iterable[str]) -> None:
        """The groups of these store keys dirty (e.g. the keys of a write that failed)."""
        for key in keys:
            group = self._group(key)
            if group is None:
                self._outside_pending.add(key)
            else:
                self._mark((group,))

    # -- results ---------------------------------------------------------------------------

    def step(self, *, limit: int | None = None, own: str | None = None) -> Step:
        """Recompute up to `limit` dirty groups (None: all), oldest first. `own`: what
        becomes of each group's plan, taken as it is made: ASSUME (handed to a writer, as
        `assume`), WRITTEN (this state is the store, as `update_current(planned=True)`), or
        None (not written: a follower's)."""
        if own not in (None, ASSUME, WRITTEN):
            raise ValueError(f"own: {own!r} is not None, {ASSUME!r} or {WRITTEN!r}")
        self._rendered = self._encoded = self._whole = 0
        puts: dict[str, bytes] = {}
        deletes: list[str] = []
        conflicts: list[Conflict] = []
        rejected: set[Rejection] = set()
        failovers: list[tuple[str, str]] = []
        table_puts: dict[str, bytes] = {}
        seed = self._seed  # a chunk of it first (a step stays short); a recompute below may
        emitted = []  # still change or delete those in this same step
        for _ in range(len(seed) if limit is None else min(SEED_CHUNK, len(seed))):
            key, value = seed.popitem()
            table_puts[key] = value
            emitted.append(key)
        table_deletes: list[str] = []
        self._flush_outside(table_puts, table_deletes)
        done = []
        count = len(self._queue) if limit is None else min(limit, len(self._queue))
        if limit is not None and seed:
            count = 0  # etcd's records first: a restart serves them all before any recompute
        for _ in range(count):
            group = self._queue.popleft()
            touched = self._dirty.pop(group)
            done.append(group)
            plan, result = self._recompute(group, touched, table_puts, table_deletes, failovers)
            changes = plan.changes
            if changes:
                puts.update(changes.puts)
                deletes.extend(changes.deletes)
                if own is not None:
                    self._apply_own(group, changes.puts, changes.deletes, confirm=own == ASSUME)
            conflicts.extend(plan.conflicts)
            rejected |= result.rejected
        self._seed_fresh.difference_update(emitted)  # the reader has them now
        if emitted and not seed:  # an emptied dict or set keeps its table (12 MB at a restart)
            self._seed = {}
            if not self._seed_fresh:
                self._seed_fresh = set()
        deletes.sort(key=deepest_first)
        return Step(changes=Changes(puts=puts, deletes=tuple(deletes)), table_puts=table_puts,
                    table_deletes=tuple(table_deletes), rejected=tuple(sorted(rejected)),
                    conflicts=tuple(sorted(conflicts)), failovers=tuple(sorted(failovers)),
                    services=tuple(done), whole=self._whole, rendered=self._rendered,
                    encoded=self._encoded,
                    remaining=len(self._queue))

    @property
    def entries(self) -> Mapping[str, bytes]:
        """What the DNS table answers from: the store with the pending plan applied."""
        return types.MappingProxyType(self._table)

    @property
    def current(self) -> Mapping[str, bytes]:
        """The store's contents as last told."""
        return types.MappingProxyType(self._current)

    @property
    def records(self) -> int:
        """Desired records of the zone (as `len(render(...).zone.records)`)."""
        return self._records

    @property
    def services(self) -> int:
        """Services in all members' views, counted per member."""
        return sum(len(view.services) for view in self._views.values())

    @property
    def rejected(self) -> tuple[Rejection, ...]:
        """Everything not published, as `render(...).rejected`."""
        return tuple(sorted({*self._rejections, *self._cluster_rejections.values()}))

    @property
    def conflicts(self) -> tuple[Conflict, ...]:
        return tuple(sorted(c for result in self._results.values() for c in result.conflicts))

    @property
    def fallbacks(self) -> frozenset[tuple[str, str]]:
        """(cluster, target) of every fallback CNAME in force: the members withdrawn per Service."""
        return frozenset(self._fallbacks)

    @property
    def dirty(self) -> int:
        return len(self._queue)

    @property
    def has_work(self) -> bool:
        """Whether a step would do anything: dirty groups, or seeded entries to emit."""
        return bool(self._queue) or bool(self._seed)

    @property
    def seeded(self) -> frozenset[str]:
        """The members the store held records of when it was last loaded whole."""
        return self._seeded

    @property
    def seed_pending(self) -> bool:
        """Whether table entries seeded from the store wait for the next step to emit them."""
        return bool(self._seed)

    @property
    def keep_clusters(self) -> frozenset[str]:
        return self._keep

    def holds(self, cluster: str) -> bool:
        """Whether the store holds any record naming `cluster` (its last published records)."""
        return bool(self._claims.get(cluster))

    # -- marking ---------------------------------------------------------------------------

    def _mark(self, groups: Iterable[ServiceKey], *, parts_only: bool = False,
              cluster: str | None = None) -> None:
        """Dirty groups; `parts_only`: only their parts' inputs changed (else every key of
        theirs is planned at their next step); `cluster`: only (with `parts_only`) the
        inputs of their part in that cluster, the only part their step renders again (a
        member's failover looked at every member's part of each of its 5,000 Services)."""
        dirty, queue, full = self._dirty, self._queue, self._full
        if not parts_only:
            cluster = None
        for group in groups:
            if not parts_only:
                full.add(group)
            if group not in dirty:
                dirty[group] = None if cluster is None else {cluster}
                queue.append(group)
            else:
                clusters = dirty[group]
                if clusters is not None:
                    if cluster is None:
                        dirty[group] = None
                    else:
                        clusters.add(cluster)

    def _mark_parts(self, cluster: str) -> None:
        """The groups with a part in `cluster` (or a view there), part by part."""
        view = self._views.get(cluster)
        if view is not None:
            self._mark(view.services.keys(), parts_only=True, cluster=cluster)
        self._mark(self._parted.get(cluster, ()), parts_only=True, cluster=cluster)

    def _restatus(self, cluster: str, *, extra: Iterable[ServiceKey]) -> bool:
        """Recompute a cluster's status; True (and its groups marked) if it changed."""
        rejection = cluster_rejection(cluster)
        if rejection is not None:
            self._cluster_rejections[cluster] = rejection
            status = _REJECT
        else:
            health = self._health.get(cluster, Health.UNKNOWN)
            status = _PUBLISH if publishes(health=health, view=self._views.get(cluster)) else _KEEP
        if self._status.get(cluster) == status:
            return False
        self._status[cluster] = status
        self._publishing = tuple(sorted(c for c, s in self._status.items() if s == _PUBLISH))
        self._keeping = tuple(sorted(c for c, s in self._status.items() if s == _KEEP))
        self._keep = frozenset(self._keeping)
        # Its parts appear or go (planned part by part); what else changes is whether keys
        # naming it are kept, so the groups holding such keys review them: planned whole
        # only if one is not a key its part renders (at 10 x 5,000 each member listed after
        # a restart, leaving the keep set, planned every group whole: 1.2-1.6 s, ten times).
        self._mark_parts(cluster)
        claims = self._claims.get(cluster, _NO_CLAIMS)
        for group in claims:
            self._review.setdefault(group, set()).add(cluster)
        self._mark(claims.keys(), parts_only=True, cluster=cluster)
        self._mark(extra)
        return True

    def _changed_services(self, cluster: str, old: ClusterView | None,
                          new: ClusterView) -> list[ServiceKey]:
        """The Services of `cluster` whose ServiceView differs between what was rendered (or
        the old view) and `new`: O(Services of that member)."""
        replaced = old is not None and old.services is not new.services
        candidates = set(new.services) | self._parted.get(cluster, set())
        if replaced:
            candidates |= set(old.services)
        changed = []
        for key in candidates:
            now = new.services.get(key)
            cached = self._parts.get(key, {}).get(cluster)
            if cached is not None:
                before = cached.source
            elif replaced:
                before = old.services.get(key)
            else:
                changed.append(key)  # nothing to compare with: recompute to be sure
                continue
            if before is not now and before != now:
                changed.append(key)
        return changed

    # -- the store -------------------------------------------------------------------------

    def _labels(self, key: str) -> tuple[str, ...] | None:
        """A store key's group as its two labels (namespace, name); () for a zone key not
        shaped <ns>/<svc>/...; None outside the zone."""
        if not key.startswith(self._scope):
            return None
        labels = key[len(self._scope):].split("/", 2)
        return (labels[0], labels[1]) if len(labels) >= 2 else ()

    def _group(self, key: str) -> ServiceKey | None:
        """The group of a store key; None outside the zone."""
        labels = self._labels(key)
        if labels is None:
            return None
        return ServiceKey(namespace=labels[0], name=labels[1]) if labels else GROUPLESS

    def _flush_outside(self, table_puts: dict[str, bytes], table_deletes: list[str]) -> None:
        for key in self._outside_pending:
            value = self._current.get(key)
            if value is None:
                if self._table.pop(key, None) is not None:
                    table_deletes.append(key)
                self._outside.discard(key)
            elif self._table.get(key) != value:
                self._table[key] = table_puts[key] = value
                self._outside.add(key)
        self._outside_pending.clear()

    # -- one group -------------------------------------------------------------------------

    def _recompute(self, group: ServiceKey, touched: set[str] | None, table_puts: dict[str, bytes],
                   table_deletes: list[str], failovers: list[tuple[str, str]]) -> tuple[Plan, _Result]:
        review = self._review.pop(group, None) if self._review else None
        before = self._parts.get(group, _NO_PARTS)
        parts, changed = self._render_parts(group, before, touched)
        kept = any(group in self._views[c].services for c in self._keeping if c in self._views)
        mode = serve_all(layout=self._layout, kept=kept,
                         healthy=any(cached.healthy for cached in parts.values()))
        old = self._results.get(group, _EMPTY)
        if group in self._full:
            self._full.discard(group)
        elif ((old.mode is mode or not before) and group not in self._unwritten and not self._seed
              and not self._seed_fresh and group not in self._adopt):
            done = self._recompute_parts(group, before, parts, changed, mode, old, table_puts,
                                         table_deletes, failovers, review)
            if done is not None:
                return done
        self._whole += 1
        desired: dict[str, bytes] = {}
        rejected: set[Rejection] = set()
        fallbacks = []
        for cluster, cached in parts.items():
            out = self._output(group, cluster, cached, mode)
            desired.update(zip(out.keys, out.values))
            rejected |= cached.rejected | out.rejected
            if out.fallback is not None:
                fallbacks.append((cluster, out.fallback))

        if group in self._adopt:
            self._adopt_keys(group, desired)
        current = self._current
        held_keys = self._held.get(group, ())
        plan = plan_keys(desired=desired, current=current,
                         held=((key, current[key]) for key in held_keys),
                         owner=self._layout.owner, keep_clusters=self._keep)
        if plan.changes:
            self._unwritten.add(group)
        else:
            self._unwritten.discard(group)
        for key, value in desired.items():  # share one bytes object between store and cache
            got = current.get(key)
            if got is not None and got is not value and got == value:
                current[key] = value

        # The table: the group's current keys with its plan applied, as a delta.
        gone = set(plan.changes.deletes)
        table = self._table
        puts = plan.changes.puts
        new_keys = [key for key in held_keys if key not in gone]
        new_keys.extend(key for key in puts if key not in current)
        for key in old.table:
            if key in gone or (key not in current and key not in puts):
                if table.pop(key, None) is not None:
                    # A seeded key not yet emitted, or emitted in this same step, is
                    # withdrawn; the reader holds a value only if it was not fresh.
                    pending = (self._seed.pop(key, None) is not None
                               or table_puts.pop(key, None) is not None)
                    if not (pending and key in self._seed_fresh):
                        table_deletes.append(key)
                    self._seed_fresh.discard(key)
        for key in new_keys:
            value = puts[key] if key in puts else current[key]
            there = table.get(key)
            if there is value:
                continue
            if there != value:
                table[key] = table_puts[key] = value
                if self._seed:  # a pending seed of this key is superseded
                    self._seed.pop(key, None)
                    self._seed_fresh.discard(key)
            else:  # equal bytes, another object (a load's): the table keeps the one the
                table[key] = value  # store and the cache hold (40 MB after a restart)

        result = _Result(records=len(desired), rejected=rejections(rejected),
                         fallbacks=tuple(fallbacks), conflicts=plan.conflicts, table=tuple(new_keys),
                         mode=mode if parts else None)
        return plan, self._settle(group, old, result, parts, failovers)

    def _settle(self, group: ServiceKey, old: _Result, result: _Result, parts: Mapping[str, _Cached],
                failovers: list[tuple[str, str]]) -> _Result:
        self._account(old, result, failovers)
        if result == _EMPTY and not parts:
            self._results.pop(group, None)
        else:
            self._results[group] = result
        return result

    def _recompute_parts(self, group: ServiceKey, before: Mapping[str, _Cached], parts: Mapping[str, _Cached],
                         changed: list[str], mode: bool, old: _Result, table_puts: dict[str, bytes],
                         table_deletes: list[str], failovers: list[tuple[str, str]],
                         review: set[str] | None = None) -> tuple[Plan, _Result] | None:
        """`_recompute` when only parts changed since the group's last step, made with the same
        serve-all choice, whose plan is written (the store and the table hold the group's keys
        as that plan left them): the `changed` parts' records are planned against the store
        and the keys they no longer render are planned away, the others are not looked at. As
        the whole recompute would decide: keys of two clusters never meet (the cluster is a
        label of every key), and nothing else a plan reads has changed. The result's counts
        are the last result's with the changed parts' taken out and put in. None when a
        changed part's last records are not at hand (then the whole group is recomputed).

        `review`: clusters whose status changed since (see _restatus): whether a key naming
        one of them is stale may have changed. The store holds `_claims[c][group]` keys
        naming cluster c; when each is a key c's part renders, with the value it renders (or
        c has no part and no key), none is stale. Else None: the whole group is planned."""
        current = self._current
        for cluster in review or ():
            claimed = self._claims.get(cluster, _NO_CLAIMS).get(group, 0)
            cached = parts.get(cluster)
            if cached is None:
                if claimed:
                    return None
                continue
            out = self._output(group, cluster, cached, mode)
            held = 0  # the part's keys the store holds, each with the value rendered
            for key, value in zip(out.keys, out.values):
                got = current.get(key)
                if got is None:
                    continue
                if got is not value and got != value:
                    return None
                held += 1
            if claimed != held:
                return None
        desired: dict[str, bytes] = {}
        dropped: list[tuple[str, _Out]] = []  # the records the changed parts had
        records = old.records  # made with `before`, in this mode (or 0: no parts before)
        rejected: set[Rejection] = set()
        fallbacks = []
        for cluster in changed:
            was = before.get(cluster)
            if was is not None:
                last = was.outs.get(mode)
                if last is None:
                    return None
                records -= len(last.keys)
                dropped.append((cluster, last))
            cached = parts.get(cluster)
            if cached is not None:
                out = self._output(group, cluster, cached, mode)
                records += len(out.keys)
                if cached.rejected or out.rejected:
                    rejected |= cached.rejected | out.rejected
                if out.fallback is not None:
                    fallbacks.append((cluster, out.fallback))
                desired.update(zip(out.keys, out.values))
        if old.rejected:  # a union: what the unchanged parts reject is read again
            for cluster, cached in parts.items():
                rejected |= cached.rejected | self._output(group, cluster, cached, mode).rejected
        if old.fallbacks:
            fallbacks.extend(pair for pair in old.fallbacks if pair[0] not in changed)

        # The keys the changed parts no longer render: those the store holds with the value
        # this state encoded (the object itself: ours, of a publishing cluster) are stale
        # without reading them (a failover read 30,000 values again); any other is read.
        held: list[tuple[str, bytes]] = []
        stale_keys: list[str] = []
        for cluster, last in dropped:
            ours = cluster not in self._keep
            for key, value in zip(last.keys, last.values):
                if key in desired:
                    continue
                got = current.get(key)
                if got is value and ours:
                    stale_keys.append(key)
                elif got is not None:
                    held.append((key, got))
        plan = plan_keys(desired=desired, current=current, held=held, stale_keys=stale_keys,
                         owner=self._layout.owner, keep_clusters=self._keep)
        if plan.changes:
            self._unwritten.add(group)
        table = self._table
        for key, value in desired.items():  # share one bytes object between store and cache
            got = current.get(key)
            if got is not None and got is not value and got == value:
                current[key] = value
                if table.get(key) == value:
                    table[key] = value

        puts, deletes = plan.changes.puts, plan.changes.deletes
        for key in deletes:
            if table.pop(key, None) is not None:
                table_puts.pop(key, None)
                table_deletes.append(key)
        for key, value in puts.items():
            there = table.get(key)
            if there is not value:
                if there != value:
                    table_puts[key] = value
                table[key] = value
        keys = old.table
        if deletes:
            keys = tuple(filterfalse(set(deletes).__contains__, keys))
        added = [key for key in puts if key not in current]
        if added:
            keys = (*keys, *added)
        conflicts = old.conflicts
        if conflicts:
            replanned = {key for _, last in dropped for key in last.keys} | desired.keys()
            conflicts = tuple(c for c in conflicts if c.key not in replanned)
        result = _Result(records=records, rejected=rejections(rejected), fallbacks=tuple(fallbacks),
                         conflicts=(*conflicts, *plan.conflicts), table=keys, mode=mode)
        return plan, self._settle(group, old, result, parts, failovers)

    def _adopt_keys(self, group: ServiceKey, desired: Mapping[str, bytes]) -> None:
        """After a load the group's keys are the store's strings and its records' keys are
        render's equal ones: the store's view, the table and the seed take the records'
        objects, so each key is one string (a restart at 10 x 5,000 held 32 MB of keys twice).
        Once per group and load."""
        self._adopt.discard(group)
        held = self._held.get(group) or ()
        current, table, seed, fresh = self._current, self._table, self._seed, self._seed_fresh
        for key in desired:
            if key not in held:
                continue
            held.discard(key)  # the equal string it holds goes, this one comes in
            held.add(key)
            current[key] = current.pop(key)
            if key in table:
                table[key] = table.pop(key)
            if key in seed:
                seed[key] = seed.pop(key)
            if key in fresh:
                fresh.discard(key)
                fresh.add(key)
        if not self._adopt:
            # Each key moved was deleted and inserted again: the dicts doubled their tables
            # (7.7 -> 15.4 MB for 300,000 keys); once every group is done, a copy is compact.
            # (Nothing keeps these dicts but this state: readers go through its properties.)
            self._current, self._table = dict(self._current), dict(self._table)

    def _render_parts(self, group: ServiceKey, before: Mapping[str, _Cached],
                      touched: set[str] | None) -> tuple[dict[str, _Cached], list[str]]:
        """The group's part in every publishing cluster that has it, reusing what still fits;
        with `touched`, only the parts in those clusters are looked at (the others' inputs have
        not changed since `before`). Also the clusters whose part is new, another or gone."""
        if touched is None:
            parts: dict[str, _Cached] = {}
            clusters: Iterable[str] = self._publishing
        else:
            parts = dict(before)
            clusters = sorted(touched) if len(touched) > 1 else touched  # in a set's order,
            # the plan's puts would come in an order of this process's string hashes
        changed = []
        status = self._status
        for cluster in clusters:
            view = self._views.get(cluster)
            source = view.services.get(group) if view is not None else None
            if source is None or status.get(cluster) != _PUBLISH:
                if parts.pop(cluster, None) is not None:
                    changed.append(cluster)
                continue
            health = self._health[cluster]
            probes = self._probes.get((cluster, group), _NO_PROBES)
            cached = before.get(cluster)
            if cached is None or not cached.fits(source, health, probes):
                self._rendered += 1
                if (cached is not None and cached.named and cached.source is source
                        and passes_none(health=health, view=source, probes=probes)):
                    # The same Service, none of whose backends passes now (its member failing
                    # over): the fallback alone, and the rejections its backends gave before
                    # (not validated again; its serve-all records are rendered if needed).
                    cached = _Cached(source, health, probes, False, cached.rejected, True)
                    cached.outs[False] = self._encode_emitted(
                        emit_fallback(layout=self._layout, cluster=cluster, key=source.key))
                else:
                    part = service_part(cluster=cluster, view=source, health=health, probes=probes)
                    cached = _Cached(source, health, probes, bool(part.healthy), part.rejected, part.named)
                    cached.outs[False] = self._encode(part, serve_all=False)
                    if part.healthy == part.valid:
                        cached.outs[True] = cached.outs[False]
                changed.append(cluster)
            parts[cluster] = cached
        if touched is None:
            changed.extend(cluster for cluster in before if cluster not in parts)
        parted = self._parted
        for cluster in changed:
            if cluster not in parts:
                parted[cluster].discard(group)
            elif cluster not in before:
                parted.setdefault(cluster, set()).add(group)
        if parts:
            self._parts[group] = parts
        else:
            self._parts.pop(group, None)
        return parts, changed

    def _output(self, group: ServiceKey, cluster: str, cached: _Cached, mode: bool) -> _Out:
        out = cached.outs.get(mode)
        if out is None:  # the other serve-all mode, first needed now: render it once
            self._rendered += 1
            part = service_part(cluster=cluster, view=cached.source, health=cached.health,
                                probes=cached.probes)
            out = cached.outs[mode] = self._encode(part, serve_all=mode)
        return out

    def _encode(self, part: Part, *, serve_all: bool) -> _Out:
        return self._encode_emitted(emit(layout=self._layout, part=part, serve_all=serve_all))

    def _encode_emitted(self, emitted: Emitted) -> _Out:
        encoded: dict[Record, bytes] = {}
        values = []
        for _, record in emitted.records:
            value = encoded.get(record)
            if value is None:
                value = encoded[record] = encode(record)
                self._encoded += 1
            values.append(value)
        return _Out(keys=tuple(key for key, _ in emitted.records), values=tuple(values),
                    rejected=emitted.rejected, fallback=emitted.fallback)

    def _account(self, old: _Result, new: _Result, failovers: list[tuple[str, str]]) -> None:
        self._records += new.records - old.records
        self._rejections.update(new.rejected)
        self._rejections.subtract(old.rejected)
        for rejection in old.rejected - new.rejected:
            if self._rejections[rejection] <= 0:
                del self._rejections[rejection]
        for pair in new.fallbacks:
            if not self._fallbacks[pair]:
                failovers.append(pair)
            self._fallbacks[pair] += 1
        for pair in old.fallbacks:
            self._fallbacks[pair] -= 1
            if self._fallbacks[pair] <= 0:
                del self._fallbacks[pair]
