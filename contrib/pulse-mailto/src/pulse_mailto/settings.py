"""What the plugin is told: the ``[plugins.mailto]`` TOML table and ``MailTo::`` words.

Pure functions: parsing returns the settings plus every problem found as a
:class:`pulse.errors.Diagnostic` (``FILE:LINE: message`` with a fix-it hint); nothing
here raises on bad input, reads files or touches the network. The table is read with
pulse's :class:`pulse.plugin.settings.SettingsReader`, so its values follow the rules
every plugin shares (durations: seconds, or ``"30s"``, ``"500ms"``, ``"5min"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pulse.config.model import CLUSTER_EVENT_KINDS, ResourceSpec
from pulse.errors import Diagnostic, Severity
from pulse.plugin.settings import SettingsReader, did_you_mean

NAME = "mailto"
AGENT = "MailTo"
# Heartbeat's MailTo: a subject shorter than two characters becomes this.
DEFAULT_SUBJECT = "Resource Group"
# Debian's HA_RSCTMP, where the OCF agents keep their pseudo-resource state files.
DEFAULT_STATE_DIR = "/run/resource-agents"
DEFAULT_SENDMAIL = "/usr/sbin/sendmail"

# Every kind of cluster event pulse publishes (one list, shared with [[notify]]).
EVENT_KINDS = CLUSTER_EVENT_KINDS
DEFAULT_EVENTS = (
    "node-dead",
    "acquire-failed",
    "release-failed",
    "fenced",
    "fence-failed",
    "resource-failed",
    "resource-recovered",
)
TRANSPORTS = ("smtp", "sendmail")

KEYS = (
    "transport",
    "host",
    "port",
    "starttls",
    "ssl",
    "username",
    "password",
    "password_file",
    "helo",
    "cafile",
    "sendmail",
    "from",
    "to",
    "events",
    "subject",
    "timeout",
    "attempts",
    "retry_delay",
    "max_retry_delay",
    "give_up_after",
    "state_dir",
    "queue_size",
)

# user or user@domain; what `mail` and an MTA accept without quoting.
_ADDRESS = re.compile(
    r"[^\s@<>()\[\],;:\"\\]+"
    r"(?:@(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]))?"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how long one mail is tried before it is given up.

    The n-th retry waits ``first_delay * 2**(n-1)`` seconds, at most ``max_delay``;
    no attempt starts later than ``give_up_after`` seconds after the first one.
    """

    attempts: int = 5
    first_delay: float = 2.0
    max_delay: float = 60.0
    give_up_after: float = 300.0

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number *attempt* (2, 3, ...)."""
        if attempt <= 1:
            return 0.0
        return min(self.max_delay, self.first_delay * 2.0 ** (attempt - 2))


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: str | None = None
    helo: str | None = None  # EHLO name; default: the node's uname -n
    cafile: str | None = None  # CA bundle to verify the server with; default: the system's


@dataclass(frozen=True, slots=True, kw_only=True)
class MailSettings:
    """Everything ``[plugins.mailto]`` can say, with defaults applied."""

    transport: str = "smtp"
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    sendmail: str = DEFAULT_SENDMAIL
    sender: str = "root@localhost"
    to: tuple[str, ...] = ()  # recipients of event mails
    events: tuple[str, ...] = DEFAULT_EVENTS
    subject: str = "linux-ha"  # first words of event mails' subjects
    timeout: float = 30.0  # seconds per attempt
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    state_dir: str = DEFAULT_STATE_DIR
    queue_size: int = 100

    @property
    def budget(self) -> float:
        """The longest one mail can take, all attempts and waits included."""
        return self.retry.give_up_after + self.timeout


@dataclass(frozen=True, slots=True, kw_only=True)
class MailToTarget:
    """A ``MailTo::ADDR[,ADDR...][::SUBJECT]`` word, as Heartbeat's MailTo reads it."""

    recipients: tuple[str, ...]
    subject: str  # what the mail says: DEFAULT_SUBJECT when none (or a 1-char one) given


