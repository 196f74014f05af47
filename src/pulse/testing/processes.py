"""Fake programs for :class:`pulse.respawn.RespawnSupervisor` in virtual time.

Real child processes and trio's ``MockClock`` mix badly (the clock jumps while the
kernel runs the child). :class:`FakeSpawner` is a :data:`pulse.respawn.Spawn` whose
programs live in the test's nursery and end when the *plan* says, or when signalled.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from pulse.respawn import ClientSpec

# A plan maps (command, how many times it was started before) to how it ends:
# (seconds after start, return code) or None to run until signalled.
Plan = Callable[[str, int], tuple[float, int] | None]


def run_forever(command: str, starts: int) -> tuple[float, int] | None:
    return None


@dataclass(eq=False)
class FakeProcess:
    pid: int
    spec: ClientSpec
    started_at: float
    ignore_sigterm: bool = False
    returncode: int | None = None
    signals: list[int] = field(default_factory=list)
    journal: list[tuple[str, int]] = field(default_factory=list)  # the spawner's, shared
    _done: trio.Event = field(default_factory=trio.Event)

    async def wait(self) -> int:
        await self._done.wait()
        assert self.returncode is not None
        return self.returncode

    def signal_group(self, signum: int) -> None:
        if self.returncode is not None:
            return
        self.signals.append(signum)
        self.journal.append((self.spec.command, signum))
        if signum == signal.SIGKILL or (signum == signal.SIGTERM and not self.ignore_sigterm):
            self.end(-signum)

    def end(self, returncode: int) -> None:
        if self.returncode is None:
            self.returncode = returncode
            self._done.set()


class FakeSpawner:
    """Starts fake programs in ``nursery``; every start is recorded in ``started``."""

    def __init__(
        self, nursery: trio.Nursery, plan: Plan = run_forever, *, ignore_sigterm: bool = False
    ) -> None:
        self.nursery = nursery
        self.plan = plan
        self.ignore_sigterm = ignore_sigterm
        self.started: list[FakeProcess] = []
        self.refuse: set[str] = set()  # commands whose exec fails (ENOENT)
        self.signalled: list[tuple[str, int]] = []  # (command, signal), in order

    async def __call__(self, spec: ClientSpec) -> FakeProcess:
        await trio.lowlevel.checkpoint()
        if spec.command in self.refuse:
            raise FileNotFoundError(2, "No such file or directory", spec.argv[0])
        starts = sum(1 for p in self.started if p.spec.command == spec.command)
        process = FakeProcess(
            pid=1000 + len(self.started),
            spec=spec,
            started_at=trio.current_time(),
            ignore_sigterm=self.ignore_sigterm,
            journal=self.signalled,
        )
        self.started.append(process)
        ending = self.plan(spec.command, starts)
        if ending is not None:
            self.nursery.start_soon(self._end_after, process, *ending)
        return process

    @staticmethod
    async def _end_after(process: FakeProcess, seconds: float, returncode: int) -> None:
        await trio.sleep(seconds)
        process.end(returncode)

    def of(self, command: str) -> list[FakeProcess]:
        return [p for p in self.started if p.spec.command == command]

    def running(self) -> list[FakeProcess]:
        return [p for p in self.started if p.returncode is None]
