"""The agent contract shared by every resource kind and by the group executor.

Kept in its own module so that :mod:`pulse.resources.scripts`,
:mod:`pulse.resources.ipaddr` and :mod:`pulse.resources.group` can import it
without importing each other.
"""

from __future__ import annotations

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
