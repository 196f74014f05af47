"""``MailTo::`` words and ``[plugins.mailto]``: values, defaults and diagnostics."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from pulse_mailto.settings import (
    DEFAULT_EVENTS,
    DEFAULT_SUBJECT,
    MailSettings,
    RetryPolicy,
    parse_mailto,
    parse_settings,
)

from pulse.config.haresources import resource_spec
from pulse.config.model import ResourceSpec, Source
from pulse.errors import Severity
from pulse.plugin.settings import SettingsReader


def word(text: str, line: int = 7) -> ResourceSpec:
    spec, err = resource_spec(text, Source("/etc/ha.d/haresources", line))
    assert spec is not None, err
    return spec


def settings(table: Mapping[str, object]) -> tuple[MailSettings, list[str]]:
    lines = {"ssl": 33, "starttls": 34, "events": 36, "to": 35, "port": 32}
    reader = SettingsReader(
        table,
        plugin="mailto",
        file="/etc/pulse/pulse.toml",
        lines={
            ("plugins", "mailto"): 30,
            **{("plugins", "mailto", k): n for k, n in lines.items()},
        },
    )
    s, diags = parse_settings(reader, cluster="web", hostname="prime.example.com")
    return s, [str(d) for d in diags]


# --------------------------------------------------------------------------- MailTo words


def test_mailto_word_lists_comma_separated_recipients_and_a_subject() -> None:
    target, diags = parse_mailto(word("MailTo::a@x.example,b@y.example::Subject"))
    assert diags == []
    assert target is not None
    assert target.recipients == ("a@x.example", "b@y.example")
    assert target.subject == "Subject"


def test_mailto_word_without_subject_uses_heartbeats_default_subject() -> None:
    target, diags = parse_mailto(word("MailTo::alerts@myworkaddress.com"))
    assert diags == []
    assert target is not None
    assert target.subject == DEFAULT_SUBJECT == "Resource Group"


def test_mailto_subject_of_one_character_becomes_the_default_with_a_warning() -> None:
    target, diags = parse_mailto(word("MailTo::root::X"))
    assert target is not None
    assert target.recipients == ("root",)  # a local user, as `mail root`
    assert target.subject == "Resource Group"
    assert [d.severity for d in diags] == [Severity.WARNING]
    assert str(diags[0]).startswith("/etc/ha.d/haresources:7: warning: MailTo::root::X: subject")


def test_mailto_without_address_is_an_error_at_its_line() -> None:
    target, diags = parse_mailto(word("MailTo", line=12))
    assert target is None
    assert [str(d) for d in diags] == [
        "/etc/ha.d/haresources:12: MailTo: MailTo needs at least one address: "
        "MailTo::admin@example.com[::Subject]"
    ]


def test_mailto_with_three_arguments_is_an_error_as_in_heartbeat() -> None:
    target, diags = parse_mailto(word("MailTo::a@b.example::Sub::ject"))
    assert target is None
    assert "found 3 arguments" in diags[0].message
    assert diags[0].line == 7


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("MailTo::a@b.example,,c@d.example::S", "empty address"),
        ("MailTo::<a@b.example>::S", "'<a@b.example>' is not a mail address"),
        ("MailTo::a@-bad-.example::S", "'a@-bad-.example' is not a mail address"),
    ],
)
def test_mailto_with_a_malformed_address_is_an_error(text: str, problem: str) -> None:
    target, diags = parse_mailto(word(text))
    assert target is None
    assert problem in diags[0].message
    assert diags[0].severity is Severity.ERROR


# --------------------------------------------------------------------------- [plugins.mailto]


def test_no_table_means_smtp_to_localhost_port_25_and_no_event_mail() -> None:
    s, diags = settings({})
    assert diags == []
    assert (s.transport, s.smtp.host, s.smtp.port) == ("smtp", "localhost", 25)
    assert not s.smtp.ssl and not s.smtp.starttls
    assert s.to == ()
    assert s.events == DEFAULT_EVENTS
    assert s.sender == "root@prime.example.com"
    assert s.subject == "web"
    assert s.retry == RetryPolicy()


def test_full_table_is_read() -> None:
    s, diags = settings(
        {
            "host": "mail.example.com",
            "starttls": True,
            "port": 587,
            "username": "pulse",
            "password_file": "/etc/pulse/mail.secret",
            "from": "pulse@example.com",
            "to": ["ops@example.com", "dba@example.com,ops@example.com"],
            "events": ["node-dead", "fenced"],
            "subject": "web cluster",
            "timeout": "10s",
            "attempts": 3,
            "retry_delay": "500ms",
            "max_retry_delay": 5,
            "give_up_after": "2min",
        }
    )
    assert diags == []
    assert s.smtp.port == 587 and s.smtp.starttls and s.smtp.username == "pulse"
    assert s.to == ("ops@example.com", "dba@example.com")
    assert s.events == ("node-dead", "fenced")
    assert s.timeout == 10.0
    assert s.retry == RetryPolicy(attempts=3, first_delay=0.5, max_delay=5.0, give_up_after=120.0)


def test_ssl_defaults_to_port_465() -> None:
    s, _ = settings({"ssl": True})
    assert s.smtp.port == 465


def test_ssl_and_starttls_together_is_an_error_with_a_hint() -> None:
    _, diags = settings({"ssl": True, "starttls": True})
    assert diags == [
        "/etc/pulse/pulse.toml:34: plugins.mailto.starttls: ssl and starttls exclude each "
        "other: ssl = true speaks TLS from the first byte (SMTPS, port 465), starttls = true "
        "upgrades a plain connection (port 587 or 25)"
    ]


def test_unknown_key_suggests_the_right_one() -> None:
    _, diags = settings({"recipients": ["a@b.example"], "hots": "x"})
    assert any("plugins.mailto.hots: unknown key (did you mean host?)" in d for d in diags)
    assert any("plugins.mailto.recipients: unknown key" in d for d in diags)


def test_unknown_event_kind_is_an_error() -> None:
    _, diags = settings({"to": ["a@b.example"], "events": ["node-died"]})
    assert len(diags) == 1
    assert diags[0].startswith("/etc/pulse/pulse.toml:36: plugins.mailto.events: unknown event")
    assert "(did you mean node-dead?)" in diags[0]


def test_events_without_recipients_warns_that_nothing_is_sent() -> None:
    _, diags = settings({"events": ["node-dead"]})
    assert diags == [
        "/etc/pulse/pulse.toml:36: warning: plugins.mailto.events: no recipients, so no "
        'event mail is sent: add to = ["oncall@example.com"]'
    ]


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"port": 0}, "plugins.mailto.port: expected a whole number from 1 to 65535, got 0"),
        ({"port": "25"}, "plugins.mailto.port: expected a whole number"),
        ({"to": "not an address"}, "'not an address' is not a mail address"),
        ({"to": 5}, "plugins.mailto.to: expected a list of addresses"),
        ({"timeout": 0}, "plugins.mailto.timeout: expected a duration of more than 0"),
        ({"retry_delay": "soon"}, "plugins.mailto.retry_delay: expected a duration"),
        ({"transport": "pigeon"}, 'expected one of "smtp", "sendmail"'),
        ({"sendmail": "sendmail"}, "plugins.mailto.sendmail: expected an absolute path"),
        ({"from": "me at home"}, "plugins.mailto.from: 'me at home' is not a mail address"),
        ({"username": "u", "starttls": True}, "logging in needs a password"),
        ({"password": "p"}, "a password needs a username"),
        ({"starttls": "yes"}, "plugins.mailto.starttls: expected true or false"),
        ({"attempts": 0}, "plugins.mailto.attempts: expected a whole number from 1 to 100"),
    ],
)
def test_bad_values_are_errors_naming_the_key(table: Mapping[str, object], expected: str) -> None:
    _, diags = settings(table)
    assert any(expected in d for d in diags), diags


def test_login_without_tls_warns_about_clear_text_passwords() -> None:
    _, diags = settings({"username": "u", "password": "p"})
    assert diags == [
        "/etc/pulse/pulse.toml:30: warning: plugins.mailto.username: the password would "
        "cross the network in clear text: set starttls = true (or ssl = true)"
    ]


def test_smtp_settings_never_show_the_password() -> None:
    s, _ = settings({"username": "u", "password": "hunter2", "starttls": True})
    assert "hunter2" not in repr(s)


def test_backoff_doubles_up_to_the_maximum() -> None:
    policy = RetryPolicy(attempts=6, first_delay=2.0, max_delay=10.0)
    assert [policy.delay_before(n) for n in range(1, 7)] == [0.0, 2.0, 4.0, 8.0, 10.0, 10.0]
