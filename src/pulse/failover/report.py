"""The ``resource`` message dialect: what a node tells the others it holds.

Heartbeat's nodes say what they hold in classes relative to the sender (``rsc_hold`` =
``all``/``local``/``foreign``/``none``; docs/heartbeat.md#start-up and #peer-death),
which is exact for two nodes only. pulse sends the same message with its own fields next to
Heartbeat's (Heartbeat ignores fields it does not know):

* ``pulse_hold``: the exact group keys it claims (starting, running, stopping, failed);
* ``pulse_standby``: groups it refuses unless nobody else can run them (standby, ipfail);
* ``pulse_failed``: groups whose start failed there (refused outright);
* ``pulse_leaving``: 1 while it shuts down;
* ``pulse_takeover``: groups it asked to take over (``pulsectl takeover``);
* ``pulse_keep``: groups claimed twice that it keeps and has announced again (a healed
  partition, docs/failover.md);
* ``pulse_stuck``: groups FAILED there (a stop failed): a peer keeps them as held by it
  even after its ``shutdone``, so that they are only taken over once it is declared
  dead, through the fencing gate when one is configured;
* ``pulse_maintenance``: 1 while maintenance mode is on (``pulsectl maintenance``), so
  that a node starting later learns it (docs/resources.md#cleanup-and-maintenance);
* ``pulse_fail_counts``: this node's fail counts above zero, ``RESOURCE=COUNT`` words
  (``apache2=2 ocf:heartbeat:Dummy=1``; a resource is one haresources word, without
  whitespace, and may hold ``=`` itself: the count follows the last one). Absent when
  every count is zero, so that a node nothing failed on sends what it sent before
  (docs/resources.md#cleanup-and-maintenance);
* ``pulse_rq=1``: "tell me what you hold" (sent to a peer back from the dead).

Pure functions and a frozen :class:`Report`; :class:`pulse.failover.policy.Scheduler`
decides when to send one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pulse.config.model import ResourceGroup
from pulse.failover.actions import Peer
from pulse.wire.message import Message, ascii_int

# Sent last by a node that has released everything on a graceful stop.
SHUTDONE = Message.of(("t", "shutdone"), ("st", "dead"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """What this node tells the others; sent again only when it changes."""

    claimed: frozenset[str]
    refused: frozenset[str]
    failed: frozenset[str]
    keeping: frozenset[str]
    takeovers: frozenset[str]
    stable: bool
    leaving: bool
    maintenance: bool = False
    stuck: frozenset[str] = frozenset()  # FAILED here: a stop failed
    fail_counts: tuple[tuple[str, int], ...] = ()  # (resource, count > 0), sorted

    def message(
        self,
        groups: Mapping[str, ResourceGroup],
        local: str,
        *,
        without: frozenset[str] = frozenset(),
        stable: bool | None = None,
        info: str | None = None,
        request: bool = False,
    ) -> Message:
        """The ``resource`` message (``without``: groups left out, as being given away)."""
        claimed = self.claimed - without
        if stable is None:
            stable = self.stable and not self.leaving
        local_keys = {k for k in claimed if groups[k].node == local}
        foreign = claimed - local_keys
        if local_keys and foreign:
            rsc = "all"
        else:
            rsc = "local" if local_keys else "foreign" if foreign else "none"
        fields: list[tuple[str, str]] = [
            ("t", "resource"),
            ("rsc_hold", rsc),
            ("rtype", "full"),
            ("isstable", "1" if stable else "0"),
        ]
        if self.leaving:
            fields.append(("info", "shutdown"))
        elif info is not None:
            fields.append(("info", info))
        fields += [
            ("pulse_hold", _words(claimed)),
            ("pulse_standby", _words(self.refused)),
            ("pulse_failed", _words(self.failed)),
            ("pulse_leaving", "1" if self.leaving else "0"),
            ("pulse_takeover", _words(self.takeovers)),
            ("pulse_maintenance", "1" if self.maintenance else "0"),
        ]
        if self.stuck:
            fields.append(("pulse_stuck", " ".join(sorted(self.stuck))))
        if self.keeping:
            fields.append(("pulse_keep", " ".join(sorted(self.keeping & claimed))))
        if self.fail_counts:
            fields.append(("pulse_fail_counts", format_fail_counts(self.fail_counts)))
        if request:
            fields.append(("pulse_rq", "1"))  # "tell me what you hold", once
        return Message.of(*fields)


def learn(
    peer: Peer, msg: Message, groups: Mapping[str, ResourceGroup], *, src: str
) -> frozenset[str] | None:
    """Apply *src*'s report to what we know of it.

    Returns the groups it asked to take over when the report lists them (a pulse
    peer), else None.
    """
    peer.reported = True
    takeovers: frozenset[str] | None = None
    hold = msg.get("pulse_hold")
    if hold is not None:
        peer.pulse = True
        peer.hold = keys_in(hold, groups)
        peer.standby = keys_in(msg.get("pulse_standby"), groups)
        peer.failed = keys_in(msg.get("pulse_failed"), groups)
        peer.leaving = msg.get("pulse_leaving") == "1"
        peer.keeping = keys_in(msg.get("pulse_keep"), groups)
        peer.maintenance = msg.get("pulse_maintenance") == "1"
        peer.stuck = keys_in(msg.get("pulse_stuck"), groups)
        peer.fail_counts = parse_fail_counts(msg.get("pulse_fail_counts"))
        if "pulse_takeover" in msg:
            takeovers = keys_in(msg.get("pulse_takeover"), groups)
    else:  # a Heartbeat peer: classes relative to it (2-node assumption)
        cls = msg.get("rsc_hold") or "none"
        keys = set(class_keys(groups, cls, node=src)) if cls != "none" else set()
        if msg.get("rtype") == "full" or cls == "none":
            peer.hold = frozenset(keys)
        else:
            peer.hold = peer.hold | keys
        peer.leaving = msg.get("info") == "shutdown"
    if msg.get("isstable") == "1" or (hold is None and msg.get("info") == "mach_down"):
        peer.stable = True
    return takeovers


def keys_in(text: str | None, groups: Mapping[str, ResourceGroup]) -> frozenset[str]:
    """The known group keys in a space-separated field."""
    return frozenset(k for k in (text or "").split() if k in groups)


def class_keys(groups: Mapping[str, ResourceGroup], cls: str, *, node: str) -> list[str]:
    """Group keys of a Heartbeat class (``all``/``local``/``foreign``) relative to *node*."""
    if cls == "all":
        return list(groups)
    if cls == "local":
        return [k for k, g in groups.items() if g.node == node]
    if cls == "foreign":
        return [k for k, g in groups.items() if g.node != node]
    return []


def class_of(groups: Mapping[str, ResourceGroup], keys: frozenset[str], *, node: str) -> str:
    """The smallest Heartbeat class (relative to *node*) covering *keys*."""
    local = {k for k in keys if groups[k].node == node}
    if local == keys:
        return "local"
    if not local:
        return "foreign"
    return "all"


def format_fail_counts(counts: tuple[tuple[str, int], ...]) -> str:
    """``apache2=2 ocf:heartbeat:Dummy=1``: the ``pulse_fail_counts`` field."""
    return " ".join(f"{resource}={count}" for resource, count in counts)


def parse_fail_counts(text: str | None) -> dict[str, int]:
    """Resource -> count from a ``pulse_fail_counts`` field (absent: none). Words that are
    not ``RESOURCE=COUNT`` with a count above zero are skipped: a peer's report is data."""
    counts: dict[str, int] = {}
    for word in (text or "").split():
        resource, _, count = word.rpartition("=")
        value = ascii_int(count, 9)  # 1 to 9 ASCII digits: not "²", not 5000 digits
        if resource and value is not None and value > 0:
            counts[resource] = value
    return counts


def message_order(msg: Message) -> tuple[int, int] | None:
    """(generation, sequence number) of a sequenced message, None if it has none."""
    try:
        return int(msg.get("hg") or "", 16), int(msg.get("seq") or "", 16)
    except ValueError:
        return None


def _words(keys: frozenset[str]) -> str:
    return " ".join(sorted(keys)) or " "


__all__ = [
    "SHUTDONE",
    "Report",
    "class_keys",
    "class_of",
    "format_fail_counts",
    "keys_in",
    "learn",
    "message_order",
    "parse_fail_counts",
]
