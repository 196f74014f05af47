"""Whole daemons under Hypothesis-chosen faults, in virtual time (issue 9, item 4).

The same stories and invariants as tests/unit/test_cluster_invariants.py
(tests/invariants_support.py), played against whole daemons (``serve()``: codec,
signatures, the engine's task, the resource manager, fake agents from
``pulse.testing.agents``) over ``pulse.testing.FakeNetwork`` under trio's
``MockClock(autojump_threshold=0)``. It checks that the simulator's glue is the
daemon's: a story that holds in the simulator but breaks here points at the wiring.

Faults here: symmetric and one-way cuts, a node's link down, seeded loss, crashes and
restarts with a new generation, standby/takeover through the resource manager's
command inbox, one-shot start/stop failures. Not here: delays and freezes (a
FakeNetwork delivers at once, and a trio task set cannot be SIGSTOPped); the
simulator covers those. The invariants are checked every eighth of a keepalive.

Whole daemons cost far more per virtual second than the simulator, so fewer
examples: ``PULSE_DAEMON_INVARIANT_EXAMPLES=N`` for more (random, with shrinking).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import trio
import trio.testing
from hypothesis import HealthCheck, Phase, given, settings

from invariants_support import (
    Crash,
    Cut,
    FailStart,
    FailStop,
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
    Wait,
    directed_pairs,
    liveness_bound,
    safety_settle,
    scenarios,
)
from pulse.config import Loaded
from pulse.daemon import Daemon, DaemonOptions, serve
from pulse.failover.policy import GroupState, Scheduler
from pulse.plugin.host import PluginHost
from pulse.protocol.engine import STARTUP_DT_BOOST_SECONDS
from pulse.testing import FakeNetwork
from pulse.testing.agents import FakePlugin, FakeResources

DAEMON_FAULTS = frozenset(
    cls.__name__
    for cls in (
        Cut,
        OneWay,
        Isolate,
        Loss,
        Crash,
        Restart,
        Standby,
        Takeover,
        FailStart,
        FailStop,
    )
)
WALL_EPOCH = 1_800_000_000.0


@dataclass(eq=False)
class DaemonNode:
    name: str
    daemon: Daemon
    scope: trio.CancelScope
    frozen: bool = False

    @property
    def sched(self) -> Scheduler:
        assert self.daemon.resources is not None
        return self.daemon.resources.scheduler


class _Story(logging.Handler):
    """The daemons' log lines, with the virtual time, as the story of a run."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(
            f"t={trio.current_time():8.3f}  {_node_of_task():6}  {record.getMessage()}"
        )


def _node_of_task() -> str:
    """Which daemon is logging: the name of the ``node:NAME`` task the record came from."""
    try:
        task: trio.lowlevel.Task | None = trio.lowlevel.current_task()
    except RuntimeError:
        return "?"
    while task is not None:
        if task.name.startswith("node:"):
            return task.name[5:]
        nursery = task.parent_nursery
        task = nursery.parent_task if nursery is not None else None
    return "?"


