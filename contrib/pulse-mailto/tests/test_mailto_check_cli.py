"""``pulse check`` with the installed plugin: its mistakes as FILE:LINE, exit status 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulse.cli.main import main

TOML = """\
[cluster]
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
resources = ["198.51.100.10", "MailTo::ops@example.com::Web"]

[plugins.mailto]
to = ["oncall@example.com"]
ssl = true
starttls = true
events = ["node-died"]
"""

HACF = "keepalive 1\ndeadtime 10\nbcast lo\nauto_failback on\nnode prime\nnode calc\n"


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    rc = main(["check", "-c", str(path), "--node", "prime"])
    out = capsys.readouterr()
    return rc, (out.out + out.err).splitlines()


def test_toml_mistakes_are_reported_at_their_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pulse.toml"
    path.write_text(TOML)
    path.chmod(0o600)
    rc, lines = check(path, capsys)
    assert rc == 1
    assert f"{path}:24: plugins.mailto.starttls: ssl and starttls exclude each other" in "\n".join(
        lines
    )
    assert any(
        line.startswith(f"{path}:25: plugins.mailto.events: unknown event 'node-died' "
                        "(did you mean node-dead?)")
        for line in lines
    )  # fmt: skip


def test_haresources_mailto_mistakes_are_reported_at_their_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ha.cf").write_text(HACF)
    (tmp_path / "authkeys").write_text("auth 1\n1 sha1 secret\n")
    (tmp_path / "authkeys").chmod(0o600)
    (tmp_path / "haresources").write_text(
        "# web\nprime 198.51.100.10 MailTo::alerts@example.org::Web\n"
        "calc 198.51.100.11 MailTo::alerts@example.org::a::b\n"
    )
    rc, lines = check(tmp_path, capsys)
    assert rc == 1
    assert [line for line in lines if "MailTo" in line] == [
        f"{tmp_path}/haresources:3: MailTo::alerts@example.org::a::b: MailTo takes an address "
        "list and a subject, found 3 arguments (a subject cannot contain '::' or blanks): "
        "MailTo::a@example.com,b@example.com::Subject"
    ]


def test_a_good_heartbeat_config_with_mailto_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ha.cf").write_text(HACF)
    (tmp_path / "authkeys").write_text("auth 1\n1 sha1 secret\n")
    (tmp_path / "authkeys").chmod(0o600)
    (tmp_path / "haresources").write_text(
        "julius IPaddr::198.51.100.254 MailTo::alerts@myworkaddress.com::JuliusCaesar\n".replace(
            "julius", "prime"
        )
    )
    rc, lines = check(tmp_path, capsys)
    assert rc == 0, lines
    assert any("mailto" in line for line in lines if line.startswith("plugins:"))
