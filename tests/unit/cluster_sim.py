"""A discrete-event simulator of whole pulse clusters over the pure cores, with faults.

Each simulated node is one :class:`pulse.protocol.engine.Engine` (membership) and one
:class:`pulse.failover.policy.Scheduler` (who runs which group), glued together exactly as
the daemon glues them (``src/pulse/daemon.py`` feeds engine events to the resource
manager, ``src/pulse/failover/manager.py`` turns them into scheduler facts and runs the
scheduler's actions). Nothing here sleeps: time is a float the simulator advances
from one event to the next, so ten virtual seconds of a four-node cluster at
keepalive 100 ms cost a few tens of milliseconds.

The network passes each ``Transmit.message`` object (no codec) to every other node
with a per-packet delay, unless the fault plan drops it:

* ``cut`` counts per directed pair (``(a, b)``: b does not hear a), so overlapping
  symmetric and one-way partitions heal independently;
* ``loss`` probabilities per directed pair (a seeded ``random.Random``);
* a base delay plus jitter (jitter larger than the gap between two packets reorders
  them);
* a frozen node (SIGSTOP) runs no timers and processes nothing: packets to it queue
  up to :data:`SOCKET_BUFFER` packets (then are dropped, like a full socket buffer),
  resource operations finishing meanwhile wait too; on thaw it processes the queue
  and its due timers, in the order the scenario says.

The fake resource layer completes an ``Acquire`` after ``start_delay`` and a
``Release`` after ``stop_delay``; a one-shot fault plan makes the next start or
stop of a group on a node fail (``done(ok=False)``, clean for a start as when
``acquire_group`` rolled back, unclean for a stop, as in ``failover.py``).

The stories (steps) and the invariants, checked after every event, are in
tests/invariants_support.py, shared with the whole-daemon layer.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from invariants_support import (
    LINK,
    NAMES,
    Crash,
    Cut,
    Delay,
    FailStart,
    FailStop,
    Freeze,
    Invariants,
    InvariantViolation,
    Isolate,
    Loss,
    OneWay,
    Params,
    Restart,
    Standby,
    Step,
    Takeover,
    Unplug,
    Wait,
    directed_pairs,
    liveness_bound,
    safety_settle,
)
from pulse.failover.policy import (
    Acquire,
    Action,
    Decision,
    Refresh,
    Release,
    Scheduler,
    Send,
    StandbyRefused,
)
from pulse.protocol.engine import STARTUP_DT_BOOST_SECONDS, Engine
from pulse.protocol.events import (
    CommsUp,
    Delivered,
    Log,
    NodeStatus,
    NodeStatusChanged,
    Output,
    Transmit,
)
from pulse.wire.message import Message

__all__ = ["NAMES", "InvariantViolation", "Params", "Sim", "run_story"]

WALL_EPOCH = 1_800_000_000.0
#: Packets a frozen node's socket buffer holds before new ones are dropped.
SOCKET_BUFFER = 64
#: Events at one instant before the simulator calls it a livelock.
MAX_EVENTS_PER_INSTANT = 20_000
ALIVE = (NodeStatus.UP, NodeStatus.ACTIVE)  # as failover.ALIVE


# ----------------------------------------------------------------------------- nodes


@dataclass(eq=False)
class SimNode:
    name: str
    generation: int
    engine: Engine
    sched: Scheduler
    incarnation: int
    frozen: bool = False
    unplugged: int = 0  # Unplug steps in force: its sends fail
    failing_since: float | None = None  # first failed send (daemon.Daemon._check_cut_off)
    cut_off: bool = False  # what the daemon last published (events.CutOff)
    queue: deque[Message] = field(default_factory=deque)
    deferred: list[Callable[[], None]] = field(default_factory=list)  # done() while frozen
    dropped: int = 0
    _deadline: float | None = None  # cached min of both next deadlines; None: recompute

    def touched(self) -> None:
        self._deadline = None

    def next_deadline(self) -> float:
        if self._deadline is None:
            self._deadline = min(self.engine.next_deadline(), self.sched.next_deadline())
        return self._deadline


# ----------------------------------------------------------------------------- simulator


class Sim:
    """A cluster, its network and its resources in virtual time."""

    def __init__(self, params: Params) -> None:
        self.p = params
        self.config = params.config()
        self.now = 0.0
        self.rng = random.Random(params.seed)
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.nodes: dict[str, SimNode] = {}
        self.generations: dict[str, int] = {}
        self._incarnations = itertools.count(1)
        self.cut: dict[tuple[str, str], int] = {}
        self.loss: dict[tuple[str, str], list[float]] = {}
        self.delay: list[tuple[float, float]] = []  # active (base, jitter) in seconds
        self.fail_start: set[tuple[str, str]] = set()
        self.fail_stop: set[tuple[str, str]] = set()
        self.story: list[str] = []
        self.invariants = Invariants(self)
        self._burst_guard: tuple[float, int] = (-1.0, 0)
        for name in params.names:
            self.boot(name)

    # ------------------------------------------------------------ the story

    def note(self, who: str, text: str) -> None:
        self.story.append(f"t={self.now:8.3f}  {who:6}  {text}")

    def render(self, last: int = 400) -> str:
        lines = self.story[-last:]
        skipped = len(self.story) - len(lines)
        head = [f"... ({skipped} earlier lines)"] if skipped else []
        return "\n".join(head + lines)

    # ------------------------------------------------------------ nodes

    def boot(self, name: str) -> None:
        gen = self.generations.get(name, 99) + 1
        self.generations[name] = gen
        engine = Engine(
            config=self.config,
            local=name,
            generation=gen,
            uuid=name.encode().ljust(16, b"\0")[:16],
            now=self.now,
            wallclock=lambda: WALL_EPOCH + self.now,
            loadavg=lambda: "0.00 0.00 0.00 1/1 1",
            rng=random.Random(f"{self.p.seed}-{name}-{gen}"),
        )
        sched = Scheduler(config=self.config, local=name, now=self.now)
        node = SimNode(name, gen, engine, sched, next(self._incarnations))
        self.nodes[name] = node
        self.note(name, f"starts (generation {gen})")
        self._dispatch(node, engine.start(self.now))

    def crash(self, name: str) -> None:
        node = self.nodes.pop(name, None)
        if node is not None:
            self.note(name, "crashes (its resources go down with it)")

    def freeze(self, name: str, duration: float, queue_first: bool) -> None:
        node = self.nodes.get(name)
        if node is None or node.frozen:
            return
        node.frozen = True
        self.note(name, "frozen (SIGSTOP)")
        self.invariants.health_changed()
        incarnation = node.incarnation
        self.at(self.now + duration, lambda: self.thaw(name, incarnation, queue_first))

    def thaw(self, name: str, incarnation: int, queue_first: bool) -> None:
        node = self.nodes.get(name)
        if node is None or node.incarnation != incarnation or not node.frozen:
            return
        node.frozen = False
        self.note(
            name,
            f"thawed (SIGCONT): {len(node.queue)} queued packets"
            f"{f', {node.dropped} dropped' if node.dropped else ''}; "
            f"{'queue' if queue_first else 'timers'} first",
        )
        node.dropped = 0
        self.invariants.health_changed()
        if queue_first:
            self._drain(node)
            self._run_timers(node)
        else:
            self._run_timers(node)
            self._drain(node)

    def _drain(self, node: SimNode) -> None:
        while node.queue and self.nodes.get(node.name) is node and not node.frozen:
            self._receive(node, node.queue.popleft())
        deferred, node.deferred = node.deferred, []
        for fn in deferred:
            fn()

    # ------------------------------------------------------------ engine glue

    def _dispatch(self, node: SimNode, outputs: Iterable[Output]) -> None:
        """What Daemon.dispatch and ResourceManager._handle do with engine outputs."""
        node.touched()
        for out in outputs:
            if isinstance(out, Transmit):
                self._transmit(node.name, out.message)
            elif isinstance(out, Log):
                if out.level in ("WARN", "CRIT", "ERROR") and "lost packet" not in out.text:
                    self.note(node.name, f"[engine] {out.text}")
            elif isinstance(out, NodeStatusChanged):
                self._node_status_changed(node, out)
            elif isinstance(out, CommsUp):
                self.note(node.name, f"communications up (peers {', '.join(out.peers) or '-'})")
                self._apply(node, node.sched.comms_up(self.now, out.peers))
            elif isinstance(out, Delivered):
                self._apply(node, node.sched.message(out.message, self.now))

    def _node_status_changed(self, node: SimNode, out: NodeStatusChanged) -> None:
        # As ResourceManager._handle: compare with what the scheduler believes.
        peer = node.sched.peers.get(out.node)
        if peer is None or not (out.new in ALIVE or out.new is NodeStatus.DEAD):
            return
        alive = out.new in ALIVE
        if alive != peer.alive:
            self.note(node.name, f"sees {out.node} {'alive' if alive else 'dead'}")
            self._apply(node, node.sched.node_status(out.node, alive, self.now))

    def _apply(self, node: SimNode, actions: Sequence[Action]) -> None:
        """What ResourceManager._apply does, with fake resources."""
        node.touched()
        for action in actions:
            if self.nodes.get(node.name) is not node:
                return  # crashed meanwhile (cannot happen synchronously, but cheap)
            if isinstance(action, Send):
                self._dispatch(node, node.engine.send(action.message, self.now))
            elif isinstance(action, Decision):
                self.note(node.name, action.text)
            elif isinstance(action, Refresh):
                self.note(node.name, f"re-announces {action.group}: {action.reason}")
                self._refresh(node, action.group)
            elif isinstance(action, Acquire | Release):
                self._operate(node, action)

    def _operate(self, node: SimNode, action: Acquire | Release) -> None:
        key = action.group
        starting = isinstance(action, Acquire)
        if starting:
            self.note(node.name, f"ACQUIRE {key} ({action.reason})")
            fails = (node.name, key) in self.fail_start
            self.fail_start.discard((node.name, key))
            delay = self.p.start_ka * self.p.keepalive
        else:
            self.note(node.name, f"RELEASE {key} ({action.reason})")
            fails = (node.name, key) in self.fail_stop
            self.fail_stop.discard((node.name, key))
            delay = self.p.stop_ka * self.p.keepalive
        if not starting:
            self.invariants.released(node, key, action.reason)
        # A failed start was rolled back (clean); a failed stop may still run here.
        clean = starting
        verb = "start" if starting else "stop"

        def done(current: SimNode) -> Sequence[Action]:
            self.note(node.name, f"{verb} of {key} {'FAILED' if fails else 'done'}")
            if fails:
                self.invariants.cause(f"{verb} of {key} failed on {node.name}")
            return current.sched.done(key, self.now, ok=not fails, clean=clean)

        self._later(node, delay, done)

    def _refresh(self, node: SimNode, key: str) -> None:
        """As ResourceManager._refresh_and_report: the scheduler hears when the first
        announcement went out (a gratuitous ARP: at once, through the inbox)."""
        self._later(node, 0.0, lambda current: current.sched.refreshed(key, self.now))

    def _later(
        self, node: SimNode, delay: float, fn: Callable[[SimNode], Sequence[Action]]
    ) -> None:
        """Feed ``fn(node)``'s actions to *node* after *delay*: dropped if the machine
        crashed meanwhile, deferred to the thaw if it is frozen then."""
        incarnation = node.incarnation

        def later() -> None:
            current = self.nodes.get(node.name)
            if current is None or current.incarnation != incarnation:
                return
            if current.frozen:
                current.deferred.append(later)
                return
            self._apply(current, fn(current))

        self.at(self.now + delay, later)

    def _run_timers(self, node: SimNode) -> None:
        node.touched()
        if node.engine.next_deadline() <= self.now:
            self._dispatch(node, node.engine.tick(self.now))
            self._check_cut_off(node)
        if self.nodes.get(node.name) is node and node.sched.next_deadline() <= self.now:
            self._apply(node, node.sched.tick(self.now))

    def _check_cut_off(self, node: SimNode) -> None:
        """As Daemon._check_cut_off after each engine tick: cut off once every send has
        failed for a keepalive, no longer once one succeeds."""
        since = node.failing_since
        cut = since is not None and self.now - since >= self.p.keepalive
        if cut != node.cut_off and self.nodes.get(node.name) is node:
            node.cut_off = cut
            self.note(node.name, "cut off: every send fails" if cut else "sends again")
            self._apply(node, node.sched.set_cut_off(cut, self.now, detail="eth0: ENETDOWN"))

    def unplug(self, name: str, duration: float) -> None:
        node = self.nodes.get(name)
        if node is None:
            return
        node.unplugged += 1
        node.failing_since = node.failing_since if node.failing_since is not None else self.now
        incarnation = node.incarnation

        def plug() -> None:
            current = self.nodes.get(name)
            if current is None or current.incarnation != incarnation:
                return
            current.unplugged -= 1
            if not current.unplugged:
                current.failing_since = None

        self.at(self.now + duration, plug)

    def healthy(self) -> bool:
        if any(n > 0 for n in self.cut.values()):
            return False
        if any(rates for rates in self.loss.values()):
            return False
        return not any(node.frozen for node in self.nodes.values())

    def pair_healthy(self, a: str, b: str) -> bool:
        if self.cut.get((a, b), 0) or self.cut.get((b, a), 0):
            return False
        if self.loss.get((a, b)) or self.loss.get((b, a)):
            return False
        return not (self.nodes[a].frozen or self.nodes[b].frozen)

    # ------------------------------------------------------------ network

    def _transmit(self, src: str, message: Message) -> None:
        for dst in self.p.names:
            if dst == src or self.cut.get((src, dst), 0) > 0:
                continue
            loss = max(self.loss.get((src, dst), ()), default=0.0)
            if loss and self.rng.random() < loss:
                continue
            base, jitter = max(self.delay, default=(0.0, 0.0))
            delay = base + (self.rng.uniform(0, jitter) if jitter else 0.0)
            self.at(self.now + delay, lambda dst=dst: self._arrive(dst, message))

    def _arrive(self, dst: str, message: Message) -> None:
        node = self.nodes.get(dst)
        if node is None:
            return
        if node.frozen:
            if len(node.queue) < SOCKET_BUFFER:
                node.queue.append(message)
            else:
                node.dropped += 1
            return
        self._receive(node, message)

    def _receive(self, node: SimNode, message: Message) -> None:
        self._dispatch(node, node.engine.receive(message, LINK, self.now))

    # ------------------------------------------------------------ faults

    def set_cut(self, pairs: Iterable[tuple[str, str]], duration: float) -> None:
        pairs = list(pairs)
        for pair in pairs:
            self.cut[pair] = self.cut.get(pair, 0) + 1
        self.invariants.health_changed()

        def heal() -> None:
            for pair in pairs:
                self.cut[pair] -= 1
            self.note("net", f"heals {', '.join(f'{a}->{b}' for a, b in pairs)}")
            self.invariants.health_changed()

        self.at(self.now + duration, heal)

    def set_loss(self, pairs: Iterable[tuple[str, str]], rate: float, duration: float) -> None:
        pairs = list(pairs)
        for pair in pairs:
            self.loss.setdefault(pair, []).append(rate)
        self.invariants.health_changed()

        def end() -> None:
            for pair in pairs:
                self.loss[pair].remove(rate)
            self.note("net", f"{rate:.0%} loss ends")
            self.invariants.health_changed()

        self.at(self.now + duration, end)

    def set_delay(self, base: float, jitter: float, duration: float) -> None:
        entry = (base, jitter)
        self.delay.append(entry)

        def end() -> None:
            self.delay.remove(entry)
            self.note("net", "delay ends")

        self.at(self.now + duration, end)

    def step(self, step: Step) -> None:
        """Apply one step of a scenario (a Wait runs the cluster)."""
        ka = self.p.keepalive
        names = self.p.names
        if isinstance(step, Wait):
            self.run_until(self.now + step.keepalives * ka)
            return
        if isinstance(step, Restart) and step.node in self.nodes:
            return  # it runs: nothing to restart
        self.note("FAULT" if not isinstance(step, Standby | Takeover) else "ADMIN", str(step))
        if not isinstance(step, FailStart | FailStop):  # plans: the failure is the cause
            self.invariants.cause(str(step), restart=isinstance(step, Restart))
        if isinstance(step, Cut | OneWay | Isolate | Unplug):
            self.set_cut(directed_pairs(step, names), step.keepalives * ka)
            if isinstance(step, Unplug):
                self.unplug(step.node, step.keepalives * ka)
        elif isinstance(step, Loss):
            self.set_loss(directed_pairs(step, names), step.percent / 100, step.keepalives * ka)
        elif isinstance(step, Delay):
            self.set_delay(step.base_ms / 1000, step.jitter_ms / 1000, step.keepalives * ka)
        elif isinstance(step, Freeze):
            self.freeze(step.node, step.keepalives * ka, step.queue_first)
        elif isinstance(step, Crash):
            self.crash(step.node)
        elif isinstance(step, Restart):
            self.boot(step.node)
        elif isinstance(step, Standby | Takeover):
            node = self.nodes.get(step.node)
            if node is None or node.frozen:
                return  # pulsectl gets no answer from a frozen daemon
            try:
                if isinstance(step, Standby):
                    actions = node.sched.set_standby(step.what, self.now)
                else:
                    actions = node.sched.takeover(step.what, self.now)
            except StandbyRefused as exc:
                self.note(step.node, f"refused: {exc}")
                return
            self._apply(node, actions)
        elif isinstance(step, FailStart):
            self.fail_start.add((step.node, step.group))
        elif isinstance(step, FailStop):
            self.fail_stop.add((step.node, step.group))
        self.invariants.check()

    # ------------------------------------------------------------ the event loop

    def at(self, when: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._events, (when, next(self._seq), fn))

    def _next_timer(self) -> tuple[float, SimNode | None]:
        best, who = float("inf"), None
        for node in self.nodes.values():
            if node.frozen:
                continue
            t = node.next_deadline()
            if t < best:
                best, who = t, node
        return best, who

    def run_until(self, until: float) -> None:
        while True:
            t_event = self._events[0][0] if self._events else float("inf")
            t_timer, node = self._next_timer()
            t = min(t_event, t_timer)
            if t > until:
                self.now = until
                self.invariants.check()
                return
            self.now = max(self.now, t)
            self._livelock_guard()
            if node is not None and t_timer <= t_event:
                self._run_timers(node)
            else:
                _, _, fn = heapq.heappop(self._events)
                fn()
            self.invariants.check()

    def _livelock_guard(self) -> None:
        at, count = self._burst_guard
        count = count + 1 if at == self.now else 1
        self._burst_guard = (self.now, count)
        if count > MAX_EVENTS_PER_INSTANT:
            stuck = [
                f"{n.name} (engine {n.engine.next_deadline():.6f},"
                f" scheduler {n.sched.next_deadline():.6f})"
                for n in self.nodes.values()
                if not n.frozen and n.next_deadline() <= self.now
            ]
            raise InvariantViolation(
                f"LIVELOCK: more than {MAX_EVENTS_PER_INSTANT} events at t={self.now:.6f};"
                f" timers due again at once after running: {', '.join(stuck) or 'none'}"
            )

    def heal_everything(self) -> None:
        """Let every timed fault end (the scenario's last step)."""
        ends = [when for when, _, _ in self._events]
        if ends:
            self.run_until(max(self.now, max(ends)))


def run_story(
    params: Params, steps: Sequence[Step], *, settle: float | None = None, warmup: bool = True
) -> Sim:
    """Boot the cluster, play the steps, let every fault end, then let it settle and
    check the invariants throughout; raises :class:`InvariantViolation` with the story."""
    sim = Sim(params)
    try:
        if warmup:
            # Past the start-up boost of the advertised dead time (src/pulse/protocol/engine.py):
            # the faults hit a cluster in its steady state; Restart steps cover start-up.
            sim.run_until(STARTUP_DT_BOOST_SECONDS + params.deadtime)
        for step in steps:
            sim.step(step)
        sim.heal_everything()
        tail = settle if settle is not None else liveness_bound(params) + safety_settle(params)
        sim.run_until(sim.now + tail)
        sim.invariants.final()
    except InvariantViolation as exc:
        raise InvariantViolation(
            f"{exc}\n\nparams: {params!r}\nsteps:\n"
            + "\n".join(f"  {s}" for s in steps)
            + "\n\nstory:\n"
            + sim.render()
        ) from None
    return sim
