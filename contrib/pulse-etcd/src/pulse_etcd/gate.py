"""The lease gate: a group runs only on the node that holds its key in etcd.

:class:`LeaseGate` is three things to pulse's core (docs/plugins/hooks.md):

* a **takeover check**: before this node acquires a group, it puts the group's key
  (``/pulse/<cluster>/groups/<group>`` = ``<node> <generation>``) under this node's
  lease in one create-if-absent transaction; when another node holds the key it waits
  for it to go (a dead holder's lease expires) for at most ``acquire_wait``, then
  refuses;
* the check's background ``run(control)``: keeps the lease alive while this node holds
  a group and gives the groups up (``control.release``) when it has not renewed for
  ``ttl - safety_margin`` seconds, before etcd can let the lease expire; lets a refused
  group back (``control.readmit``) once its key is free;
* an **event listener**: deletes a group's key as soon as the group is released here,
  so a graceful move is as fast as without etcd.

The timing argument is in docs/plugins/etcd.md; :mod:`pulse_etcd.settings` checks it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import trio

from pulse.config.model import ResourceGroup
from pulse.plugin.api import ClusterEvent, GroupControl, Metric
from pulse_etcd.client import EtcdClient, EtcdError, EtcdUnavailable, KeyValue
from pulse_etcd.settings import WORST_ELECTION, Settings

log = logging.getLogger("pulse.etcd")

POLL = 0.1  # how often an acquisition looks whether the holder's key has gone
RETRY = 0.25  # how soon a failed renewal is tried again


@dataclass(slots=True)
class _Lease:
    id: int
    sent: float  # trio time the last renewal etcd answered was sent: expiry >= sent + ttl


def _check_timeout(settings: Settings) -> float:
    """The takeover check's own timeout: the acquisition's wait and two rounds of requests."""
    per_call = settings.request_timeout * len(settings.endpoints)
    return settings.wait + 2 * per_call + 1.0


_KEYS_MOVE = (
    "changed from {old!r} to {new!r}: it names the groups' keys, which a live gate cannot "
    "move (and nodes on the old and the new keys would not exclude each other: stop every "
    "node, then start them)"
)
_CLIENT = "changed: the etcd client's TLS and credentials are set up when pulse starts"
# Settings a reload cannot change on a live gate, and why (LeaseGate.apply).
_RESTART = (
    (
        "ttl",
        "changed from {old} to {new}: etcd renews a live lease for the TTL it was granted, "
        "and this node's demotion deadline is reckoned from it",
    ),
    ("prefix", _KEYS_MOVE),
    ("cluster", _KEYS_MOVE),
    ("names", _KEYS_MOVE),
    ("ca_file", _CLIENT),
    ("cert_file", _CLIENT),
    ("key_file", _CLIENT),
    ("username", _CLIENT),
    ("password", _CLIENT),
    ("password_file", _CLIENT),
)


def _hms(wall: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(wall))


class LeaseGate:
    """The etcd lease gate of one daemon (a takeover check and an event listener)."""

    name = "etcd"

    def __init__(
        self,
        settings: Settings,
        client: EtcdClient,
        *,
        node: str,
        groups: tuple[ResourceGroup, ...],
        nodes: tuple[str, ...] = (),
        generation: str | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.node = node
        self.groups = [g.key for g in groups]
        self.nodes = frozenset(nodes) | {node}
        self.value = f"{node} {generation or int(time.time() * 1000)}"
        self.timeout = _check_timeout(settings)
        self._lease: _Lease | None = None
        self._owned: dict[str, int] = {}  # group -> mod_revision of our key
        # Groups refused or released here (and since when): readmitted when their key is free.
        # True: for etcd's sake (unreachable, no renewal), readmitted once etcd answers;
        # False: another node holds the key, readmitted once the key is free.
        self._refused: dict[str, tuple[float, bool]] = {}
        self._holders: dict[str, str | None] = {}  # group -> holder's value, as last read
        # group -> (seconds etcd said the holder's lease had left, trio time asked)
        self._foreign_ttl: dict[str, tuple[int, float]] = {}
        self._stale: list[int] = []  # leases given up, to revoke when etcd answers
        self._control: GroupControl | None = None
        self._changed = trio.Event()
        self._keeping = False
        self._checking = 0  # acquisitions under way
        self._failed_since = -math.inf  # trio time of the last failed request
        self._down_since = -math.inf  # trio time etcd was first found unreachable
        self._lost_told = False  # etcd-lost published for this outage
        self.healthy: bool | None = None
        self.unreachable_since: float | None = None  # wall time
        self.last_error: str | None = None
        self.last_renewal: float | None = None  # round trip of the last answered renewal, s
        self.counters = {
            "acquired": 0,
            "refusals": 0,
            "renewals": 0,
            "renew_failures": 0,
            "demotions": 0,
            "keys_deleted": 0,
        }

    # ------------------------------------------------------------------ reload

    def apply(self, settings: Settings) -> list[tuple[str, str]]:
        """Take *settings* (a reload), or, when a setting cannot change under a live
        lease, nothing: then ``(key, why)`` for each such setting."""
        old = self.settings
        refused = []
        for key, why in _RESTART:
            before, after = getattr(old, key), getattr(settings, key)
            if before != after:
                refused.append((key, why.format(old=before, new=after)))
        if refused:
            return refused
        self.settings = settings
        self.timeout = _check_timeout(settings)
        self.client.reconfigure(settings.endpoints, request_timeout=settings.request_timeout)
        log.info(
            "etcd settings applied: ttl %ss, renew every %gs, safety margin %gs, %s",
            settings.ttl,
            settings.renew_interval,
            settings.safety_margin,
            ", ".join(settings.endpoints),
        )
        self._poke()  # the demotion deadline follows a new safety_margin at once
        return []

    # ------------------------------------------------------------------ health

    def _ok(self, started: float) -> None:
        """A request sent at *started* (trio time) was answered."""
        if started < self._failed_since:
            return  # sent before a failure seen since: says nothing about now
        if self.healthy is False:
            since = _hms(self.unreachable_since) if self.unreachable_since else "?"
            log.warning("etcd reachable again (unreachable since %s)", since)
            if self._lost_told:
                self._publish("etcd-regained", f"etcd reachable again (unreachable since {since})")
        self.healthy, self.unreachable_since, self.last_error = True, None, None
        self._lost_told = False

    def _failed(self, exc: Exception) -> None:
        now = trio.current_time()
        self._failed_since = now
        self.last_error = str(exc)
        if self.healthy is not False:
            self.unreachable_since = time.time()
            self._down_since = now
            log.warning("etcd unreachable: %s", exc)
        self.healthy = False
        # The event only for an outage longer than an etcd election (measured: up to
        # 4.2 s, settings.WORST_ELECTION) or than a holder may go without a renewal: an
        # election is logged, not mailed.
        threshold = min(WORST_ELECTION, self.settings.demote_after)
        if not self._lost_told and now - self._down_since >= threshold:
            self._lost_told = True
            since = _hms(self.unreachable_since or time.time())
            self._publish("etcd-lost", f"etcd unreachable since {since}: {exc}")

    def _publish(self, kind: str, reason: str, group: str | None = None) -> None:
        if self._control is not None:
            self._control.publish(kind, group=group, reason=reason)

    def _poke(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # ------------------------------------------------------------------ the check

    def applies_to(self, group: ResourceGroup) -> bool:
        return True

    async def check(self, group: ResourceGroup) -> str | None:
        """Own the group's key (create-if-absent under our lease), or say who does."""
        self._checking += 1
        try:
            return await self._check(group)
        finally:
            self._checking -= 1

    async def _check(self, group: ResourceGroup) -> str | None:
        key = self.settings.key(group.key)
        deadline = trio.current_time() + self.settings.wait
        holder: KeyValue | None = None
        for _ in range(int(self.settings.wait / POLL) + 10):  # bounded by deadline too
            started = trio.current_time()
            try:
                lease = await self._ensure_lease(deadline)
                created, revision, holder = await self._create(key, lease, deadline)
            except EtcdUnavailable as exc:
                self._failed(exc)
                return self._refuse(group.key, f"etcd unreachable: {exc}", for_etcd=True)
            except EtcdError as exc:
                return self._refuse(group.key, f"etcd refused: {exc}", for_etcd=True)
            self._ok(started)
            if created:
                self._owned[group.key] = revision
                self._holders[group.key] = self.value
                self._refused.pop(group.key, None)
                self.counters["acquired"] += 1
                self._poke()
                return None
            if holder is None:
                continue  # gone between compare and read: try again at once
            self._holders[group.key] = holder.value
            owner = holder.value.split(" ", 1)[0]
            if holder.value == self.value and holder.lease == lease:
                self._owned[group.key] = holder.mod_revision
                self._refused.pop(group.key, None)
                self._poke()
                return None
            if owner == self.node:
                # Ours from an earlier lease or an earlier run of this node: no other
                # node can be using it, so it goes (if nobody touched it since).
                try:
                    await self.client.delete_if(key, holder.mod_revision, deadline=deadline)
                except EtcdError as exc:
                    return self._refuse(
                        group.key, f"cannot remove our stale key: {exc}", for_etcd=True
                    )
                continue
            if trio.current_time() + POLL >= deadline:
                break
            await trio.sleep(POLL)
        who = holder.value.split(" ", 1)[0] if holder is not None else "another node"
        return self._refuse(
            group.key, f"{group.key} is held by {who} in etcd (after {self.settings.wait:g}s)"
        )

    def _refuse(self, group: str, reason: str, *, for_etcd: bool = False) -> str:
        self._refused[group] = (trio.current_time(), for_etcd)
        self.counters["refusals"] += 1
        return reason

    async def _ensure_lease(self, deadline: float) -> int:
        lease = self._lease
        now = trio.current_time()
        if lease is not None and now < lease.sent + self.settings.demote_after - 1.0:
            return lease.id
        if lease is not None:
            # Old enough to be near its demotion: renew it first, or start a new one.
            try:
                if await self.client.keepalive(lease.id, deadline=deadline) > 0:
                    lease.sent = now
                    return lease.id
            except EtcdUnavailable:
                raise
            except EtcdError:
                pass
            self._drop_lease()
        sent = trio.current_time()
        lease_id, _ = await self.client.grant(self.settings.ttl, deadline=deadline)
        self._lease = _Lease(lease_id, sent)
        self._poke()
        return lease_id

    async def _create(
        self, key: str, lease: int, deadline: float
    ) -> tuple[bool, int, KeyValue | None]:
        created = await self.client.create(key, self.value, lease, deadline=deadline)
        return created.ok, created.revision, created.holder

    def _drop_lease(self) -> None:
        if self._lease is not None:
            self._stale.append(self._lease.id)
        self._lease = None
        self._owned.clear()
        self._poke()

    # ------------------------------------------------------------------ the listener

    async def handle(self, event: ClusterEvent) -> None:
        """A group released here: delete its key at once (a graceful move stays fast)."""
        if event.kind != "released" or event.node != self.node or event.group is None:
            return
        await self._let_go(event.group)

    async def _let_go(self, group: str) -> None:
        revision = self._owned.pop(group, None)
        if revision is None:
            return
        deadline = trio.current_time() + self.settings.request_timeout * 2
        try:
            if await self.client.delete_if(self.settings.key(group), revision, deadline=deadline):
                self.counters["keys_deleted"] += 1
            self._holders[group] = None
        except EtcdError as exc:
            log.info("could not delete the etcd key of %s (it goes with the lease): %s", group, exc)
        self._poke()

    # ------------------------------------------------------------------ background

    async def run(self, control: GroupControl) -> None:
        """Renew, demote, tidy up and readmit, until cancelled."""
        self._control = control
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._renew)
                nursery.start_soon(self._watch)
                nursery.start_soon(self._observe)
        finally:
            await self.client.aclose()

    def _held(self) -> frozenset[str]:
        return self._control.holding() if self._control is not None else frozenset()

    async def _renew(self) -> None:
        while True:
            lease = self._lease
            if lease is None:
                await self._changed.wait()
                continue
            sent = trio.current_time()
            deadline = sent + self.settings.renew_interval
            try:
                ttl = await self.client.keepalive(lease.id, deadline=deadline)
            except EtcdError as exc:
                self.counters["renew_failures"] += 1
                self._failed(exc)
                await trio.sleep(RETRY)
                continue
            self._ok(sent)
            if self._lease is not lease:
                continue  # given up meanwhile
            if ttl <= 0:
                await self._lease_gone(lease)
                continue
            self.counters["renewals"] += 1
            self.last_renewal = trio.current_time() - sent
            lease.sent = sent
            self._keeping = False
            self._poke()
            await trio.sleep_until(sent + self.settings.renew_interval)

    async def _lease_gone(self, lease: _Lease) -> None:
        """etcd says our lease is gone (it expired while etcd was out of reach: with
        ``on_etcd_lost = "keep"``). Take each held group's key again, or give it up."""
        self._lease = None
        self._owned.clear()
        held = sorted(self._held())
        log.warning("the etcd lease has gone; re-taking the keys of %s", ", ".join(held) or "-")
        deadline = trio.current_time() + self.settings.demote_after
        for group in held:
            try:
                new = await self._ensure_lease(deadline)
                created, revision, holder = await self._create(
                    self.settings.key(group), new, deadline
                )
            except EtcdError as exc:
                created, revision, holder = False, 0, None
                self._failed(exc)
            if created:
                self._owned[group] = revision
                continue
            who = holder.value.split(" ", 1)[0] if holder is not None else "etcd unreachable"
            self._demote(
                group,
                f"lost the etcd lease for {group}: its key is held by {who}",
                for_etcd=holder is None,
            )
        self._poke()

    def _demote_at(self) -> float:
        lease = self._lease
        if lease is None or not self._owned:
            return math.inf
        return lease.sent + self.settings.demote_after

    async def _watch(self) -> None:
        """Give the groups up at ``last renewal sent + ttl - safety_margin``."""
        while True:
            at = self._demote_at()
            changed = self._changed
            with trio.move_on_at(at):
                await changed.wait()
                continue
            if self._demote_at() > trio.current_time():
                continue
            held = sorted(self._owned)  # groups added by a reload included
            if self.settings.on_etcd_lost == "keep" and self._all_see_each_other():
                if not self._keeping:
                    self._keeping = True
                    log.warning(
                        "etcd unreachable since %s; keeping %s: every node sees every other "
                        '(on_etcd_lost = "keep")',
                        _hms(self.unreachable_since or time.time()),
                        ", ".join(held),
                    )
                await trio.sleep(RETRY)
                continue
            since = _hms(self.unreachable_since) if self.unreachable_since else "?"
            why = f"etcd unreachable since {since}" if self.healthy is False else "no renewal"
            self._drop_lease()
            for group in held:
                self._demote(group, f"lost the etcd lease for {group}: {why}")

    def _all_see_each_other(self) -> bool:
        return self._control is not None and self.nodes <= self._control.alive_nodes()

    def _demote(self, group: str, reason: str, *, for_etcd: bool = True) -> None:
        self.counters["demotions"] += 1
        self._owned.pop(group, None)
        self._refused[group] = (trio.current_time(), for_etcd)
        if self._control is not None:
            self._control.release(group, reason)

    async def _observe(self) -> None:
        """Every renew interval: read the keys (holders for status), delete the keys of
        groups no longer held here, readmit refused groups whose key is free, revoke
        leases given up, and hand back the lease when nothing is held."""
        while True:
            start = trio.current_time()
            deadline = start + self.settings.renew_interval
            try:
                await self._tidy(deadline)
            except EtcdError as exc:
                self._failed(exc)
            await trio.sleep_until(max(deadline, trio.current_time() + RETRY))

    async def _tidy(self, deadline: float) -> None:
        now = trio.current_time
        # The configured groups, and any group added since (a reload) that we own or refused.
        for group in dict.fromkeys([*self.groups, *self._owned, *self._refused]):
            started = trio.current_time()
            kv = await self.client.get(self.settings.key(group), deadline=deadline)
            self._ok(started)
            self._holders[group] = kv.value if kv is not None else None
            if kv is not None and kv.value != self.value and kv.lease:
                # Another node's lease: how long it has left (pulsectl status).
                asked = trio.current_time()
                left = await self.client.time_to_live(kv.lease, deadline=deadline)
                self._foreign_ttl[group] = (left, asked)
            else:
                self._foreign_ttl.pop(group, None)
            # What this node holds, asked now: an acquisition may have ended (and the
            # group started) while the requests above were under way.
            if group in self._owned and group not in self._held():
                await self._let_go(group)  # released (or its start failed) here
            elif group in self._refused:
                since, for_etcd = self._refused[group]
                free = kv is None or kv.value == self.value
                # Not before the core has taken the refusal in (it comes back through
                # the resource manager's inbox, a moment after check() returned).
                if not (free or for_etcd) or now() - since < self.settings.renew_interval:
                    continue
                del self._refused[group]
                why = "its etcd key is free" if free else "etcd answers again"
                log.info("%s may run here again: %s", group, why)
                if self._control is not None:
                    self._control.readmit(group)
        while self._stale:
            await self.client.revoke(self._stale[0], deadline=deadline)
            self._stale.pop(0)
        lease = self._lease
        # Nothing held nor being acquired (read again: the reads above took time).
        if lease is not None and not self._owned and not self._checking and not self._held():
            self._lease = None
            await self.client.revoke(lease.id, deadline=deadline)

    # ------------------------------------------------------------------ status

    def health(self) -> str:
        """``healthy``, ``unreachable since 12:00:01`` or ``not asked yet``."""
        if self.healthy is None:
            return "not asked yet"
        if self.healthy:
            return "healthy"
        since = _hms(self.unreachable_since) if self.unreachable_since else "?"
        keeping = " (keeping the groups: every node sees every other)" if self._keeping else ""
        return f"unreachable since {since}{keeping}"

    def _known_groups(self) -> list[str]:
        return list(dict.fromkeys([*self.groups, *self._owned, *self._refused, *self._holders]))

    def lease_left(self, group: str) -> float | None:
        """Seconds the lease under the group's key has left at least, as far as known:
        ours from our last answered renewal, another node's from etcd's last answer."""
        now = trio.current_time()
        lease = self._lease
        if group in self._owned and lease is not None:
            return max(0.0, lease.sent + self.settings.ttl - now)
        if group in self._foreign_ttl and self._holders.get(group):
            ttl, asked = self._foreign_ttl[group]
            return max(0.0, ttl - (now - asked))
        return None

    def group_status(self) -> dict[str, dict[str, str]]:
        """Per group, for ``pulsectl status``: the lease holder, its TTL left, etcd."""
        out = {}
        health = self.health()
        for group in self._known_groups():
            value = self._holders.get(group)
            left = self.lease_left(group)
            out[group] = {
                "lease holder": value.split(" ", 1)[0] if value else "none",
                "lease ttl left": "-" if left is None else f"{left:.1f}s",
                "etcd": health,
            }
        return out

    def statistics(self) -> dict[str, Any]:
        """For ``pulsectl plugins``: etcd's health, the lease and who holds each key;
        under ``groups``, what ``pulsectl status`` shows under each group."""
        lease = self._lease
        now = trio.current_time()
        return {
            "etcd": {True: "healthy", False: "unreachable", None: "not asked yet"}[self.healthy],
            "unreachable_since": _hms(self.unreachable_since) if self.unreachable_since else None,
            "endpoint": self.client.last_endpoint,
            "last_error": self.last_error,
            "lease": str(lease.id) if lease is not None else None,
            "ttl_left": round(max(0.0, lease.sent + self.settings.ttl - now), 1)
            if lease is not None
            else None,
            "demote_in": round(max(0.0, self._demote_at() - now), 1) if self._owned else None,
            "keeping_without_etcd": self._keeping,
            "holders": {
                g: (v.split(" ", 1)[0] if v else None) for g, v in sorted(self._holders.items())
            },
            "owned": sorted(self._owned),
            "refused": sorted(self._refused),
            "last_renewal_ms": None
            if self.last_renewal is None
            else round(self.last_renewal * 1000, 1),
            **self.counters,
            "groups": self.group_status(),
        }

    def metrics(self) -> list[Metric]:
        """The gate's figures for the metrics endpoint (``pulse_collect_metrics``)."""
        groups = self._known_groups()
        lease = self._lease
        now = trio.current_time()
        out = [
            Metric(
                name="pulse_etcd_reachable",
                kind="gauge",
                help="1 while etcd answers this node, 0 while it does not (or was not asked).",
                samples=(({}, self.healthy is True),),
            ),
            Metric(
                name="pulse_etcd_lease_held",
                kind="gauge",
                help="1 for each group whose etcd key this node holds under its lease.",
                samples=tuple(({"group": g}, g in self._owned) for g in groups),
            ),
            Metric(
                name="pulse_etcd_lease_ttl_seconds",
                kind="gauge",
                help="Seconds this node's lease has left at least (since its last renewal).",
                samples=()
                if lease is None
                else (({}, max(0.0, lease.sent + self.settings.ttl - now)),),
            ),
            Metric(
                name="pulse_etcd_last_renewal_seconds",
                kind="gauge",
                help="Round trip of the last lease renewal etcd answered.",
                samples=() if self.last_renewal is None else (({}, self.last_renewal),),
            ),
        ]
        for counter, help_text in _COUNTERS:
            out.append(
                Metric(
                    name=f"pulse_etcd_{counter}_total",
                    kind="counter",
                    help=help_text,
                    samples=(({}, self.counters[counter]),),
                )
            )
        return out


_COUNTERS = (
    ("acquired", "Group keys this node created in etcd (acquisitions let through)."),
    ("refusals", "Acquisitions refused here (the key held elsewhere, or etcd unreachable)."),
    ("renewals", "Lease renewals etcd answered."),
    ("renew_failures", "Lease renewals that failed (no answer, or an error)."),
    ("demotions", "Groups given up here because the lease could not be renewed."),
    ("keys_deleted", "Group keys deleted here after a release."),
)
