"""Fixtures of pulse-mailto's tests: a real SMTP server on loopback, a fixed time zone,
and network namespaces for the end-to-end test."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from mailto_smtp_support import Collector, SmtpServer, free_port

from pulse_lab.fixtures import topology_fixture


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


topology = topology_fixture()
