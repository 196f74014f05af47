"""A Heartbeat configuration directory (ha.d): ha.cf, authkeys and haresources.

The readers are pure and live in :mod:`pulse.config.hacf`, :mod:`pulse.config.authkeys`
and :mod:`pulse.config.haresources`; :func:`load_legacy` does the file I/O and hands what
they found to :func:`pulse.config.assemble.build_config`.
"""

from __future__ import annotations

import os
from pathlib import Path

from pulse.config.assemble import build_config
from pulse.config.authkeys import read_authkeys
from pulse.config.checks import (
    Locator,
    path_exists,
)
from pulse.config.hacf import parse_hacf
from pulse.config.haresources import parse_haresources
from pulse.config.model import (
    Config,
    ResourceGroup,
)
from pulse.config.words import decode
from pulse.errors import Diagnostic, Severity

# --------------------------------------------------------------------------- loading


def local_node_name(confdir: Path, override: str | None) -> str:
    """--node, nodeinfo's first line or uname -n; lower-cased (docs/heartbeat.md#node-identity)."""
    if override:
        return override.strip().lower()
    try:
        with open(confdir / "nodeinfo", "rb") as f:
            first = decode(f.readline()).strip("\r\n")
    except (OSError, ValueError):
        first = ""
    if first:
        return first.lower()
    return os.uname().nodename.lower()


def _read(path: Path) -> tuple[bytes | None, Diagnostic | None]:
    try:
        return path.read_bytes(), None
    except FileNotFoundError:
        return None, Diagnostic(str(path), 0, "no such file")
    except IsADirectoryError:
        return None, Diagnostic(str(path), 0, "is a directory, not a file")
    except (OSError, ValueError) as e:
        return None, Diagnostic(
            str(path), 0, f"cannot read: {e.strerror if isinstance(e, OSError) else e}"
        )


def load_legacy(hacf: Path, node: str | None) -> tuple[Config | None, str, list[Diagnostic]]:
    """Read a Heartbeat directory; returns (config or None, local node, diagnostics)."""
    confdir = hacf.parent
    diags: list[Diagnostic] = []
    data, problem = _read(hacf)
    local = local_node_name(confdir, node)
    if data is None:
        assert problem is not None
        return None, local, [problem]
    cf = parse_hacf(data, str(hacf))
    diags.extend(cf.diagnostics)

    auth, auth_diags = read_authkeys(str(confdir / "authkeys"))
    diags.extend(auth_diags)

    groups: list[ResourceGroup] = []
    hr_path = confdir / "haresources"
    hr_data, hr_problem = _read(hr_path)
    if hr_data is None:
        if path_exists(hr_path):
            assert hr_problem is not None
            diags.append(hr_problem)
        else:
            diags.append(
                Diagnostic(
                    str(hr_path),
                    0,
                    "no haresources file: membership only, no resources will be managed "
                    "(Heartbeat itself would refuse to start)",
                    severity=Severity.WARNING,
                )
            )
    else:
        groups, hr_diags = parse_haresources(hr_data, str(hr_path))
        diags.extend(hr_diags)

    loc = Locator(file=str(hacf), sources=dict(cf.sources), failed=frozenset(cf.failed))
    config, build_diags = build_config(
        cf,
        auth=auth,
        groups=groups,
        loc=loc,
        local=local,
        origin=str(confdir),
        resource_dir=os.path.abspath(confdir / "resource.d"),
    )
    diags.extend(build_diags)
    return config, local, diags


__all__ = ["load_legacy", "local_node_name"]