# --------------------------------------------------------------------------- MailTo words


def is_address(text: str) -> bool:
    return _ADDRESS.fullmatch(text) is not None


def split_addresses(text: str) -> tuple[list[str], list[str]]:
    """(addresses, problems) from a comma separated list."""
    found: list[str] = []
    problems: list[str] = []
    for part in text.split(","):
        item = part.strip()
        if not item:
            problems.append(f"empty address in {text!r}")
        elif not is_address(item):
            problems.append(f"{item!r} is not a mail address")
        else:
            found.append(item)
    return found, problems


def effective_subject(written: str | None) -> str:
    """Heartbeat's rule: a subject of at least two characters, else ``Resource Group``."""
    if written is not None and len(written) >= 2:
        return written
    return DEFAULT_SUBJECT


def parse_mailto(spec: ResourceSpec) -> tuple[MailToTarget | None, list[Diagnostic]]:
    """Read one ``MailTo`` haresources word; diagnostics carry the word's FILE:LINE."""
    file, line = (spec.source.file, spec.source.line) if spec.source else ("haresources", 0)
    diags: list[Diagnostic] = []

    def error(message: str) -> None:
        diags.append(Diagnostic(file, line, f"{spec.raw}: {message}"))

    if not spec.args or not spec.args[0].strip():
        error("MailTo needs at least one address: MailTo::admin@example.com[::Subject]")
        return None, diags
    if len(spec.args) > 2:
        error(
            f"MailTo takes an address list and a subject, found {len(spec.args)} arguments "
            "(a subject cannot contain '::' or blanks): "
            "MailTo::a@example.com,b@example.com::Subject"
        )
        return None, diags
    recipients, problems = split_addresses(spec.args[0])
    for problem in problems:
        error(f"{problem}: separate addresses with commas: MailTo::a@example.com,b@example.com")
    if problems:
        return None, diags
    written = spec.args[1] if len(spec.args) == 2 else None
    if written is not None and len(written) < 2:
        diags.append(
            Diagnostic(
                file,
                line,
                f"{spec.raw}: subject {written!r} is shorter than 2 characters; "
                f"the mails say {DEFAULT_SUBJECT!r} instead (as Heartbeat's MailTo)",
                Severity.WARNING,
            )
        )
    return MailToTarget(recipients=tuple(recipients), subject=effective_subject(written)), diags


# --------------------------------------------------------------------------- [plugins.mailto]


