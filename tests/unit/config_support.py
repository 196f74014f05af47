"""Helpers for the configuration tests.

Fixture files are committed with mode 0644, but Heartbeat (and pulse) refuse an
authkeys file, or a TOML file with inline keys, that group or others can read.
:func:`install` therefore copies a fixture into a temporary directory and makes
those files 0600, unless the fixture's ``modes`` file says otherwise
(``authkeys 644`` lines), which is how the permission cases are written.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pulse.errors import ConfigError

DATA = Path(__file__).resolve().parents[1] / "data"
LEGACY = DATA / "legacy"
BROKEN = DATA / "broken"
TOML_DIR = DATA / "toml"
SECRET_SUFFIXES = (".toml",)
SECRET_NAMES = ("authkeys",)


def install(fixture: Path, tmp_path: Path) -> Path:
    """Copy a fixture directory (or file) under ``tmp_path`` with Heartbeat-safe modes."""
    dest = tmp_path / fixture.name
    if fixture.is_dir():
        shutil.copytree(fixture, dest)
        files = [p for p in dest.rglob("*") if p.is_file()]
    else:
        shutil.copy(fixture, dest)
        files = [dest]
    for p in files:
        if p.name in SECRET_NAMES or p.suffix in SECRET_SUFFIXES:
            p.chmod(0o600)
    modes = dest / "modes" if dest.is_dir() else None
    if modes is not None and modes.exists():
        for line in modes.read_text().splitlines():
            if line.strip():
                name, mode = line.split()
                (dest / name).chmod(int(mode, 8))
    return dest


def config_path(case_dir: Path) -> Path:
    """What to hand to load_config for an installed case: its TOML file or the directory."""
    toml = case_dir / "pulse.toml"
    return toml if toml.exists() else case_dir


def write_legacy(
    tmp_path: Path,
    hacf: str,
    *,
    authkeys: str | None = "auth 1\n1 sha1 secret\n",
    haresources: str | None = None,
    authkeys_mode: int = 0o600,
) -> Path:
    """A Heartbeat directory under ``tmp_path`` from text (None = file absent)."""
    d = tmp_path / "ha.d"
    d.mkdir(exist_ok=True)
    (d / "ha.cf").write_text(hacf)
    if authkeys is not None:
        (d / "authkeys").write_text(authkeys)
        (d / "authkeys").chmod(authkeys_mode)
    if haresources is not None:
        (d / "haresources").write_text(haresources)
    return d


def messages(err: ConfigError, root: Path) -> list[str]:
    """The error lines as `pulse check` prints them, with ``root/`` removed."""
    prefix = str(root) + os.sep
    return [str(d).replace(prefix, "") for d in err.diagnostics]


def minimal_hacf(tmp_path: Path, *lines: str) -> Path:
    """A two-node ha.cf directory (alpha, beta) on ``bcast lo`` with ``lines`` added."""
    head = ["keepalive 1", "deadtime 10", "initdead 20", "auto_failback on", "bcast lo"]
    (tmp_path / "ha.cf").write_text("\n".join([*head, *lines, "node alpha", "node beta", ""]))
    (tmp_path / "authkeys").write_text("auth 1\n1 sha1 secret\n")
    (tmp_path / "authkeys").chmod(0o600)
    (tmp_path / "haresources").write_text("")
    return tmp_path
