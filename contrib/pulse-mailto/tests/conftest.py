"""Fixtures of pulse-mailto's tests: a real SMTP server on loopback, a fixed time zone,
and network namespaces for the end-to-end test."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from pulse.lab.netns import Topology, netns_available


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: Message

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])


@dataclass
class Collector:
    """aiosmtpd handler keeping every mail; ``refuse`` makes RCPT answer 550."""

    mails: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        with self.arrived:
            self.mails.append(
                Received(
                    sender=str(envelope.mail_from),
                    recipients=list(envelope.rcpt_tos),
                    message=message_from_bytes(content),
                )
            )
            self.arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block (in a worker thread, or plain sync code) until *count* mails arrived."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.mails) >= count, timeout)
            return list(self.mails)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class SmtpServer:
    host: str
    port: int
    collector: Collector


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """aiosmtpd on 127.0.0.1 and a free port, stopped after the test."""
    collector = Collector()
    port = free_port()
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, collector)
    finally:
        controller.stop()


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC for the test (subjects carry `date`'s local time)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def topology() -> Iterator[Topology]:
    """A fresh namespace topology, always closed; skips without root/netns."""
    reason = netns_available()
    if reason is not None:
        pytest.skip(reason)
    topo = Topology()
    try:
        yield topo
    finally:
        topo.close()