def parse_settings(
    r: SettingsReader,
    *,
    cluster: str,
    hostname: str,
    state_dir: str = DEFAULT_STATE_DIR,
) -> tuple[MailSettings, list[Diagnostic]]:
    """The ``[plugins.mailto]`` table of *r* (possibly empty) as :class:`MailSettings`.

    ``hostname`` (uname -n) makes the default sender ``root@HOSTNAME``; ``state_dir``
    is the default for ``state_dir`` (``$HA_RSCTMP``).
    """
    table = r.table
    transport = r.choice("transport", TRANSPORTS, "smtp")

    ssl = r.flag("ssl")
    starttls = r.flag("starttls")
    if ssl and starttls:
        r.error(
            "starttls",
            "ssl and starttls exclude each other: ssl = true speaks TLS from the first byte "
            "(SMTPS, port 465), starttls = true upgrades a plain connection (port 587 or 25)",
        )
        starttls = False
    port = r.integer("port", 465 if ssl else 25, low=1, high=65535)
    username = r.optional_text("username", example='"pulse"')
    password = r.optional_text("password", example='"secret"')
    password_file = r.optional_text("password_file", example='"/etc/pulse/mail.secret"')
    if password is not None and password_file is not None:
        r.error("password_file", "give either password or password_file, not both")
    if username is None and (password is not None or password_file is not None):
        r.error("username", "a password needs a username to log in with: add username = ...")
    if username is not None and password is None and password_file is None:
        r.error(
            "username",
            'logging in needs a password: add password_file = "/etc/pulse/mail.secret" '
            "(a file readable by root only) or password = ...",
        )
    if (username is not None) and not (ssl or starttls):
        r.warn(
            "username",
            "the password would cross the network in clear text: set starttls = true "
            "(or ssl = true)",
        )
    smtp = SmtpSettings(
        host=r.text("host", "localhost", example='"mail.example.com"'),
        port=port,
        starttls=starttls,
        ssl=ssl,
        username=username,
        password=password,
        password_file=password_file,
        helo=r.optional_text("helo", example='"node1.example.com"'),
        cafile=r.optional_text("cafile", example='"/etc/ssl/certs/internal-ca.pem"'),
    )
    if smtp.cafile is not None and not (ssl or starttls):
        r.warn("cafile", "used only with ssl = true or starttls = true")
    if transport == "sendmail":
        smtp_keys = ("host", "port", "starttls", "ssl", "username", "password", "password_file")
        for key in (*smtp_keys, "helo", "cafile"):
            if key in table:
                r.warn(key, 'ignored with transport = "sendmail"')

    sendmail = r.path("sendmail", DEFAULT_SENDMAIL)

    sender = r.text("from", f"root@{hostname}", example='"pulse@example.com"')
    if not is_address(sender):
        r.error("from", f'{sender!r} is not a mail address (e.g. from = "pulse@example.com")')
        sender = f"root@{hostname}"

    to = _recipients(r)
    events = _events(r)
    if events and not to and "events" in table:
        r.warn(
            "events",
            'no recipients, so no event mail is sent: add to = ["oncall@example.com"]',
        )

    retry = RetryPolicy(
        attempts=r.integer("attempts", 5, low=1, high=100),
        first_delay=r.duration("retry_delay", 2.0, zero=True),
        max_delay=r.duration("max_retry_delay", 60.0, zero=True),
        give_up_after=r.duration("give_up_after", 300.0, zero=True),
    )
    settings = MailSettings(
        transport=transport,
        smtp=smtp,
        sendmail=sendmail,
        sender=sender,
        to=to,
        events=events,
        subject=r.text("subject", cluster, example='"web cluster"'),
        timeout=r.duration("timeout", 30.0),
        retry=retry,
        state_dir=r.path("state_dir", state_dir),
        queue_size=r.integer("queue_size", 100, low=1, high=100000),
    )
    r.check_keys(KEYS)
    return settings, r.diagnostics


def _recipients(r: SettingsReader) -> tuple[str, ...]:
    # A single string or a list; each string may hold several comma-separated addresses.
    value = r.table.get("to", [])
    if isinstance(value, str):
        items: list[object] = [value]
    elif isinstance(value, list):
        items = list(value)
    else:
        r.error("to", f'expected a list of addresses, got {value!r} (to = ["a@example.com"])')
        return ()
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            r.error("to", f"expected addresses as strings, got {item!r}")
            continue
        found, problems = split_addresses(item)
        for problem in problems:
            r.error("to", f'{problem} (to = ["a@example.com", "b@example.com"])')
        out.extend(a for a in found if a not in out)
    return tuple(out)


def _events(r: SettingsReader) -> tuple[str, ...]:
    value = r.table.get("events", list(DEFAULT_EVENTS))
    if not isinstance(value, list):
        r.error("events", f'expected a list such as ["node-dead", "fenced"], got {value!r}')
        return DEFAULT_EVENTS
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or item not in EVENT_KINDS:
            hint = did_you_mean(item, EVENT_KINDS) if isinstance(item, str) else ""
            r.error("events", f"unknown event {item!r}{hint}; known: {', '.join(EVENT_KINDS)}")
        elif item not in out:
            out.append(item)
    return tuple(out)
