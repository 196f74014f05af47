"""Checks of the configured devices against this machine (``pulse check``/``pulse run``).

Local and quick: ``stonith -L`` and ``stonith -t TYPE -n`` read cluster-glue's plugin
directory, nothing talks to a device. Called from the synchronous ``pulse_configure``
hook before any trio task runs, so plain ``subprocess`` with a timeout is right here.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pulse.errors import Diagnostic, Severity
from pulse_stonith.devices import STONITH_PROGRAM, locate_agent
from pulse_stonith.settings import AgentDeviceSpec, GlueDeviceSpec, Settings

QUERY_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    ok: bool
    lines: tuple[str, ...] = ()
    problem: str = ""


Query = Callable[[Sequence[str]], Answer]


def run_query(argv: Sequence[str]) -> Answer:
    """Run a quick local ``stonith`` query; never raises."""
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=QUERY_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        return Answer(ok=False, problem="missing")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Answer(ok=False, problem=str(exc))
    out = done.stdout.decode("utf-8", errors="replace")
    if done.returncode != 0:
        return Answer(ok=False, problem=f"exit {done.returncode}")
    return Answer(ok=True, lines=tuple(line.strip() for line in out.splitlines() if line.strip()))


def host_checks(
    settings: Settings,
    *,
    query: Query = run_query,
    locate: Callable[[str], str | None] = locate_agent,
    program: str = STONITH_PROGRAM,
) -> list[Diagnostic]:
    diags: list[Diagnostic] = []
    glue = [d for d in settings.devices if isinstance(d, GlueDeviceSpec)]
    if glue:
        diags.extend(_glue_checks(glue, query, program))
    for spec in settings.devices:
        if isinstance(spec, AgentDeviceSpec) and locate(spec.agent) is None:
            diags.append(
                Diagnostic(
                    spec.where.file,
                    spec.where.line,
                    f"fence agent {spec.agent} not found or not executable "
                    "(install fence-agents, or give the agent's absolute path)",
                )
            )
    return diags


def _glue_checks(specs: Sequence[GlueDeviceSpec], query: Query, program: str) -> list[Diagnostic]:
    types = query([program, "-L"])
    if not types.ok:
        first = specs[0].where
        if types.problem == "missing":
            message = (
                f"STONITH is configured but cluster-glue's {program} is not installed "
                "(apt-get install cluster-glue)"
            )
        else:
            message = f"cannot list STONITH types with {program} -L ({types.problem})"
        return [Diagnostic(first.file, first.line, message)]
    known = set(types.lines)
    diags: list[Diagnostic] = []
    for spec in specs:
        where = spec.where
        if spec.type not in known:
            close = sorted(t for t in known if spec.type.split("/")[-1] in t)
            hint = f"; did you mean {', '.join(close)}?" if close else "; `stonith -L` lists them"
            diags.append(
                Diagnostic(
                    where.file, where.line, f"stonith: unknown device type {spec.type}{hint}"
                )
            )
            continue
        names = query([program, "-t", spec.type, "-n"])
        if not names.ok:
            continue
        wanted = " ".join(names.lines).split()
        given = spec.params.split()
        if len(given) < len(wanted):
            diags.append(
                Diagnostic(
                    where.file,
                    where.line,
                    f"stonith: {spec.type} needs {len(wanted)} parameter(s) in this order: "
                    f"{' '.join(wanted)}; got {len(given)}",
                )
            )
        elif not wanted and given:
            diags.append(
                Diagnostic(
                    where.file,
                    where.line,
                    f"stonith: {spec.type} takes no parameters; ignoring {spec.params!r}",
                    Severity.WARNING,
                )
            )
    return diags
