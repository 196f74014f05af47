"""The agent contract shared by every resource kind and by the group executor.

Kept in its own module so that :mod:`pulse.resources.scripts`,
:mod:`pulse.resources.ipaddr` and :mod:`pulse.resources.group` can import it
without importing each other.
"""

from __future__ import annotations

import enum
import math
import time
from dataclasses import dataclass
from typing import Protocol

from pulse.config.model import ResourceSpec
from pulse.errors import PulseError


class ResourceError(PulseError):
    """A resource operation failed, timed out, or the resource cannot be found.

    ``resource`` is the haresources word as written (``IPaddr::198.51.100.10/24``),
    ``reason`` a sentence for the log (``Return code 1 from /etc/init.d/apache2``).
    """

    def __init__(self, resource: str, reason: str) -> None:
        self.resource = resource
        self.reason = reason
        super().__init__(f"{resource}: {reason}")


class TimedOut(ResourceError):
    """An operation did not finish within its time limit (its process group was killed)."""


class MonitorState(enum.StrEnum):
    """What a monitor found: the service runs, is cleanly stopped, or is in error."""

    RUNNING = "running"
    NOT_RUNNING = "not-running"
    FAILED = "failed"


# How much of a failing monitor's stderr is kept for logs and status.
STDERR_TAIL = 512


def stderr_tail(text: str, limit: int = STDERR_TAIL) -> str:
    """The end of a script's stderr, at most ``limit`` characters, whitespace trimmed."""
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def wall_clock_iso(seconds: float | None = None) -> str:
    """Wall-clock time (``time.time()`` unless given) as ISO 8601 in UTC, milliseconds."""
    when = time.time() if seconds is None else seconds
    # As datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds") writes it
    # (microseconds rounded half to even, then cut to milliseconds), without importing
    # datetime for it: 0.4 MiB in every daemon (docs/performance.md, "The fourth sitting").
    whole = math.floor(when)
    micro = round((when - whole) * 1e6)
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{stamp}.{micro // 1000:03d}+00:00"


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorResult:
    """One monitor operation's verdict on one resource (docs/resources.md#monitoring).

    ``code`` is the script's exit code (None for netlink, plugin and systemd-state
    checks that have none), ``reason`` a sentence for logs and status, ``stderr``
    the tail of the script's stderr, ``when`` the wall-clock time it finished
    (ISO 8601, UTC; never trio's clock, which is not a date).
    """

    resource: str
    state: MonitorState
    when: str
    code: int | None = None
    reason: str = ""
    stderr: str = ""

    @property
    def running(self) -> bool:
        return self.state is MonitorState.RUNNING

    @property
    def failed(self) -> bool:
        return self.state is MonitorState.FAILED


def monitor_result(
    resource: str,
    state: MonitorState,
    *,
    code: int | None = None,
    reason: str = "",
    stderr: str = "",
    when: str | None = None,
) -> MonitorResult:
    """A :class:`MonitorResult` stamped with the wall-clock time now (unless ``when``)."""
    return MonitorResult(
        resource=resource,
        state=state,
        when=wall_clock_iso() if when is None else when,
        code=code,
        reason=reason,
        stderr=stderr_tail(stderr),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentTimeouts:
    """Seconds each operation may take before the agent gives up on it.

    ``kill_grace`` is how long a timed-out script's process group gets between
    SIGTERM and SIGKILL; an operation therefore returns at the latest after its
    timeout plus ``kill_grace`` (plus the time to reap the processes).
    """

    start: float = 60.0
    stop: float = 60.0
    status: float = 20.0
    kill_grace: float = 5.0


class ResourceAgent(Protocol):
    """How the scheduler starts, stops and checks one haresources word."""

    @property
    def spec(self) -> ResourceSpec: ...

    async def start(self) -> None:
        """Make the resource run here; raise :class:`ResourceError` on failure or timeout."""
        ...

    async def stop(self) -> None:
        """Stop the resource here. Stopping a stopped resource succeeds."""
        ...

    async def status(self) -> bool:
        """True when the resource is running (held) on this machine.

        Raises :class:`ResourceError` when the state cannot be determined.
        """
        ...


class MonitoredAgent(ResourceAgent, Protocol):
    """An agent with a monitor operation (every built-in agent; optional for plugins).

    ``monitor`` returns a :class:`MonitorResult`, or (the simpler form for plugin
    agents) True for running and False for not running, raising
    :class:`ResourceError` for a failure. ``timeout`` is how many seconds the caller
    allows; the caller cancels the call at that point in any case.
    """

    async def monitor(self, timeout: float) -> MonitorResult | bool: ...