class DaemonWorld:
    """A cluster of whole daemons, its FakeNetwork and fake resources, as a World."""

    def __init__(self, params: Params, nursery: trio.Nursery, state_dir: Path) -> None:
        self.p = params
        self.config = params.config()
        self.nursery = nursery
        self.state_dir = state_dir
        self.network = FakeNetwork(seed=params.seed)
        # A FakeResources start or stop takes one delay: the scenarios set stop_ka = start_ka.
        self.resources = FakeResources(delay=params.start_ka * params.keepalive)
        self.nodes: dict[str, DaemonNode] = {}
        self.generations: dict[str, int] = {}
        self.cuts: dict[tuple[str, str], int] = {}
        self.losses: dict[tuple[str, str], list[float]] = {}
        self.story: list[str] = []
        self.invariants = Invariants(self)
        self.violation: InvariantViolation | None = None
        self.faults_end = 0.0
        self._states: dict[tuple[str, str], GroupState] = {}
        self._planned: set[tuple[str, str, str]] = set()

    @property
    def now(self) -> float:
        return trio.current_time()

    def healthy(self) -> bool:
        return not any(self.cuts.values()) and not any(self.losses.values())

    def pair_healthy(self, a: str, b: str) -> bool:
        return not any(self.cuts.get(p) or self.losses.get(p) for p in ((a, b), (b, a)))

    def note(self, text: str, who: str = "") -> None:
        self.story.append(f"t={self.now:8.3f}  {who:6}  {text}")

    # ------------------------------------------------------------ nodes

    async def boot(self, name: str) -> None:
        gen = self.generations.get(name, 99) + 1
        self.generations[name] = gen
        self.note(f"starts (generation {gen})", name)
        plugin = FakePlugin(self.resources)
        options = DaemonOptions(
            state_dir=self.state_dir / name,
            handle_signals=False,
            wallclock=lambda: WALL_EPOCH + trio.current_time(),
            rng=random.Random(f"{self.p.seed}-{name}-{gen}"),
            generation=gen,
            uuid=name.encode().ljust(16, b"\0")[:16],
            loadavg=lambda: "0.00 0.00 0.00 1/1 1",
            plugins=PluginHost(load_entrypoints=False, plugins={"fake": plugin}),
            stop_retries=0,  # a failed stop leaves the group FAILED, as in the simulator
            retry_delay=0.0,
        )
        scope = trio.CancelScope()
        loaded = Loaded(config=self.config, node=name, warnings=())
        link = self.network.link(name, "eth0")

        async def node(task_status: trio.TaskStatus[Daemon]) -> None:
            with scope:
                await serve(loaded, options, links=[link], task_status=task_status)

        daemon: Daemon = await self.nursery.start(node, name=f"node:{name}")
        self.nodes[name] = DaemonNode(name, daemon, scope)

    def crash(self, name: str) -> None:
        node = self.nodes.pop(name, None)
        if node is None:
            return
        node.scope.cancel()
        for where in self.resources.running.values():
            where.discard(name)  # the machine's resources go down with it
        for key in list(self._states):
            if key[0] == name:
                del self._states[key]

    # ------------------------------------------------------------ network

    def _cut(self, pairs: Iterable[tuple[str, str]], duration: float) -> None:
        pairs = list(pairs)
        for src, dst in pairs:
            self.cuts[(src, dst)] = self.cuts.get((src, dst), 0) + 1
            self.network.cut_one_way(src, dst)
        self.invariants.health_changed()

        async def heal() -> None:
            await trio.sleep(duration)
            for src, dst in pairs:
                self.cuts[(src, dst)] -= 1
                if not self.cuts[(src, dst)]:
                    self.network.restore_one_way(src, dst)
            self.note(f"heals {', '.join(f'{a}->{b}' for a, b in pairs)}", "net")
            self.invariants.health_changed()

        self.nursery.start_soon(heal)

    def _loss(self, pairs: Iterable[tuple[str, str]], rate: float, duration: float) -> None:
        pairs = list(pairs)
        for src, dst in pairs:
            self.losses.setdefault((src, dst), []).append(rate)
            self.network.set_loss(max(self.losses[(src, dst)]), src=src, dst=dst)
        self.invariants.health_changed()

        async def end() -> None:
            await trio.sleep(duration)
            for src, dst in pairs:
                self.losses[(src, dst)].remove(rate)
                self.network.set_loss(max(self.losses[(src, dst)], default=0.0), src=src, dst=dst)
            self.note(f"{rate:.0%} loss ends", "net")
            self.invariants.health_changed()

        self.nursery.start_soon(end)

    # ------------------------------------------------------------ steps

    async def step(self, step: Step) -> None:
        ka = self.p.keepalive
        names = self.p.names
        if isinstance(step, Wait):
            await trio.sleep(step.keepalives * ka)
            return
        if isinstance(step, Restart) and step.node in self.nodes:
            return
        self.note(str(step), "ADMIN" if isinstance(step, Standby | Takeover) else "FAULT")
        if not isinstance(step, FailStart | FailStop):
            self.invariants.cause(str(step), restart=isinstance(step, Restart))
        duration = getattr(step, "keepalives", 0.0) * ka
        self.faults_end = max(self.faults_end, self.now + duration)
        if isinstance(step, Cut | OneWay | Isolate):
            self._cut(directed_pairs(step, names), duration)
        elif isinstance(step, Loss):
            self._loss(directed_pairs(step, names), step.percent / 100, duration)
        elif isinstance(step, Crash):
            self.crash(step.node)
        elif isinstance(step, Restart):
            await self.boot(step.node)
        elif isinstance(step, Standby | Takeover):
            node = self.nodes.get(step.node)
            if node is not None and node.daemon.resources is not None:
                verb = "standby" if isinstance(step, Standby) else "takeover"
                refused = await node.daemon.resources.command(verb, step.what)
                if refused:
                    self.note(f"refused: {refused}", step.node)
        elif isinstance(step, FailStart):
            self.resources.fail_start_once.add((step.node, step.group))
            self._planned.add(("start", step.node, step.group))
        elif isinstance(step, FailStop):
            self.resources.fail_stop_once.add((step.node, step.group))
            self._planned.add(("stop", step.node, step.group))

    # ------------------------------------------------------------ the watcher

    async def watch(self) -> None:
        """Check the invariants every eighth of a keepalive until cancelled."""
        try:
            while True:
                await trio.sleep(self.p.keepalive / 8)
                self._observe()
                self.invariants.check()
        except InvariantViolation as exc:
            self.violation = exc
            self.nursery.cancel_scope.cancel()

    def _observe(self) -> None:
        for verb, node, group in list(self._planned):
            once = (
                self.resources.fail_start_once if verb == "start" else self.resources.fail_stop_once
            )
            if (node, group) not in once:  # it happened
                self._planned.discard((verb, node, group))
                self.invariants.cause(f"{verb} of {group} failed on {node}")
        for name, node in self.nodes.items():
            for key, mine in node.sched.mine.items():
                before = self._states.get((name, key))
                self._states[(name, key)] = mine.state
                if before is GroupState.RUNNING and mine.state is GroupState.STOPPING:
                    self.invariants.released(node, key, mine.reason)


