"""Fault stories and cluster invariants, shared by the invariant tests of both layers.

* tests/unit/cluster_sim.py runs the stories over the pure cores (the protocol engine
  and the scheduler) in a discrete-event simulator: thousands of examples;
* tests/integration/test_daemon_invariants.py runs them over whole daemons under
  trio's ``MockClock`` and ``pulse.testing.FakeNetwork``: fewer examples.

A story is a :class:`Params` (the cluster) and a list of steps (faults, commands,
waits; durations in keepalives so that a story reads the same at 100 ms / 500 ms and
at 1 s / 3 s). :class:`Invariants` checks safety, liveness and stability over any
*world* that shows the time, the running nodes' schedulers and whether the network is
whole; the bounds it allows after a fault are computed and explained below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import ClassVar, Protocol

from hypothesis import strategies as st

from pulse.config.model import (
    AuthKey,
    AuthKeys,
    AuthMethod,
    AutoFailback,
    BcastMedium,
    Config,
    ResourceGroup,
    ResourceSpec,
    Timing,
)
from pulse.failover.policy import CLAIMED, GroupState, Scheduler
from pulse.protocol.engine import STARTUP_DT_BOOST_MS

NAMES = ("prime", "calc", "spare", "extra")
LINK = "eth0"


class InvariantViolation(AssertionError):
    pass


# ----------------------------------------------------------------------------- parameters


@dataclass(frozen=True, slots=True)
class Params:
    """One cluster: nodes, timers (ms), policy, groups (key -> preferred node)."""

    nodes: int = 2
    keepalive_ms: int = 100
    deadtime_ms: int = 500
    policy: AutoFailback = AutoFailback.ON
    groups: int = 2
    start_ka: float = 0.5  # a start takes this many keepalives
    stop_ka: float = 0.5
    seed: int = 0

    @property
    def names(self) -> tuple[str, ...]:
        return NAMES[: self.nodes]

    @property
    def keepalive(self) -> float:
        return self.keepalive_ms / 1000

    @property
    def deadtime(self) -> float:
        return self.deadtime_ms / 1000

    @property
    def initdead(self) -> float:
        return 2 * self.deadtime

    @property
    def max_delay(self) -> float:
        """The largest one-way delay (base + jitter) the scenarios may choose."""
        return MAX_DELAY_KA * self.keepalive

    def group_keys(self) -> list[tuple[str, str]]:
        """vip1 prefers the first node, vip2 the last, vip3 the second."""
        names = self.names
        prefs = [names[0], names[-1], names[1 % len(names)]]
        return [(f"vip{i + 1}", prefs[i]) for i in range(self.groups)]

    def config(self) -> Config:
        return Config(
            nodes=self.names,
            media=(BcastMedium(interface=LINK),),
            auth=AuthKeys(outbound=1, keys=(AuthKey(index=1, method=AuthMethod.CRC, key=None),)),
            timing=Timing(
                keepalive=self.keepalive_ms,
                deadtime=self.deadtime_ms,
                warntime=self.deadtime_ms // 2,
                initdead=round(self.initdead * 1000),
                deadping=self.deadtime_ms,
            ),
            groups=tuple(
                ResourceGroup(
                    node=pref,
                    resources=(ResourceSpec(raw=key, agent="Fake", args=(key,)),),
                )
                for key, pref in self.group_keys()
            ),
            auto_failback=self.policy,
        )

    def __repr__(self) -> str:
        return (
            f"Params(nodes={self.nodes}, keepalive_ms={self.keepalive_ms}, "
            f"deadtime_ms={self.deadtime_ms}, policy=AutoFailback.{self.policy.name}, "
            f"groups={self.groups}, start_ka={self.start_ka}, stop_ka={self.stop_ka}, "
            f"seed={self.seed})"
        )


#: Delays (base + jitter) stay below this many keepalives: a LAN, not a WAN.
MAX_DELAY_KA = 0.3


# ----------------------------------------------------------------------------- bounds
#
# Every bound is in seconds, computed from the cluster's timers, and says why.


def round_trip(p: Params) -> float:
    return 2 * p.max_delay


def safety_settle(p: Params) -> float:
    """After the network is whole again (every cut healed, no loss, nobody frozen), how
    long two nodes may still both claim a group.

    * one keepalive (+ delay) until each side hears the other's next status and sees it
      alive again (docs/failover.md, "A healed partition");
    * a round trip: the resource reports (with the ``pulse_rq`` request) cross;
    * one keepalive: the node that is not the keeper waits for the keeper's
      ``pulse_keep`` report or one keepalive before releasing (issue 9, fix b);
    * 1.5 keepalives of grace a thawed node gives its peers before declaring anyone
      dead (issue 9, fix c), which can delay the first report;
    * the stop of the releasing node (a STOPPING group is still claimed), and a start
      that was already under way (a STARTING group is only released once started);
    * another round trip of slack for retransmissions of reports lost just before.
    """
    ka = p.keepalive
    return (
        ka
        + p.max_delay
        + round_trip(p)
        + ka
        + 1.5 * ka
        + (p.start_ka + p.stop_ka) * ka
        + round_trip(p)
    )


def liveness_bound(p: Params) -> float:
    """After the last fault or command (a crash, a heal, a thaw, standby, a failed
    start...), how long a group may stay without a node running it while some node
    could run it and the network is whole.

    * deadtime until a crashed holder is declared dead, plus the start-up boost
      (``STARTUP_DT_BOOST_MS`` in src/pulse/protocol/engine.py) a node advertises in its first
      seconds, or initdead for a node starting next to dead peers;
    * four keepalives for comms-up, the ``starting``/``resource`` exchange, and the
      one-keepalive wait of a dual claim;
    * a stop on the old holder then a start on the new one;
    * two round trips of delay.
    """
    ka = p.keepalive
    detect = max(p.deadtime + STARTUP_DT_BOOST_MS / 1000, p.initdead)
    return detect + 4 * ka + (p.start_ka + p.stop_ka) * ka + 2 * round_trip(p)


# ----------------------------------------------------------------------------- steps
#
# A scenario is a list of steps. Durations are in keepalives so that the same story
# reads the same at 100 ms / 500 ms and at 1 s / 3 s.


class _Step:
    """A step prints as its ``TEXT`` filled with its fields (the story's words)."""

    __slots__ = ()
    TEXT: ClassVar[str] = ""

    def __str__(self) -> str:
        return self.TEXT.format_map({f.name: getattr(self, f.name) for f in fields(self)})


@dataclass(frozen=True, slots=True)
class Wait(_Step):
    TEXT: ClassVar[str] = "wait {keepalives:g} keepalives"
    keepalives: float


@dataclass(frozen=True, slots=True)
class Cut(_Step):
    """Neither of a and b hears the other, for a while."""

    TEXT: ClassVar[str] = "cut {a} <-> {b} for {keepalives:g} keepalives"

    a: str
    b: str
    keepalives: float


@dataclass(frozen=True, slots=True)
class OneWay(_Step):
    """``dst`` does not hear ``src`` (``src`` still hears ``dst``), for a while."""

    TEXT: ClassVar[str] = "{dst} stops hearing {src} for {keepalives:g} keepalives"

    src: str
    dst: str
    keepalives: float


@dataclass(frozen=True, slots=True)
class Isolate(_Step):
    """``node``'s link is down: nobody hears it, it hears nobody."""

    TEXT: ClassVar[str] = "{node}'s link down for {keepalives:g} keepalives"

    node: str
    keepalives: float


@dataclass(frozen=True, slots=True)
class Unplug(_Step):
    """``node``'s own interface is down: as :class:`Isolate`, and its sends fail, so after
    a keepalive the daemon tells its scheduler it is cut off (``events.CutOff``)."""

    TEXT: ClassVar[str] = "{node}'s cable pulled for {keepalives:g} keepalives"

    node: str
    keepalives: float


@dataclass(frozen=True, slots=True)
class Loss(_Step):
    """Packets from ``src`` to ``dst`` (``None``: every pair) lost at ``percent``."""

    src: str | None
    dst: str | None
    percent: int
    keepalives: float

    def __str__(self) -> str:
        where = "everywhere" if self.src is None else f"{self.src} -> {self.dst}"
        return f"{self.percent}% loss {where} for {self.keepalives:g} keepalives"


@dataclass(frozen=True, slots=True)
class Delay(_Step):
    """Every packet takes ``base_ms`` plus up to ``jitter_ms`` (reordering), for a while."""

    TEXT: ClassVar[str] = "delay {base_ms} ms + jitter {jitter_ms} ms for {keepalives:g} keepalives"

    base_ms: int
    jitter_ms: int
    keepalives: float


@dataclass(frozen=True, slots=True)
class Freeze(_Step):
    """SIGSTOP for a while; on SIGCONT the queue first, or the timers first."""

    node: str
    keepalives: float
    queue_first: bool

    def __str__(self) -> str:
        first = "its queued packets" if self.queue_first else "its timers"
        return f"freeze {self.node} for {self.keepalives:g} keepalives (on thaw: {first} first)"


@dataclass(frozen=True, slots=True)
class Crash(_Step):
    TEXT: ClassVar[str] = "crash {node}"
    node: str


@dataclass(frozen=True, slots=True)
class Restart(_Step):
    """Start a crashed node again, with the next generation (no-op if it runs)."""

    TEXT: ClassVar[str] = "restart {node}"

    node: str


@dataclass(frozen=True, slots=True)
class Standby(_Step):
    TEXT: ClassVar[str] = "pulsectl standby {what} on {node}"
    node: str
    what: str


@dataclass(frozen=True, slots=True)
class Takeover(_Step):
    TEXT: ClassVar[str] = "pulsectl takeover {what} on {node}"
    node: str
    what: str


@dataclass(frozen=True, slots=True)
class FailStart(_Step):
    """The next start of ``group`` on ``node`` fails (cleanly rolled back)."""

    TEXT: ClassVar[str] = "next start of {group} on {node} will fail"

    node: str
    group: str


@dataclass(frozen=True, slots=True)
class FailStop(_Step):
    """The next stop of ``group`` on ``node`` fails (the group becomes FAILED there)."""

    TEXT: ClassVar[str] = "next stop of {group} on {node} will fail"

    node: str
    group: str


Step = (
    Wait
    | Cut
    | OneWay
    | Isolate
    | Unplug
    | Loss
    | Delay
    | Freeze
    | Crash
    | Restart
    | Standby
    | Takeover
    | FailStart
    | FailStop
)


def directed_pairs(
    step: Cut | OneWay | Isolate | Unplug | Loss, names: tuple[str, ...]
) -> list[tuple[str, str]]:
    """The (sender, receiver) pairs a network fault affects."""
    if isinstance(step, Cut):
        return [(step.a, step.b), (step.b, step.a)]
    if isinstance(step, OneWay):
        return [(step.src, step.dst)]
    if isinstance(step, Isolate | Unplug):
        others = [n for n in names if n != step.node]
        return [(step.node, o) for o in others] + [(o, step.node) for o in others]
    if step.src is None or step.dst is None:
        return [(a, b) for a in names for b in names if a != b]
    return [(step.src, step.dst)]


# ----------------------------------------------------------------------------- invariants


class Node(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def sched(self) -> Scheduler: ...
    @property
    def frozen(self) -> bool: ...


class World(Protocol):
    """What the invariants look at: the simulator, or a cluster of whole daemons."""

    @property
    def p(self) -> Params: ...
    @property
    def now(self) -> float: ...
    @property
    def nodes(self) -> Mapping[str, Node]: ...
    def healthy(self) -> bool:
        """No cut, no loss, nobody frozen (a crashed node is just gone)."""
        ...

    def pair_healthy(self, a: str, b: str) -> bool:
        """a and b hear each other without loss, and neither is frozen."""
        ...


class Invariants:
    """Safety, liveness and stability, checked after every event of a :class:`World`."""

    def __init__(self, sim: World) -> None:
        self.sim = sim
        self.healthy_since: float | None = 0.0
        self.last_cause = 0.0  # the cluster's boot counts as a cause
        self.last_cause_text = "boot"
        # For auto_failback off: restarts are no reason to move a group.
        self.last_non_restart_cause = 0.0
        self.down_since: dict[str, float | None] = {}
        self.safety_settle = safety_settle(sim.p)
        self.liveness_bound = liveness_bound(sim.p)
        self.keys = [key for key, _ in sim.p.group_keys()]
        self.pair_since: dict[tuple[str, str, str], float] = {}  # (group, a, b) -> since

    # ------------------------------------------------------------ bookkeeping

    def health_changed(self) -> None:
        """Call after every change of the network or of a node's freezing."""
        healthy = self.sim.healthy()
        if healthy and self.healthy_since is None:
            self.healthy_since = self.sim.now
        elif not healthy:
            self.healthy_since = None

    def cause(self, text: str, *, restart: bool = False) -> None:
        self.last_cause = self.sim.now
        self.last_cause_text = text
        if not restart:
            self.last_non_restart_cause = self.sim.now

    def released(self, node: Node, key: str, reason: str) -> None:
        """Stability: a group only moves (is released) for a cause. Call when *node*'s
        scheduler decides to release *key*."""
        sim = self.sim
        p = sim.p
        now = sim.now
        window = self.liveness_bound
        healthy_for = None if self.healthy_since is None else now - self.healthy_since
        calm = healthy_for is not None and healthy_for > window
        if calm and now - self.last_cause > window:
            self.fail(
                f"STABILITY: {node.name} released {key} at t={now:.3f} with no fault,"
                f" command or restart in the last {window:.3f}s ({reason});"
                f" last cause: {self.last_cause_text} at t={self.last_cause:.3f}"
            )
        if p.policy is AutoFailback.OFF and calm and now - self.last_non_restart_cause > window:
            sched = node.sched
            others = [c for c in sched.claimants(key) if c != node.name]
            asked = sched.takeover_pref.get(key) not in (None, node.name)
            if not (key in sched.refused or sched.leaving or asked or others):
                self.fail(
                    f"AUTO_FAILBACK OFF: {node.name} released {key} at t={now:.3f} although it"
                    f" was not asked to, not in standby, and nobody else claimed it"
                    f" ({reason})"
                )

    def fail(self, text: str) -> None:
        raise InvariantViolation(text)

    # ------------------------------------------------------------ checks

    def check(self) -> None:
        sim = self.sim
        now = sim.now
        if self.healthy_since is not None and now - self.healthy_since >= self.safety_settle:
            self._check_safety()
        self._check_pairs(now)
        self._check_liveness(now)

    def _check_pairs(self, now: float) -> None:
        """Two nodes that hear each other and both see the other alive must not both run a
        group for longer than ``safety_settle``, whatever the rest of the cluster does."""
        nodes = self.sim.nodes
        seen: set[tuple[str, str, str]] = set()
        for key in self.keys:
            running = sorted(
                n for n, node in nodes.items() if node.sched.mine[key].state is GroupState.RUNNING
            )
            for i, a in enumerate(running):
                for b in running[i + 1 :]:
                    sa, sb = nodes[a].sched, nodes[b].sched
                    if not (
                        sa.peers[b].alive and sb.peers[a].alive and self.sim.pair_healthy(a, b)
                    ):
                        continue
                    seen.add((key, a, b))
                    since = self.pair_since.setdefault((key, a, b), now)
                    if now - since > self.safety_settle:
                        beliefs = "; ".join(self._belief(n, key) for n in sorted(nodes))
                        self.fail(
                            f"SAFETY (pair): {a} and {b} both run {key} at t={now:.3f} and have"
                            f" seen each other alive over a whole link since t={since:.3f}"
                            f" (bound {self.safety_settle:.3f}s). Beliefs: {beliefs}"
                        )
        for stale in set(self.pair_since) - seen:
            del self.pair_since[stale]

    def _states(self, key: str) -> dict[str, GroupState]:
        return {n: node.sched.mine[key].state for n, node in self.sim.nodes.items()}

    def _check_safety(self) -> None:
        sim = self.sim
        for key in self.keys:
            states = self._states(key)
            if GroupState.FAILED in states.values():
                continue  # a failed stop: claimed until an administrator clears it
            claimants = sorted(n for n, s in states.items() if s in CLAIMED)
            if len(claimants) > 1:
                beliefs = "; ".join(self._belief(n, key) for n in sorted(sim.nodes))
                self.fail(
                    f"SAFETY: {key} claimed by {', '.join(claimants)} at t={sim.now:.3f},"
                    f" {sim.now - (self.healthy_since or 0):.3f}s after the network was whole"
                    f" (bound {safety_settle(sim.p):.3f}s). Beliefs: {beliefs}"
                )

    def _belief(self, name: str, key: str) -> str:
        node = self.sim.nodes[name]
        s = node.sched
        peers = ", ".join(
            f"{peer}:{'alive' if rec.alive else 'dead'}"
            f"{'/stable' if rec.stable else ''}"
            f"{'/holds' if key in rec.hold else ''}"
            for peer, rec in s.peers.items()
        )
        return (
            f"{name} [{s.mine[key].state}{', stable' if s.stable else ', not stable'}"
            f"{', frozen' if node.frozen else ''}; holder {s.holder(key)}, owner {s.owner(key)};"
            f" peers {peers}]"
        )

    def _check_liveness(self, now: float) -> None:
        sim = self.sim
        bound = self.liveness_bound
        for key in self.keys:
            states = self._states(key)
            running = GroupState.RUNNING in states.values()
            if running:
                self.down_since[key] = None
                continue
            since = self.down_since.get(key)
            if since is None:
                since = self.down_since[key] = now
            if self.healthy_since is None or GroupState.FAILED in states.values():
                continue
            eligible = [n for n, node in sim.nodes.items() if key not in node.sched.failed_here]
            if not eligible:
                continue
            start = max(since, self.healthy_since, self.last_cause)
            if now - start > bound:
                beliefs = "; ".join(self._belief(n, key) for n in sorted(sim.nodes))
                self.fail(
                    f"LIVENESS: {key} runs nowhere at t={now:.3f} although "
                    f"{', '.join(eligible)} could run it; down since t={since:.3f}, last cause "
                    f"{self.last_cause_text} at t={self.last_cause:.3f} (bound {bound:.3f}s)."
                    f" Beliefs: {beliefs}"
                )

    def final(self) -> None:
        """At the end the network is whole and calm: both checks must hold now."""
        self.check()


# ----------------------------------------------------------------------------- strategies

TIMINGS = ((100, 500), (1000, 3000))  # keepalive, deadtime (ms)


@st.composite
def scenarios(
    draw: st.DrawFn, nodes: int, kinds: frozenset[str] | None = None, max_pairs: int = 8
) -> tuple[Params, list[Step]]:
    """A cluster and up to *max_pairs* (fault, wait) pairs; *kinds* restricts the faults
    by class name (to explore one family at a time)."""
    keepalive, deadtime = draw(st.sampled_from(TIMINGS))
    params = Params(
        nodes=nodes,
        keepalive_ms=keepalive,
        deadtime_ms=deadtime,
        policy=draw(st.sampled_from((AutoFailback.ON, AutoFailback.OFF))),
        groups=draw(st.integers(1, 3)),
        start_ka=draw(st.sampled_from((0.5, 0.1, 3.0))),
        stop_ka=draw(st.sampled_from((0.5, 0.1, 3.0))),
        seed=draw(st.integers(0, 1000)),
    )
    names = NAMES[:nodes]
    node = st.sampled_from(names)
    two = st.lists(node, min_size=2, max_size=2, unique=True)  # two different nodes
    groups = st.sampled_from([key for key, _ in params.group_keys()])
    # In keepalives: from a blip shorter than one heartbeat to well past deadtime.
    ka_per_dead = deadtime / keepalive
    span = st.one_of(
        st.integers(1, 8).map(lambda x: x / 4),
        st.integers(1, int(4 * ka_per_dead)).map(float),
    )
    what = st.sampled_from(("all", "foreign", "local"))
    max_ms = int(0.3 * keepalive)
    choices: dict[type, st.SearchStrategy[Step]] = {
        Cut: st.tuples(two, span).map(lambda x: Cut(*x[0], x[1])),
        OneWay: st.tuples(two, span).map(lambda x: OneWay(*x[0], x[1])),
        Isolate: st.builds(Isolate, node, span),
        Unplug: st.builds(Unplug, node, span),
        Loss: st.one_of(
            st.builds(Loss, st.none(), st.none(), st.integers(10, 90), span),
            st.tuples(two, st.integers(10, 100), span).map(lambda x: Loss(*x[0], *x[1:])),
        ),
        Delay: st.builds(Delay, st.integers(0, max_ms // 2), st.integers(0, max_ms // 2), span),
        Freeze: st.builds(Freeze, node, span, st.booleans()),
        Crash: st.builds(Crash, node),
        Restart: st.builds(Restart, node),
        Standby: st.builds(Standby, node, what),
        Takeover: st.builds(Takeover, node, what),
        FailStart: st.builds(FailStart, node, groups),
        FailStop: st.builds(FailStop, node, groups),
    }
    step = st.one_of([s for k, s in choices.items() if kinds is None or k.__name__ in kinds])
    pairs = st.tuples(step, span.map(Wait))
    steps = draw(st.lists(pairs, max_size=max_pairs))
    return params, [s for pair in steps for s in pair]
