"""Helpers for the resource agent tests: a bare config, haresources words, scripts."""

from __future__ import annotations

import stat
from pathlib import Path

from pulse.config.model import AuthKeys, Config, ResourceSpec


def config(resource_dir: Path | None = None, **kw: object) -> Config:
    return Config(
        nodes=("prime", "backup"),
        media=(),
        auth=AuthKeys(outbound=1, keys=()),
        resource_dir=str(resource_dir) if resource_dir else None,
        **kw,  # type: ignore[arg-type]
    )


def spec(word: str) -> ResourceSpec:
    agent, _, rest = word.partition("::")
    return ResourceSpec(raw=word, agent=agent, args=tuple(rest.split("::")) if rest else ())


def script(path: Path, body: str) -> Path:
    """An executable ``/bin/sh`` script at ``path`` (its directory made if need be)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path