def run_daemon_story(params: Params, steps: list[Step]) -> None:
    """Boot whole daemons, play the steps, let the faults end and the cluster settle;
    raises :class:`InvariantViolation` with the daemons' log as the story."""
    logger = logging.getLogger("pulse")
    lines: list[str] = []
    handler = _Story(lines)
    level, propagate = logger.level, logger.propagate
    worlds: list[DaemonWorld] = []

    async def main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            async with trio.open_nursery() as nursery:
                world = DaemonWorld(params, nursery, Path(tmp))
                world.story = lines
                worlds.append(world)
                for name in params.names:
                    await world.boot(name)
                nursery.start_soon(world.watch)
                await trio.sleep(STARTUP_DT_BOOST_SECONDS + params.deadtime)
                for step in steps:
                    await world.step(step)
                await trio.sleep(max(0.0, world.faults_end - trio.current_time()))
                await trio.sleep(liveness_bound(params) + safety_settle(params))
                try:
                    world.invariants.final()
                except InvariantViolation as exc:
                    world.violation = exc
                nursery.cancel_scope.cancel()

    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the story keeps them; pytest's capture would cost time
    try:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
    violation = worlds[0].violation if worlds else None
    if violation is not None:
        raise InvariantViolation(
            f"{violation}\n\nparams: {params!r}\nsteps:\n"
            + "\n".join(f"  {s}" for s in steps)
            + "\n\nstory (the daemons' log):\n"
            + "\n".join(lines[-300:])
        )


_EXAMPLES = os.environ.get("PULSE_DAEMON_INVARIANT_EXAMPLES")
DAEMON_SETTINGS = settings(
    max_examples=int(_EXAMPLES) if _EXAMPLES else 50,
    deadline=None,
    derandomize=not _EXAMPLES,
    database=None if not _EXAMPLES else settings.default.database,
    phases=[Phase.explicit, Phase.generate, *([Phase.shrink] if _EXAMPLES else [])],
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _same_start_and_stop(scenario: tuple[Params, list[Step]]) -> tuple[Params, list[Step]]:
    params, steps = scenario
    return dataclasses.replace(params, stop_ka=params.start_ka), steps  # one FakeResources delay


# Found, now fixed: issue 9: a node's own takeover request outlives a partition, its
# peers forget it when they declare it dead (tests/unit/test_cluster_invariants.py has
# the stories)


# Not strict: whether the derandomized examples hit the forgotten takeover depends on
# the examples drawn; the strict stories are in tests/unit/test_cluster_invariants.py.
@DAEMON_SETTINGS
@given(
    scenario=(scenarios(2, DAEMON_FAULTS) | scenarios(3, DAEMON_FAULTS)).map(_same_start_and_stop)
)
def test_whole_daemons_under_any_faults_stay_safe_live_and_stable(
    scenario: tuple[Params, list[Step]],
) -> None:
    run_daemon_story(*scenario)


def test_whole_daemons_heal_a_one_way_cut_to_one_holder() -> None:
    # The story through the whole stack: calc stops hearing prime for
    # deadtime + 2 keepalives, declares it dead and takes vip1; prime never declares
    # calc dead. On heal one of them must give vip1 up.
    params = Params(nodes=2, keepalive_ms=100, deadtime_ms=500, groups=1)
    run_daemon_story(params, [OneWay("prime", "calc", 7), Wait(0.25)])


def test_whole_daemons_heal_a_cut_during_a_takeover_to_one_holder() -> None:
    # tests/unit/test_cluster_invariants.py's story of the same name, through the whole
    # stack: calc asks for vip1, the link is cut 25 ms later for 5 keepalives; both end
    # up running vip1 and each names itself the keeper.
    params = Params(nodes=2, keepalive_ms=100, deadtime_ms=500, groups=1)
    run_daemon_story(
        params, [Takeover("calc", "all"), Wait(0.25), Cut("prime", "calc", 5), Wait(0.25)]
    )


def test_whole_daemons_do_not_let_a_retransmitted_older_report_override_a_newer_one() -> None:
    # tests/unit/test_cluster_invariants.py's story of the same name, through the whole
    # stack (codec, retransmission from the engine's history): vip1 ends up nowhere.
    params = Params(nodes=2, keepalive_ms=100, deadtime_ms=500, groups=1)
    prelude = [FailStart("prime", "vip1"), Standby("prime", "all"), Wait(1)]
    run_daemon_story(
        params, [*prelude, OneWay("prime", "calc", 2), Standby("calc", "all"), Wait(0.25)]
    )
