"""The example plugin, installed with pip into a directory of its own, is found and loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--target", str(target), str(HERE)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"pip install failed:\n{done.stderr}")
    return target


def run_with(target: Path, code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
        check=True,
    )  # fmt: skip
    return done.stdout


def test_pip_installed_example_plugin_is_loaded_through_its_entry_point(installed: Path) -> None:
    out = run_with(
        installed,
        "import json; from pulse.plugin.host import PluginHost;"
        "print(json.dumps([[p.name, p.version] for p in PluginHost().plugins()]))",
    )
    assert ["example", "0.1.0"] in json.loads(out)


def test_example_plugin_can_be_disabled_by_name(installed: Path) -> None:
    code = (
        "import os; os.environ['PULSE_DISABLE_PLUGINS'] = 'example';"
        "from pulse.plugin.host import PluginHost;"
        "print([p.name for p in PluginHost.for_config(None).plugins()])"
    )
    assert "example" not in run_with(installed, code)


def test_pulse_check_lists_the_plugin_and_reports_its_config_errors(
    installed: Path, tmp_path: Path
) -> None:
    toml = tmp_path / "pulse.toml"
    toml.write_text(
        '[cluster]\nnodes = ["a", "b"]\nauto_failback = "on"\n'
        '[[links]]\ntype = "bcast"\ninterface = "lo"\n'
        '[auth]\nuse = 1\n[[auth.keys]]\nindex = 1\nmethod = "sha256"\nkey = "k"\n'
        '[[groups]]\nnode = "a"\nresources = ["Flag::relative"]\n'
        '[plugins.example]\njournal = "events.jsonl"\n'
    )
    toml.chmod(0o600)
    env = {**os.environ, "PYTHONPATH": str(installed)}
    done = subprocess.run(
        [sys.executable, "-m", "pulse", "check", "-c", str(toml), "--node", "a"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Flag::relative: use Flag::/absolute/path" in done.stderr
    assert f"{toml}:17: plugins.example.journal: expected an absolute path" in done.stderr
    assert "Traceback" not in done.stderr

    fixed = toml.read_text().replace("Flag::relative", "Flag::/run/x.flag")
    toml.write_text(fixed.replace('"events.jsonl"', '"/var/log/pulse-events.jsonl"'))
    done = subprocess.run(
        [sys.executable, "-m", "pulse", "check", "-c", str(toml), "--node", "a"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "plugins:       example 0.1.0" in done.stdout
