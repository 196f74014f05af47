"""Sequence numbers: what we sent (for retransmission) and what each peer sent us.

Heartbeat numbers every sequenced message per sender and generation
(docs/heartbeat.md#sequence-numbers); a receiver sorts each packet as in order,
duplicate, gap (asking for the missing ones, docs/heartbeat.md#retransmission), filling
a gap, or stale; and a sender keeps its last 500 messages to answer retransmission
requests. :class:`PeerStream` is one peer's side, :class:`History` ours. Both are pure:
the engine (:mod:`pulse.protocol.engine`) passes in the time, its random delays and its
counters.

A signed packet with a mutated sequence number or generation (a buggy or compromised
member) must not silence the real stream: a jump is remembered, and undone when the
real stream continues within a couple of dead times (docs/hostile-input.md).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field

from pulse.protocol.events import Log, Output
from pulse.wire.message import Message

#: Sent sequenced messages kept for retransmission (MAXMSGHIST).
HISTORY_SIZE = 500
#: More missing packets than this from one node: forget the gaps and resynchronise.
MAX_MISSING = 250
#: Packets re-sent at most per NS_rexmit request.
MAX_REXMIT_BATCH = 50

Counters = collections.Counter[str]


@dataclass(frozen=True, slots=True)
class Track:
    """A peer's stream as it was before a jump (see :meth:`PeerStream.remember_jump`)."""

    generation: int | None
    last_seq: int | None
    last_status_seq: int | None
    missing: frozenset[int]
    at: float


@dataclass(slots=True)
class PeerStream:
    """Per-peer protocol state (sequence tracking, identity, acknowledgements)."""

    name: str
    ping: bool
    ack_trigger: int
    generation: int | None = None
    uuid: bytes | None = None
    last_seq: int | None = None
    tracked_generation: int | None = None  # the generation last_seq belongs to
    # After the peer was declared dead its next packet is taken as in-order.
    resync: bool = False
    # Its last seq when it was declared dead: a newer status with the same
    # generation is a healed partition, an older packet is stale.
    seq_at_death: int | None = None
    missing: set[int] = field(default_factory=set)
    rexmit_due: dict[int, float] = field(default_factory=dict)
    last_status_seq: int | None = None
    protocol: bool | None = None  # None until its first status
    acked: int | None = None  # highest of our seqs it acknowledged
    replay_logged: set[int] = field(default_factory=set)
    # What a jump replaced (a later generation, or a seq more than MAX_MISSING ahead) and
    # when: a new packet that continues it within the jump window shows the jump was a
    # mutated packet, and brings the real stream back (see undo_jump).
    before_jump: Track | None = None
    # Its highest seq in ``generation`` as a previous run of this node knew it
    # (identity.py): packets of that generation up to it are replays
    # (docs/hostile-input.md).
    floor: int | None = None

    def reset_tracking(self) -> None:
        self.tracked_generation = None
        self.last_seq = None
        self.resync = False
        self.missing.clear()
        self.rexmit_due.clear()
        self.last_status_seq = None
        self.acked = None
        self.seq_at_death = None

    def died(self) -> None:
        """Declared dead: forget its gaps; its next packet starts the stream again."""
        self.missing.clear()
        self.rexmit_due.clear()
        self.resync = True
        self.seq_at_death = self.last_seq if self.last_seq is not None else self.floor

    def track(
        self,
        seq: int,
        hg: int,
        now: float,
        *,
        rexmit_delay: Callable[[], float],
        jump_window: float,
        counters: Counters,
    ) -> tuple[str, list[Output]]:
        """Step 5 of docs/heartbeat.md#sequence-numbers: in order, duplicate, gap, fill, stale."""
        out: list[Output] = []
        if self.last_seq is None or self.resync:
            before = self.seq_at_death if self.seq_at_death is not None else self.last_seq
            if self.resync and before is not None and seq > before + MAX_MISSING:
                self.remember_jump(self.snapshot(now, last_seq=before), jump_window)
            self.tracked_generation = hg
            self.last_seq = seq
            self.resync = False
            self.missing.clear()
            self.rexmit_due.clear()
            return "in-order", out
        last = self.last_seq
        if seq == last + 1:
            self.last_seq = seq
            return "in-order", out
        if seq == last:
            return "duplicate", out
        if seq > last:
            lost = seq - last - 1
            self.last_seq = seq
            if lost + len(self.missing) > MAX_MISSING:
                self.remember_jump(self.snapshot(now, last_seq=last), jump_window)
                self.missing.clear()
                self.rexmit_due.clear()
                out.append(Log(level="ERROR", text=f"lost a lot of packets from {self.name}!"))
                counters["resync"] += 1
                return "gap", out
            out.append(
                Log(level="WARN", text=f"{lost} lost packet(s) for [{self.name}] [{last}:{seq}]")
            )
            for missing in range(last + 1, seq):
                self.missing.add(missing)
                self.rexmit_due[missing] = now + rexmit_delay()
            return "gap", out
        if seq in self.missing:
            self.missing.discard(seq)
            self.rexmit_due.pop(seq, None)
            if not self.missing:
                out.append(Log(level="info", text=f"No pkts missing from {self.name}!"))
            return "filled", out
        return "stale", out

    def replay(self, hg: int, known: int, counters: Counters) -> list[Output]:
        """A packet of an older generation (or below the floor): dropped, logged once."""
        counters["replay"] += 1
        if hg in self.replay_logged or len(self.replay_logged) >= 16:
            return []
        self.replay_logged.add(hg)
        text = (
            f"should_drop_message: attempted replay attack [{self.name}]? "
            f"[gen = {hg}, curgen = {known}]"
        )
        return [Log(level="WARN", text=text)]

    # ------------------------------------------------------------------ jumps

    def snapshot(self, now: float, *, last_seq: int | None = None) -> Track:
        return Track(
            generation=self.tracked_generation if last_seq is not None else self.generation,
            last_seq=self.last_seq if last_seq is None else last_seq,
            last_status_seq=self.last_status_seq,
            missing=frozenset(self.missing),
            at=now,
        )

    def remember_jump(self, track: Track, jump_window: float) -> None:
        # A second jump before the first is settled keeps the stream before the first:
        # the real one, if they were both mutated packets.
        before = self.before_jump
        if before is None or track.at - before.at > jump_window:
            self.before_jump = track

    def continues(self, hg: int, seq: int, now: float, jump_window: float) -> bool:
        """Whether a packet continues the stream a jump replaced (see before_jump)."""
        before = self.before_jump
        if before is None or before.last_seq is None or hg != before.generation:
            return False
        if now - before.at > jump_window:
            self.before_jump = None
            return False
        if hg == self.tracked_generation and self.last_seq is not None and seq > self.last_seq:
            return False  # the current stream takes it as it is
        return before.last_seq < seq <= before.last_seq + MAX_MISSING or seq in before.missing

    def undo_jump(
        self, now: float, *, rexmit_delay: Callable[[], float], counters: Counters
    ) -> list[Output]:
        """A mutated packet made the peer's stream jump (a signed packet of a buggy or
        compromised member): go back to the real stream, which just proved alive."""
        before = self.before_jump
        assert before is not None and before.last_seq is not None  # see continues
        self.before_jump = None
        self.generation = self.tracked_generation = before.generation
        self.last_seq = before.last_seq
        self.last_status_seq = before.last_status_seq
        self.resync = False
        self.missing = set(before.missing)
        self.rexmit_due = {seq: now + rexmit_delay() for seq in sorted(before.missing)}
        if self.seq_at_death is not None:  # declared dead since: what is new counts
            self.seq_at_death = min(before.missing, default=before.last_seq + 1) - 1
        counters["jump-undone"] += 1
        text = (
            f"packets from {self.name} continue its stream from before a jump to another "
            f"generation or sequence number: the jump was false (generation {before.generation}, "
            f"seq {before.last_seq})"
        )
        return [Log(level="WARN", text=text)]

    def mark(self, now: float, jump_window: float) -> tuple[int, int] | None:
        """(generation, highest seq) a restarted node must not take for new. A jump
        still undoable at *now* counts from before it: a mutated packet must not raise
        the mark."""
        before = self.before_jump
        if before is not None and now - before.at > jump_window:
            before = None
        if before is not None and before.generation is not None and before.last_seq is not None:
            return before.generation, before.last_seq
        if self.tracked_generation is not None and self.last_seq is not None:
            return self.tracked_generation, self.last_seq
        if self.generation is not None and self.floor is not None:
            return self.generation, self.floor
        return None

    # ------------------------------------------------------------------ retransmission

    def due_requests(self, now: float, period: float) -> list[int]:
        """The missing seqs whose retransmission request is due; re-armed for *period*."""
        due = sorted(seq for seq, when in self.rexmit_due.items() if when <= now)
        for seq in due:
            self.rexmit_due[seq] = now + period
        return due

    def lost_for_good(self, seq: int) -> list[Output]:
        """The peer answered NS_nak_rexmit: it no longer has *seq*."""
        if seq not in self.missing:
            return []
        self.missing.discard(seq)
        self.rexmit_due.pop(seq, None)
        return [Log(level="ERROR", text=f"Irretrievably lost packet: node {self.name} seq {seq}")]


