"""Acquire and release a resource group with ResourceManager's rules.

docs/heartbeat.md#acquire-and-release.

* **Acquire**: left to right; a resource whose status says it is running here is
  not started again; the first start that fails gives the whole group up again
  ("CRIT: Giving up resources due to failure of X") and ends the acquire.
* **Release**: right to left; a failing stop is retried ``stop_retries`` times,
  ``retry_delay`` seconds apart. If it still fails, status decides: not running
  means the script is merely not LSB-compliant (a warning, release goes on);
  still running means the group cannot be released. Heartbeat reboots the
  machine at that point; pulse does not. It stops releasing (the resources to
  the left stay up and consistent with the stuck one, e.g. the IP stays with
  the database still writing to shared storage), and returns ``ok=False`` so
  that the scheduler marks the group FAILED, keeps the peer from taking it over
  and reports loudly, and an administrator decides.

* **Restart in place** (:func:`restart_in_place`, docs/resources.md#recovery): the
  failed resource and every resource after it are released (right to left) and
  acquired again (left to right) with the rules above; the resources before it are
  not touched.

Which task calls these: the scheduler, one group at a time, on the fail-over
path; each agent bounds its own operations with its timeouts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from pulse.resources.base import ResourceAgent, ResourceError


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupResult:
    """The outcome of an acquire or release.

    ``failed`` is the resource (raw word) that made the operation fail and
    ``reason`` why; ``started`` / ``stopped`` list what this call started /
    stopped successfully, in the order it happened. ``stuck`` lists resources
    that could not be stopped and are still running (non-empty only when a
    release, or the give-up after a failed acquire, did not complete).
    """

    ok: bool
    failed: str | None = None
    reason: str = ""
    started: tuple[str, ...] = ()
    stopped: tuple[str, ...] = ()
    stuck: tuple[str, ...] = ()


def _title(node: str | None, agents: Sequence[ResourceAgent]) -> str:
    words = [a.spec.raw for a in agents]
    if node:
        words.insert(0, node)
    return " ".join(words)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ResourceError):
        return exc.reason
    return f"{type(exc).__name__}: {exc}"


async def acquire_group(
    agents: Sequence[ResourceAgent],
    *,
    log: logging.Logger,
    node: str | None = None,
    stop_retries: int = 10,
    retry_delay: float = 1.0,
) -> GroupResult:
    """Start a group left to right (see the module docstring).

    ``node`` (the group's preferred node) only appears in the log line, as in
    Heartbeat's "Acquiring resource group: prime 198.51.100.10 apache2".
    ``stop_retries``/``retry_delay`` apply to the release after a failed start.
    """
    log.info("Acquiring resource group: %s", _title(node, agents))
    started: list[str] = []
    for agent in agents:
        raw = agent.spec.raw
        try:
            running = await agent.status()
        except Exception as exc:
            # ResourceManager treats a status it cannot read as "not held" and starts.
            log.warning("Cannot tell whether %s is running (%s); starting it", raw, _reason(exc))
            running = False
        if running:
            log.debug("%s is already running", raw)
            continue
        try:
            await agent.start()
        except Exception as exc:
            if not isinstance(exc, ResourceError):
                log.exception("Agent for %s crashed on start", raw)
            log.critical("Giving up resources due to failure of %s", raw)
            released = await release_group(
                agents, log=log, node=node, stop_retries=stop_retries, retry_delay=retry_delay
            )
            reason = f"start failed: {_reason(exc)}"
            if not released.ok:
                reason += f"; giving the group up failed too: {released.reason}"
            return GroupResult(
                ok=False,
                failed=raw,
                reason=reason,
                started=tuple(started),
                stopped=released.stopped,
                stuck=released.stuck,
            )
        started.append(raw)
    return GroupResult(ok=True, started=tuple(started))


async def _stop_with_retries(
    agent: ResourceAgent, *, log: logging.Logger, stop_retries: int, retry_delay: float
) -> Exception | None:
    """Stop, retrying as ResourceManager does; the last error, or None on success."""
    raw = agent.spec.raw
    attempt = 0
    while True:
        try:
            await agent.stop()
        except Exception as exc:
            if not isinstance(exc, ResourceError):
                log.exception("Agent for %s crashed on stop", raw)
            error: Exception = exc
        else:
            return None
        if 0 <= stop_retries <= attempt:
            return error
        await trio.sleep(retry_delay)
        attempt += 1
        log.info("Retrying failed stop operation [%s]", raw)


async def release_group(
    agents: Sequence[ResourceAgent],
    *,
    log: logging.Logger,
    node: str | None = None,
    stop_retries: int = 10,
    retry_delay: float = 1.0,
) -> GroupResult:
    """Stop a group right to left (see the module docstring).

    Each failing stop is retried up to ``stop_retries`` extra times with
    ``trio.sleep(retry_delay)`` in between; a negative ``stop_retries`` retries
    forever (Heartbeat's ``HA_STOPRETRYMAX`` ≤ 0), bounded only by cancellation.
    """
    log.info("Releasing resource group: %s", _title(node, agents))
    stopped: list[str] = []
    for agent in reversed(agents):
        raw = agent.spec.raw
        error = await _stop_with_retries(
            agent, log=log, stop_retries=stop_retries, retry_delay=retry_delay
        )
        if error is None:
            stopped.append(raw)
            continue
        try:
            running = await agent.status()
        except Exception as exc:
            log.error("Cannot tell whether %s is still running: %s", raw, _reason(exc))
            running = True  # unknown: never claim a resource is gone when it may not be
        if not running:
            log.error("Resource script for %s probably not LSB-compliant.", raw)
            log.warning("it (%s) MUST succeed on a stop when already stopped", raw)
            continue
        log.critical("Resource STOP failure: %s is still running", raw)
        log.critical(
            "Resource group %s is FAILED; pulse does not reboot: fix %s by hand",
            _title(node, agents),
            raw,
        )
        return GroupResult(
            ok=False,
            failed=raw,
            reason=f"stop failed and {raw} is still running: {_reason(error)}",
            stopped=tuple(stopped),
            stuck=(raw,),
        )
    return GroupResult(ok=True, stopped=tuple(stopped))


async def restart_in_place(
    agents: Sequence[ResourceAgent],
    resource: str,
    *,
    log: logging.Logger,
    node: str | None = None,
    stop_retries: int = 10,
    retry_delay: float = 1.0,
) -> GroupResult:
    """Stop ``resource`` and every later agent right to left, then start them left to right.

    A stop that cannot be completed ends it there (``ok=False`` with ``stuck``: the
    group is FAILED, as for a release); a start that fails gives the restarted
    resources up again (``ok=False`` without ``stuck``: the caller moves the group,
    as after a failed start). ``started`` and ``stopped`` list what this call did.
    """
    names = [agent.spec.raw for agent in agents]
    if resource not in names:
        raise ValueError(f"{resource} is not one of {', '.join(names)}")
    tail = list(agents[names.index(resource) :])
    log.info("Restarting %s in place", " ".join(a.spec.raw for a in tail))
    released = await release_group(
        tail, log=log, node=node, stop_retries=stop_retries, retry_delay=retry_delay
    )
    if not released.ok:
        return released
    acquired = await acquire_group(
        tail, log=log, node=node, stop_retries=stop_retries, retry_delay=retry_delay
    )
    return GroupResult(
        ok=acquired.ok,
        failed=acquired.failed,
        reason=acquired.reason,
        started=acquired.started,
        stopped=released.stopped + acquired.stopped,
        stuck=acquired.stuck,
    )
