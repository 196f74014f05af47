"""pulse-example: the smallest useful pulse plugin (see docs/plugins/writing.md).

* ``[plugins.example] journal = "/var/log/pulse-events.jsonl"`` appends every cluster
  event to a JSON-lines file (an event listener);
* the haresources word ``Flag::/run/web.flag`` is a resource that exists while its
  file does (a resource agent), e.g. ``prime 198.51.100.100 Flag::/run/web.flag``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import trio

from pulse import ClusterEvent, hookimpl
from pulse.config.model import Config, ResourceSpec
from pulse.errors import Diagnostic
from pulse.plugin.settings import SettingsReader
from pulse.resources import ResourceError

__version__ = "0.1.0"


class Journal:
    """Appends each event as one JSON line; the file write runs in a worker thread."""

    name = "example-journal"
    timeout = 5.0

    def __init__(self, path: str) -> None:
        self.path = path

    def _append(self, line: str) -> None:
        with open(self.path, "a") as f:
            f.write(line)

    async def handle(self, event: ClusterEvent) -> None:
        await trio.to_thread.run_sync(self._append, json.dumps(asdict(event)) + "\n")


class Flag:
    """A resource that runs while its file exists (touch on start, remove on stop)."""

    def __init__(self, spec: ResourceSpec) -> None:
        self.spec = spec
        if len(spec.args) != 1 or not os.path.isabs(spec.args[0]):
            raise ValueError(f"{spec.raw}: use Flag::/absolute/path")
        self.path = Path(spec.args[0])

    async def start(self) -> None:
        try:
            await trio.to_thread.run_sync(self.path.touch)
        except OSError as exc:
            raise ResourceError(self.spec.raw, f"cannot create {self.path}: {exc}") from exc

    async def stop(self) -> None:
        await trio.to_thread.run_sync(lambda: self.path.unlink(missing_ok=True))

    async def status(self) -> bool:
        return await trio.to_thread.run_sync(self.path.exists)


def settings(config: Config) -> tuple[str | None, list[Diagnostic]]:
    """``[plugins.example]``: the journal's path, and what is wrong with the table."""
    r = SettingsReader.of(config, "example")
    journal = r.path("journal", None)
    r.check_keys()  # an unknown key is an error, with "did you mean"
    return journal, r.diagnostics


@hookimpl
def pulse_configure(config: Config) -> list[Diagnostic]:
    _, out = settings(config)
    for group in config.groups:
        for spec in group.resources:
            if spec.agent == "Flag" and (len(spec.args) != 1 or not spec.args[0].startswith("/")):
                file, line = (spec.source.file, spec.source.line) if spec.source else ("", 0)
                out.append(Diagnostic(file, line, f"{spec.raw}: use Flag::/absolute/path"))
    return out


@hookimpl
def pulse_register_event_listeners(config: Config) -> list[Journal]:
    journal, _ = settings(config)
    return [Journal(journal)] if journal is not None else []


@hookimpl
def pulse_register_resource_agents() -> Mapping[str, Any]:
    return {"Flag": lambda spec, config: Flag(spec)}
