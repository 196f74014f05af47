"""The mails' exact text: Heartbeat MailTo's subjects and body, and event alerts."""

from __future__ import annotations

import calendar

import pytest
from pulse_mailto.compose import agent_mail, event_mail, release_subject, takeover_subject
from pulse_mailto.settings import MailSettings, MailToTarget

from pulse.plugin.api import ClusterEvent

# Tue Mar  5 14:03:07 UTC 2024: a one-digit day, padded as `date` pads it.
WHEN = float(calendar.timegm((2024, 3, 5, 14, 3, 7)))
pytestmark = pytest.mark.usefixtures("utc")


def test_takeover_subject_is_heartbeats_words_with_date_and_host() -> None:
    assert (
        takeover_subject("JuliusCaesar", WHEN, "julius")
        == "JuliusCaesar Takeover in progress at Tue Mar  5 14:03:07 UTC 2024 on julius"
    )


def test_release_subject_is_heartbeats_words_with_date_and_host() -> None:
    assert (
        release_subject("Resource Group", WHEN, "caesar")
        == "Resource Group Migrating resource away at Tue Mar  5 14:03:07 UTC 2024 from caesar"
    )


def test_agent_mail_body_repeats_the_subject_and_the_command_line() -> None:
    target = MailToTarget(recipients=("a@x.example", "b@y.example"), subject="Web")
    mail = agent_mail(
        target,
        operation="start",
        host="prime",
        sender="root@prime",
        command_line="/etc/ha.d/resource.d/MailTo a@x.example,b@y.example Web start",
        when=WHEN,
    )
    assert mail.recipients == ("a@x.example", "b@y.example")
    assert mail.body == (
        "Web Takeover in progress at Tue Mar  5 14:03:07 UTC 2024 on prime\n"
        "\n"
        "Command line was:\n"
        "/etc/ha.d/resource.d/MailTo a@x.example,b@y.example Web start\n"
    )
    msg = mail.message()
    assert msg["To"] == "a@x.example, b@y.example"
    assert msg["From"] == "root@prime"
    assert msg["Subject"] == mail.subject
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Pulse-Event"] == "takeover"
    assert str(msg["Message-ID"]).endswith("@prime>")


def test_agent_mail_refuses_operations_other_than_start_and_stop() -> None:
    target = MailToTarget(recipients=("a@x.example",), subject="Web")
    with pytest.raises(ValueError, match="status"):
        agent_mail(target, operation="status", host="h", sender="s@h", command_line="", when=0)


@pytest.mark.parametrize(
    ("kind", "node", "group", "headline"),
    [
        ("node-dead", "calc", None, "node calc is dead"),
        ("acquire-failed", "prime", "web", "prime failed to take over web"),
        ("release-failed", "prime", "web", "prime failed to release web: FAILED"),
        ("fenced", "calc", None, "calc was fenced by prime"),
        ("fence-failed", "calc", None, "prime failed to fence calc"),
        ("etcd-lost", "prime", None, "prime cannot reach etcd"),
    ],
)
def test_event_mail_subject_names_what_happened(
    kind: str, node: str, group: str | None, headline: str
) -> None:
    event = ClusterEvent(kind=kind, node=node, local="prime", group=group, when=WHEN)
    mail = event_mail(event, MailSettings(to=("oncall@example.com",), subject="web cluster"))
    assert mail.subject.startswith(f"web cluster: {headline}")
    assert mail.recipients == ("oncall@example.com",)


def test_event_mail_body_lists_the_facts() -> None:
    event = ClusterEvent(
        kind="acquire-failed",
        node="prime",
        local="prime",
        group="198.51.100.10",
        resources=("198.51.100.10", "apache2"),
        reason="Return code 1 from /etc/init.d/apache2",
        when=WHEN,
    )
    body = event_mail(event, MailSettings(to=("ops@example.com",), subject="web")).body
    assert body.splitlines() == [
        "web: prime failed to take over 198.51.100.10",
        "",
        "Event:       acquire-failed",
        "Node:        prime",
        "Reported by: prime",
        "Time:        Tue Mar  5 14:03:07 UTC 2024",
        "Group:       198.51.100.10",
        "Resources:   198.51.100.10 apache2",
        "Reason:      Return code 1 from /etc/init.d/apache2",
        "",
        "Run `pulsectl status` on prime for the cluster's state.",
    ]
