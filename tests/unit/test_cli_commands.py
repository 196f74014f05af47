"""`pulse`'s extra subcommands: the `pulse.commands` entry-point group (src/pulse/cli/main.py).

`pulse demo` comes from pulse-lab (lab/pyproject.toml); without it, `pulse demo` says
what to install in one line and exits 2.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from config_support import LEGACY, install

from pulse.cli import main as cli


def test_pulse_lab_registers_demo_without_pulse_importing_it() -> None:
    (demo,) = [ep for ep in cli.extra_commands().values() if ep.name == "demo"]
    assert demo.value == "pulse_lab.demo:main"
    assert demo.dist is not None and demo.dist.name == "pulse-lab"
    code = (
        "import sys\n"
        "from pulse.cli.main import build_parser, extra_commands\n"
        "build_parser(extra_commands()).format_help()\n"
        "import pulse.cli.run, pulse.daemon\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pulse_lab'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_demo_without_pulse_lab_is_a_one_line_hint_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "extra_commands", dict)
    assert cli.main(["demo", "--nodes", "3"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "pulse-lab" in err and "scripts/demo.sh" in err
    assert "Traceback" not in err


def test_help_lists_demo_with_or_without_pulse_lab(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for extras in (cli.extra_commands(), {}):
        monkeypatch.setattr(cli, "extra_commands", lambda extras=extras: dict(extras))
        with pytest.raises(SystemExit) as exited:
            cli.main(["--help"])
        assert exited.value.code == 0
        assert "demo" in capsys.readouterr().out


def test_an_extra_command_gets_the_arguments_after_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pulse_extra_cmd.py").write_text(
        "seen = []\ndef main(argv):\n    seen.append(argv)\n    return 7\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    hello = EntryPoint("hello", "pulse_extra_cmd:main", cli.COMMANDS_GROUP)
    monkeypatch.setattr(cli, "extra_commands", lambda: {"hello": hello})
    assert cli.main(["hello", "--loud", "x"]) == 7
    assert sys.modules.pop("pulse_extra_cmd").seen == [["--loud", "x"]]


def test_an_extra_command_that_cannot_load_is_exit_2_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = EntryPoint("hello", "pulse_no_such_module_here:main", cli.COMMANDS_GROUP)
    monkeypatch.setattr(cli, "extra_commands", lambda: {"hello": broken})
    assert cli.main(["hello"]) == 2
    err = capsys.readouterr().err
    assert "pulse hello: cannot load pulse_no_such_module_here:main" in err
    assert "Traceback" not in err


def test_built_in_commands_do_not_look_for_extras(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse() -> dict[str, EntryPoint]:
        raise AssertionError("a built-in subcommand read the entry points")

    monkeypatch.setattr(cli, "extra_commands", refuse)
    conf = install(LEGACY / "000-prime-calc-apache", tmp_path)
    assert cli.main(["check", "-c", str(conf), "--node", "prime"]) == 0
    assert "prime" in capsys.readouterr().out


def test_an_extra_cannot_replace_a_built_in_command(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = EntryPoint("run", "pulse_no_such_module_here:main", cli.COMMANDS_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [fake] if group else [])
    assert cli.extra_commands() == {}
