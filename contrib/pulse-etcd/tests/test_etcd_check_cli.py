"""``pulse check`` with pulse-etcd installed: its settings and the timing argument,
as FILE:LINE diagnostics (docs/plugins/etcd.md, "The timing argument")."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulse.cli.main import main

HEAD = """\
[cluster]
name = "shop"
nodes = ["prime", "calc"]
auto_failback = "on"

[[links]]
type = "bcast"
interface = "lo"

[auth]
use = 1

[[auth.keys]]
index = 1
method = "sha1"
key = "secret"

[[groups]]
node = "prime"
resources = ["198.51.100.10"]

[resources]
stop_timeout = "1s"

[plugins.etcd]
"""
FIRST = HEAD.count("\n") + 1  # the line of the table's first key


def check(tmp_path: Path, table: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "pulse.toml"
    path.write_text(HEAD + table)
    path.chmod(0o600)
    rc = main(["check", "-c", str(path), "--node", "prime"])
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_etcd_check_accepts_the_defaults_with_three_endpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = ", ".join(f'"http://203.0.113.{n}:2379"' for n in (11, 12, 13))
    table = f"endpoints = [{urls}]\n"
    rc, out = check(tmp_path, table, capsys)
    assert rc == 0, out
    assert "plugins.etcd" not in out


def test_etcd_check_refuses_a_fractional_ttl_a_bad_url_and_an_unsafe_timing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = (
        'endpoints = ["http://203.0.113.11:2379", "etcd2:2379"]\n'
        "ttl = 2.5\n"
        'on_etcd_lost = "kep"\n'
        "ttl_seconds = 3\n"
    )
    rc, out = check(tmp_path, table, capsys)
    assert rc == 1
    f = str(tmp_path / "pulse.toml")
    assert f"{f}:{FIRST}: plugins.etcd.endpoints: element 2: 'etcd2:2379' is not an etcd URL" in out
    assert f"{f}:{FIRST + 1}: plugins.etcd.ttl: expected whole seconds, got 2.5" in out
    assert 'did you mean "keep"' in out or "did you mean keep" in out
    assert f"{f}:{FIRST + 3}: plugins.etcd.ttl_seconds: unknown key" in out


def test_etcd_check_explains_why_a_timing_is_unsafe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = (
        'endpoints = ["http://203.0.113.11:2379"]\n'
        "ttl = 3\n"
        'renew_interval = "2s"\n'
        'safety_margin = "0.5s"\n'
        'request_timeout = "1s"\n'
    )
    rc, out = check(tmp_path, table, capsys)
    assert rc == 1
    f = str(tmp_path / "pulse.toml")
    # renew 2 s < ttl - margin = 2.5 s: allowed, but it cannot ride out an election.
    assert "renew_interval 2s must be shorter" not in out
    margin = f"{f}:{FIRST + 3}: plugins.etcd.safety_margin: safety_margin 0.5s"
    assert f"{margin} must be longer than request_timeout 1s" in out
    assert "does not ride out an etcd leader election" in out
    assert "shorter than the worst stop of a group (1s" in out
