"""The product's wheel (pulse-ha) ships the daemon only: no lab, no demo, no pcap reader,
no module that imports pytest, and no pyroute2 among its requirements. The lab is the
distribution pulse-lab (lab/pyproject.toml), which has all of those.

The wheels are built offline from a copy of the sources (``pip wheel --no-deps
--no-build-isolation``, with the venv's setuptools from the ``test`` extra), so that a
stale ``build/`` directory in the checkout cannot hide or add a file. That no module
of src/pulse imports pytest or the lab is also checked without a build, by
tests/unit/test_import_layers.py.
"""

from __future__ import annotations

import ast
import email
import shutil
import subprocess
import sys
import zipfile
from email.message import Message
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JUNK = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")


def imported_modules(source: str) -> set[str]:
    """The top-level names of every module *source* imports (anywhere in the file)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def build_wheel(project: Path, tmp_path: Path) -> zipfile.ZipFile:
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(project / name, tree / name)
    shutil.copytree(project / "src", tree / "src", ignore=JUNK)
    out = tmp_path / "wheels"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    return zipfile.ZipFile(wheel)


def metadata(wheel: zipfile.ZipFile) -> Message:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.message_from_bytes(wheel.read(name))


def requirement_name(line: str) -> str:
    """``pyroute2>=0.9; extra == "test"`` -> ``pyroute2``"""
    for i, ch in enumerate(line):
        if not (ch.isalnum() or ch in "-_."):
            return line[:i].lower()
    return line.lower()


@pytest.mark.slow
def test_the_product_wheel_ships_no_lab_demo_pcap_or_pytest(tmp_path: Path) -> None:
    wheel = build_wheel(ROOT, tmp_path)
    names = wheel.namelist()
    modules = [n for n in names if n.endswith(".py")]
    assert "pulse/cli/main.py" in modules and "pulse/daemon.py" in modules  # a real build
    assert "pulse/testing/__init__.py" in modules  # the fakes plugin authors may use
    assert [n for n in names if n.startswith(("pulse/lab/", "pulse_lab/"))] == []
    assert [n for n in modules if Path(n).name in ("demo.py", "pcap.py", "fixtures.py")] == []
    importing_pytest = [
        n for n in modules if imported_modules(wheel.read(n).decode()) & {"pytest", "_pytest"}
    ]
    assert importing_pytest == []
    requires = metadata(wheel).get_all("Requires-Dist") or []
    runtime = [r for r in requires if "extra ==" not in r]
    assert "trio" in {requirement_name(r) for r in runtime}
    assert "pyroute2" not in {requirement_name(r) for r in runtime}
    # pyroute2 appears only as a test-time oracle (tests/e2e/netlink_probe.py).
    assert all('extra == "test"' in r for r in requires if requirement_name(r) == "pyroute2")


@pytest.mark.slow
def test_the_lab_wheel_has_the_lab_and_registers_pulse_demo(tmp_path: Path) -> None:
    wheel = build_wheel(ROOT / "lab", tmp_path)
    names = set(wheel.namelist())
    for module in ("netns", "cluster", "watch", "demo", "pcap", "fixtures"):
        assert f"pulse_lab/{module}.py" in names
    assert "pulse_lab/py.typed" in names
    assert not [n for n in names if n.startswith("pulse/")]
    requires = {requirement_name(r) for r in metadata(wheel).get_all("Requires-Dist") or []}
    assert {"pulse-ha", "pyroute2"} <= requires
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "[pulse.commands]" in text and "demo = pulse_lab.demo:main" in text
