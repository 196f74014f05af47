"""Getting one mail out, once: SMTP (smtplib in a worker thread) or ``sendmail -t``.

Each ``send`` is one attempt, bounded by the settings' ``timeout``; retrying is the
caller's business (:mod:`pulse_mailto.delivery`). Failures are :class:`MailError`,
``permanent`` when trying again cannot help (a 5xx answer, a refused login).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import subprocess
from typing import Protocol

import trio

from pulse_mailto.compose import Mail
from pulse_mailto.settings import MailSettings

log = logging.getLogger("pulse.plugin.host.mailto")

# sysexits.h codes of sendmail that another attempt will not fix.
_PERMANENT_EXITS = {64: "usage", 65: "bad data", 67: "unknown user", 68: "unknown host"}
# How long past its own timeout a stuck SMTP worker thread is waited for.
_THREAD_GRACE = 5.0


class MailError(Exception):
    """One attempt to send a mail failed; ``reason`` is the sentence logged."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Transport(Protocol):
    """Sends one mail, once; raises :class:`MailError`."""

    @property
    def name(self) -> str: ...

    async def send(self, mail: Mail) -> None: ...


class SmtpTransport:
    """SMTP with optional SMTPS or STARTTLS and login, through :mod:`smtplib`.

    smtplib blocks, so every attempt runs in a worker thread; its socket timeout is
    the settings' ``timeout``, and a thread that still has not finished
    ``_THREAD_GRACE`` seconds later is abandoned (it ends at its own socket timeout).
    """

    def __init__(self, settings: MailSettings, *, helo: str) -> None:
        self.settings = settings
        self.helo = settings.smtp.helo or helo

    @property
    def name(self) -> str:
        s = self.settings.smtp
        return f"smtp://{s.host}:{s.port}"

    async def send(self, mail: Mail) -> None:
        timeout = self.settings.timeout
        with trio.move_on_after(timeout + _THREAD_GRACE):
            await trio.to_thread.run_sync(self._send_blocking, mail, abandon_on_cancel=True)
            return
        raise MailError(f"{self.name}: no answer within {timeout:g}s")

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.smtp.cafile)

    def _password(self) -> str | None:
        s = self.settings.smtp
        if s.password_file is None:
            return s.password
        try:
            with open(s.password_file, encoding="utf-8") as f:
                return f.readline().rstrip("\r\n")
        except OSError as exc:
            raise MailError(
                f"cannot read password_file {s.password_file}: {exc.strerror}", permanent=True
            ) from exc

    def _send_blocking(self, mail: Mail) -> None:
        s = self.settings.smtp
        timeout = self.settings.timeout
        try:
            client: smtplib.SMTP
            if s.ssl:
                client = smtplib.SMTP_SSL(
                    s.host, s.port, local_hostname=self.helo, timeout=timeout, context=self._tls()
                )
            else:
                client = smtplib.SMTP(s.host, s.port, local_hostname=self.helo, timeout=timeout)
            with client:
                if s.starttls:
                    client.starttls(context=self._tls())
                if s.username is not None:
                    client.login(s.username, self._password() or "")
                refused = client.send_message(
                    mail.message(), from_addr=mail.sender, to_addrs=list(mail.recipients)
                )
        except smtplib.SMTPAuthenticationError as exc:
            said = _said(exc.smtp_code, exc.smtp_error)
            raise MailError(
                f"{self.name}: login as {s.username} refused: {said}", permanent=True
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            said = "; ".join(
                f"{rcpt}: {_said(code, text)}" for rcpt, (code, text) in exc.recipients.items()
            )
            raise MailError(
                f"{self.name}: every recipient refused: {said}",
                permanent=all(code >= 500 for code in codes),
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise MailError(
                f"{self.name}: {_said(exc.smtp_code, exc.smtp_error)}",
                permanent=exc.smtp_code >= 500,
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise MailError(f"{self.name}: {exc}", permanent=True) from exc
        except ssl.SSLCertVerificationError as exc:
            raise MailError(
                f"{self.name}: TLS certificate not trusted ({exc.verify_message}); "
                "set cafile to the CA that signed it",
                permanent=True,
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise MailError(f"{self.name}: {_describe(exc)}") from exc
        for rcpt, (code, text) in refused.items():
            log.warning("mailto: %s refused %s: %s", self.name, rcpt, _said(code, text))


class SendmailTransport:
    """The local MTA's ``sendmail -t -oi`` (recipients from the To: header), as a process."""

    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings

    @property
    def name(self) -> str:
        return self.settings.sendmail

    async def send(self, mail: Mail) -> None:
        argv = [self.settings.sendmail, "-t", "-oi", "-f", mail.sender]
        timeout = self.settings.timeout
        try:
            with trio.fail_after(timeout):
                done = await trio.run_process(
                    argv,
                    stdin=mail.message().as_bytes(),
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
        except trio.TooSlowError as exc:
            raise MailError(f"{self.name} did not finish within {timeout:g}s") from exc
        except FileNotFoundError as exc:
            raise MailError(f"{self.name}: no such program", permanent=True) from exc
        except OSError as exc:
            raise MailError(f"cannot run {self.name}: {_describe(exc)}") from exc
        if done.returncode != 0:
            raise _exit_error(self.name, done)


def _exit_error(name: str, done: subprocess.CompletedProcess[bytes]) -> MailError:
    output = (done.stderr or done.stdout or b"").decode("utf-8", "replace").strip()
    last = output.splitlines()[-1] if output else ""
    rc = done.returncode
    what = f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}"
    if rc in _PERMANENT_EXITS:
        what += f" ({_PERMANENT_EXITS[rc]})"
    return MailError(
        f"{name} failed: {what}" + (f": {last}" if last else ""), permanent=rc in _PERMANENT_EXITS
    )


def _said(code: int, text: bytes | str) -> str:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {words}".strip()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def make_transport(settings: MailSettings, *, helo: str) -> Transport:
    if settings.transport == "sendmail":
        return SendmailTransport(settings)
    return SmtpTransport(settings, helo=helo)
