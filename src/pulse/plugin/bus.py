"""Running what plugins registered, without ever letting them hold up the cluster.

* :class:`EventBus` gives each event listener its own task and bounded queue;
  publishing never waits, a listener that cannot keep up loses events (counted).
* :func:`run_checks` asks the takeover checks, each under its own timeout.
* :func:`run_check` runs a takeover check's optional background ``run(control)``.
* :func:`fence` tries the fencing devices that can fence a node, each under its own
  timeout.

Failures of plugin code are logged, counted and shown in ``pulsectl status``; they
never propagate into the daemon's tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from pulse.config.model import ResourceGroup
from pulse.plugin.api import (
    ClusterEvent,
    EventListener,
    FencingDevice,
    GroupControl,
    TakeoverCheck,
)

log = logging.getLogger("pulse.plugin.host")

LISTENER_QUEUE = 64


@dataclass(slots=True)
class PluginStats:
    calls: int = 0
    failures: int = 0
    dropped: int = 0
    last_error: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "calls": self.calls,
            "failures": self.failures,
            "dropped": self.dropped,
            "last_error": self.last_error,
        }


@dataclass(slots=True)
class _Queue:
    listener: EventListener
    tx: trio.MemorySendChannel[ClusterEvent]
    rx: trio.MemoryReceiveChannel[ClusterEvent]
    stats: PluginStats = field(default_factory=PluginStats)


class EventBus:
    """Fans cluster events out to listeners, one task and one bounded queue each."""

    def __init__(self, listeners: Sequence[EventListener]) -> None:
        self._queues: list[_Queue] = []
        for listener in listeners:
            tx, rx = trio.open_memory_channel[ClusterEvent](LISTENER_QUEUE)
            self._queues.append(_Queue(listener, tx, rx))

    def publish(self, event: ClusterEvent) -> None:
        for q in self._queues:
            try:
                q.tx.send_nowait(event)
            except trio.WouldBlock:
                q.stats.dropped += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                q.stats.dropped += 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for q in self._queues:
                nursery.start_soon(self._serve, q)
            task_status.started()

    @staticmethod
    async def _serve(q: _Queue) -> None:
        name = getattr(q.listener, "name", type(q.listener).__name__)
        timeout = float(getattr(q.listener, "timeout", 30.0))
        async with q.rx:
            async for event in q.rx:
                q.stats.calls += 1
                try:
                    with trio.fail_after(timeout):
                        await q.listener.handle(event)
                except trio.TooSlowError:
                    q.stats.failures += 1
                    q.stats.last_error = f"timed out after {timeout:g}s on {event.kind}"
                    log.warning("event listener %s: %s", name, q.stats.last_error)
                except Exception as exc:
                    q.stats.failures += 1
                    q.stats.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("event listener %s failed on %s: %s", name, event.kind, exc)

    def statistics(self) -> dict[str, dict[str, object]]:
        """Per listener, the bus's counters; a listener with a ``statistics()`` method
        adds its own under ``details`` (e.g. mails sent and given up in the background)."""
        out: dict[str, dict[str, object]] = {}
        for q in self._queues:
            entry = q.stats.as_json()
            own = getattr(q.listener, "statistics", None)
            if callable(own):
                try:
                    entry["details"] = dict(own())
                except Exception as exc:  # plugin code: never break pulsectl status
                    entry["details"] = {"error": f"statistics() failed: {exc}"}
            out[getattr(q.listener, "name", type(q.listener).__name__)] = entry
        return out


async def run_checks(
    checks: Sequence[TakeoverCheck], group: ResourceGroup, stats: dict[str, PluginStats]
) -> str | None:
    """None when every applicable check lets the acquisition go ahead, else why not."""
    for check in checks:
        name = getattr(check, "name", type(check).__name__)
        try:
            if not check.applies_to(group):
                continue
        except Exception as exc:
            return f"{name}: applies_to failed: {exc}"
        st = stats.setdefault(name, PluginStats())
        st.calls += 1
        timeout = float(getattr(check, "timeout", 10.0))
        try:
            with trio.fail_after(timeout):
                refusal = await check.check(group)
        except trio.TooSlowError:
            refusal = f"no answer within {timeout:g}s"
        except Exception as exc:
            refusal = f"check failed: {type(exc).__name__}: {exc}"
        if refusal is not None:
            st.failures += 1
            st.last_error = refusal
            return f"{name}: {refusal}"
    return None


async def fence(
    devices: Sequence[FencingDevice], node: str, stats: dict[str, PluginStats]
) -> tuple[bool, str]:
    """Fence *node* with the first device that can and succeeds: (ok, what happened)."""
    tried: list[str] = []
    for device in devices:
        name = getattr(device, "name", type(device).__name__)
        try:
            if not device.can_fence(node):
                continue
        except Exception as exc:
            tried.append(f"{name}: can_fence failed: {exc}")
            continue
        st = stats.setdefault(name, PluginStats())
        st.calls += 1
        timeout = float(getattr(device, "timeout", 60.0))
        try:
            with trio.fail_after(timeout):
                await device.fence(node)
        except trio.TooSlowError:
            st.failures += 1
            st.last_error = f"timed out after {timeout:g}s"
        except Exception as exc:
            st.failures += 1
            st.last_error = f"{type(exc).__name__}: {exc}"
        else:
            return True, f"{node} fenced by {name}"
        tried.append(f"{name}: {st.last_error}")
    if not tried:
        return False, f"no fencing device can fence {node}"
    return False, "; ".join(tried)


async def run_device(device: FencingDevice) -> None:
    """Run a fencing device's optional ``async run()`` (background upkeep such as keeping
    its list of fenceable hosts fresh, so ``can_fence`` never blocks) until cancelled.
    A device whose ``run`` fails is logged and left as it is; nothing else stops."""
    run = getattr(device, "run", None)
    if run is None:
        return
    name = getattr(device, "name", type(device).__name__)
    try:
        await run()
    except Exception:
        log.exception("fencing device %s: run() failed", name)


async def run_check(check: TakeoverCheck, control: GroupControl) -> None:
    """Run a takeover check's optional ``async run(control)`` (background upkeep such as
    renewing a lease, giving groups up through *control* when it cannot) until
    cancelled. A check whose ``run`` fails is logged and left as it is."""
    run = getattr(check, "run", None)
    if run is None:
        return
    name = getattr(check, "name", type(check).__name__)
    try:
        await run(control)
    except Exception:
        log.exception("takeover check %s: run() failed", name)


def can_fence(devices: Sequence[FencingDevice], node: str) -> bool:
    for device in devices:
        try:
            if device.can_fence(node):
                return True
        except Exception:  # a broken device cannot fence
            continue
    return False