@dataclass(slots=True)
class _Sent:
    message: Message
    last_rexmit: float | None = None


class History:
    """Our last :data:`HISTORY_SIZE` sequenced messages, for retransmission requests."""

    def __init__(self) -> None:
        self.seq = 0  # the last sequence number we used
        self._sent: dict[int, _Sent] = {}

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def record(self, seq: int, message: Message) -> None:
        self._sent[seq] = _Sent(message=message)
        self._sent.pop(seq - HISTORY_SIZE, None)

    def answer(
        self, first: int, last: int, *, acked: int | None, now: float, min_gap: float
    ) -> list[tuple[int, Message | str]]:
        """What to answer an ``NS_rexmit firstseq..lastseq``: each message to send again,
        or the reason a seq is gone (for an ``NS_nak_rexmit``), in seq order. A message
        re-sent less than *min_gap* ago is not sent again."""
        out: list[tuple[int, Message | str]] = []
        lowest = max(1, self.seq - HISTORY_SIZE + 1)
        for seq in range(first, min(last, first + MAX_REXMIT_BATCH - 1) + 1):
            if seq > self.seq:
                break
            if acked is not None and seq <= acked:
                continue
            sent = self._sent.get(seq)
            if sent is None:
                out.append((seq, "seqno too low" if seq < lowest else "seqno not found"))
                continue
            if sent.last_rexmit is not None and now - sent.last_rexmit < min_gap:
                continue
            sent.last_rexmit = now
            out.append((seq, sent.message))
        return out


__all__ = ["HISTORY_SIZE", "MAX_MISSING", "MAX_REXMIT_BATCH", "History", "PeerStream", "Track"]
