"""The mails themselves: Heartbeat MailTo's subjects and bodies, and event alerts.

Pure functions of their arguments (the time is passed in), so the exact text is
tested without a clock or a mail server.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from pulse.plugin.api import ClusterEvent
from pulse_mailto.settings import MailSettings, MailToTarget

# Long subjects stay on one line (RFC 5322 allows 998 characters), as `mail` sends them.
_POLICY = policy.default.clone(max_line_length=998)


def heartbeat_date(when: float) -> str:
    """The time as ``date`` prints it in the C locale: ``Tue Mar  5 14:03:07 UTC 2024``."""
    return time.strftime("%a %b %e %H:%M:%S %Z %Y", time.localtime(when))


def takeover_subject(subject: str, when: float, host: str) -> str:
    """MailTo's start subject: ``SUBJECT Takeover in progress at DATE on HOST``."""
    return f"{subject} Takeover in progress at {heartbeat_date(when)} on {host}"


def release_subject(subject: str, when: float, host: str) -> str:
    """MailTo's stop subject: ``SUBJECT Migrating resource away at DATE from HOST``."""
    return f"{subject} Migrating resource away at {heartbeat_date(when)} from {host}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Mail:
    """One mail to send: the envelope and the text, independent of the transport."""

    sender: str
    recipients: tuple[str, ...]
    subject: str
    body: str
    when: float
    host: str  # the node sending it (Message-ID domain, X-Pulse-Node)
    kind: str  # "takeover", "release" or an event kind

    def describe(self) -> str:
        return f"mail {self.subject!r} to {', '.join(self.recipients)}"

    def message(self) -> EmailMessage:
        msg = EmailMessage(policy=_POLICY)
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Subject"] = self.subject
        msg["Date"] = formatdate(self.when, localtime=True)
        # An explicit domain: make_msgid would otherwise ask DNS for our FQDN.
        msg["Message-ID"] = make_msgid("pulse", domain=self.host or "localhost")
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
        msg["X-Pulse-Node"] = self.host
        msg["X-Pulse-Event"] = self.kind
        msg.set_content(self.body)
        return msg


def agent_mail(
    target: MailToTarget,
    *,
    operation: str,
    host: str,
    sender: str,
    command_line: str,
    when: float,
) -> Mail:
    """The mail MailTo sends when its group starts (``start``) or stops (``stop``) here.

    The body is Heartbeat's: the subject line, a blank line, ``Command line was:`` and
    the resource script command line Heartbeat would have run.
    """
    if operation == "start":
        subject, kind = takeover_subject(target.subject, when, host), "takeover"
    elif operation == "stop":
        subject, kind = release_subject(target.subject, when, host), "release"
    else:
        raise ValueError(f"MailTo mails on start and stop, not on {operation!r}")
    body = f"{subject}\n\nCommand line was:\n{command_line}\n"
    return Mail(
        sender=sender,
        recipients=target.recipients,
        subject=subject,
        body=body,
        when=when,
        host=host,
        kind=kind,
    )


def event_headline(event: ClusterEvent) -> str:
    """What happened, in a few words (the subject after the cluster's name)."""
    group = event.group or "?"
    match event.kind:
        case "node-dead":
            return f"node {event.node} is dead"
        case "node-up":
            return f"node {event.node} is up"
        case "acquired":
            return f"{event.local} took over {group}"
        case "released":
            return f"{event.local} released {group}"
        case "acquire-failed":
            return f"{event.local} failed to take over {group}"
        case "release-failed":
            return f"{event.local} failed to release {group}: FAILED, needs an administrator"
        case "fenced":
            return f"{event.node} was fenced by {event.local}"
        case "fence-failed":
            return f"{event.local} failed to fence {event.node}"
        case "shutdown":
            return f"{event.node} is shutting down"
        case "resource-failed":
            return f"a resource of {group} failed on {event.local}"
        case "resource-recovered":
            return f"a resource of {group} is running again on {event.local}"
        case "etcd-lost":
            return f"{event.local} cannot reach etcd"
        case "etcd-regained":
            return f"{event.local} reaches etcd again"
        case _:
            return f"{event.kind} on {event.node}"


def event_mail(event: ClusterEvent, settings: MailSettings) -> Mail:
    """The alert for one cluster event, to ``settings.to``."""
    subject = f"{settings.subject}: {event_headline(event)}"
    lines = [
        subject,
        "",
        f"Event:       {event.kind}",
        f"Node:        {event.node}",
        f"Reported by: {event.local}",
        f"Time:        {heartbeat_date(event.when)}",
    ]
    if event.group is not None:
        lines.append(f"Group:       {event.group}")
    if event.resources:
        lines.append(f"Resources:   {' '.join(event.resources)}")
    if event.reason:
        lines.append(f"Reason:      {event.reason}")
    lines += ["", f"Run `pulsectl status` on {event.local} for the cluster's state."]
    return Mail(
        sender=settings.sender,
        recipients=settings.to,
        subject=subject,
        body="\n".join(lines) + "\n",
        when=event.when,
        host=event.local,
        kind=event.kind,
    )
