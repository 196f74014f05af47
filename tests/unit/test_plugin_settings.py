"""pulse.plugin.settings: one reader of [plugins.NAME] for every plugin, one set of rules,
FILE:LINE diagnostics from the lines the TOML loader recorded (no second read of the file)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from pulse.config import load_config
from pulse.plugin.settings import SettingsReader, parse_flag, parse_seconds

TOML = """\
cluster = { nodes = ["prime", "calc"], auto_failback = "off" }
links = [{ type = "bcast", interface = "lo" }]
auth = { use = 1, keys = [{ index = 1, method = "crc" }] }

[plugins.example]
journal = "var/log/journal"
timeout = "2min"
retries = 3
colour = "blue"

[[plugins.example.targets]]
name = "first"

[[plugins.example.targets]]
name = ""
"""


def reader(table: Mapping[str, object]) -> SettingsReader:
    return SettingsReader(table, plugin="example", file="pulse.toml")


def messages(r: SettingsReader) -> list[str]:
    return [str(d) for d in r.diagnostics]


def test_diagnostics_point_at_the_line_the_loader_recorded(tmp_path: Path) -> None:
    path = tmp_path / "pulse.toml"
    path.write_text(TOML)
    path.chmod(0o600)
    config = load_config(path, node="prime").config
    path.unlink()  # the reader never goes back to the file
    r = SettingsReader.of(config, "example")
    assert r.path("journal", None) is None
    assert r.duration("timeout", 5.0) == 120.0
    assert r.integer("retries", 1, low=1, high=10) == 3
    targets = r.tables("targets")
    assert [t.text("name", "?", example='"web"') for t in targets] == ["first", "?"]
    r.check_keys()
    assert messages(r) == [
        f"{path}:6: plugins.example.journal: expected an absolute path, got 'var/log/journal'",
        f"{path}:9: plugins.example.colour: unknown key; known: journal, timeout, retries, targets",
        f"{path}:15: plugins.example.targets[1].name: expected a non-empty string, got '' "
        '(e.g. name = "web")',
    ]


def test_a_heartbeat_config_has_no_table_and_reports_at_its_origin(tmp_path: Path) -> None:
    (tmp_path / "ha.cf").write_text("bcast lo\nauto_failback off\nnode prime\nnode calc\n")
    (tmp_path / "authkeys").write_text("auth 1\n1 crc\n")
    (tmp_path / "authkeys").chmod(0o600)
    config = load_config(tmp_path, node="prime").config
    r = SettingsReader.of(config, "example")
    assert r.table == {} and r.duration("timeout", 5.0) == 5.0
    r.error("timeout", "needed with MailTo words")
    assert messages(r) == [f"{tmp_path}: plugins.example.timeout: needed with MailTo words"]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(30, 30.0), (2.5, 2.5), ("30s", 30.0), ("500ms", 0.5), ("5min", 300.0), ("1h", 3600.0)],
)
def test_a_duration_is_seconds_or_a_string_with_a_unit(value: object, seconds: float) -> None:
    assert parse_seconds(value) == seconds
    assert reader({"timeout": value}).duration("timeout", 1.0) == seconds


@pytest.mark.parametrize("value", [0, -1, "soon", True, [30], float("inf")])
def test_a_bad_duration_is_an_error_saying_how_to_write_one(value: object) -> None:
    r = reader({"timeout": value})
    assert r.duration("timeout", 7.0) == 7.0
    assert messages(r) == [
        "pulse.toml: plugins.example.timeout: expected a duration of more than 0 seconds (a "
        f'number, or a string such as "30s", "500ms", "5min"), got {value!r}'
    ]


def test_zero_is_a_duration_only_where_the_plugin_allows_it() -> None:
    r = reader({"delay": 0, "wait": "0s"})
    assert (r.duration("delay", 1.0, zero=True), r.duration("wait", 1.0)) == (0.0, 1.0)
    assert "expected a duration of more than 0 seconds" in messages(r)[0]


@pytest.mark.parametrize(
    ("table", "read", "message"),
    [
        ({"k": 1}, lambda r: r.text("k", "d", example='"x"'), "expected a non-empty string"),
        ({"k": "yes"}, lambda r: r.flag("k"), "expected true or false, got 'yes'"),
        ({"k": True}, lambda r: r.integer("k", 1, low=1, high=9), "from 1 to 9, got True"),
        ({"k": 10}, lambda r: r.integer("k", 1, low=1, high=9), "from 1 to 9, got 10"),
        ({"k": "a"}, lambda r: r.strings("k", example='["a"]'), "expected a list of strings"),
        ({"k": []}, lambda r: r.strings("k", example='["a"]', empty=False), "a non-empty list"),
        ({"k": "smpt"}, lambda r: r.choice("k", ("smtp", "sendmail"), "smtp"), "did you mean smtp"),
        ({"k": "etc"}, lambda r: r.path("k", "/etc"), "expected an absolute path"),
        ({"k": 5}, lambda r: r.table_at("k"), "expected a table, got 5"),
        ({"k": {"a": 1}}, lambda r: r.tables("k"), "expected an array of tables"),
    ],
)
def test_a_wrong_value_gives_the_default_and_an_error_naming_the_key(
    table: Mapping[str, object], read: object, message: str
) -> None:
    r = reader(table)
    assert callable(read)
    read(r)
    [found] = messages(r)
    assert found.startswith("pulse.toml: plugins.example.k: ")
    assert message in found


def test_good_values_come_back_typed() -> None:
    r = reader(
        {
            "host": "  mail.example.com ",
            "ssl": True,
            "port": 465,
            "to": ["a@example.com"],
            "transport": "sendmail",
            "dir": "/run/x/",
            "smtp": {"helo": "prime"},
        }
    )
    assert r.text("host", "localhost", example='"mail"') == "mail.example.com"
    assert r.optional_text("user", example='"u"') is None
    assert r.flag("ssl") is True and r.flag("starttls") is False
    assert r.integer("port", 25, low=1, high=65535) == 465
    assert r.strings("to", example="[]") == ("a@example.com",)
    assert r.choice("transport", ("smtp", "sendmail"), "smtp") == "sendmail"
    assert r.path("dir", "/") == "/run/x"
    assert r.table_at("smtp").text("helo", "", example='"x"') == "prime"
    r.check_keys()
    assert r.diagnostics == []


def test_an_unknown_key_is_reported_with_the_closest_known_one() -> None:
    r = reader({"hots": "x", "port": 25})
    r.check_keys(("host", "port"))
    assert messages(r) == ["pulse.toml: plugins.example.hots: unknown key (did you mean host?)"]


def test_a_flag_in_a_word_is_read_as_heartbeat_reads_one() -> None:
    assert [parse_flag(v) for v in ("yes", "OFF", "1", "n", True, "maybe", 1)] == [
        True,
        False,
        True,
        False,
        True,
        None,
        None,
    ]


def test_a_list_of_strings_keeps_each_as_written() -> None:
    r = reader({"argv": ["asterisk", "-rx", " core reload "]})
    assert r.strings("argv", example="[]") == ("asterisk", "-rx", " core reload ")


def test_a_required_key_that_is_missing_says_how_to_write_it() -> None:
    r = reader({"kind": "fence-agent"})
    assert r.require("kind", example='"x"') and not r.require("agent", example='"fence_ipmilan"')
    assert messages(r) == [
        'pulse.toml: plugins.example.agent: required (e.g. agent = "fence_ipmilan")'
    ]
