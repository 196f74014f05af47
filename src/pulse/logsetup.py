"""Logging the way Heartbeat logs, so log watchers written for it keep working.

File lines (``syslogmsgfmt`` true, Heartbeat's default)::

    Nov 21 22:24:31 prime pulse: [16901]: info: Link calc:eth0 up.

and with ``syslogmsgfmt false``::

    pulse[16901]: 2026/11/21_22:24:31 info: Link calc:eth0 up.

``logfile`` gets everything but debug, ``debugfile`` everything, ``logfacility``
sends to syslog. With none of them, lines go to stderr. Handlers run behind a
:class:`logging.handlers.QueueListener` thread, so a trio task that logs never
waits for a disk or for syslog.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import os
import queue
import socket
import sys
import time

from pulse.config.model import Logging

LOGGER_NAME = "pulse"

_LEVEL_WORDS = {
    logging.CRITICAL: "CRIT",
    logging.ERROR: "ERROR",
    logging.WARNING: "WARN",
    logging.INFO: "info",
    logging.DEBUG: "debug",
}

# Heartbeat's level words -> Python levels (the engine emits Heartbeat's words).
LEVELS = {
    "EMERG": logging.CRITICAL,
    "ALERT": logging.CRITICAL,
    "CRIT": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARN": logging.WARNING,
    "notice": logging.INFO,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


class HeartbeatFormatter(logging.Formatter):
    """Formats records as Heartbeat's cl_log does."""

    def __init__(self, *, ident: str, syslogmsgfmt: bool = True, syslog: bool = False) -> None:
        super().__init__()
        self.ident = ident
        self.syslogmsgfmt = syslogmsgfmt
        self.syslog = syslog
        self.hostname = os.uname().nodename

    def format(self, record: logging.LogRecord) -> str:
        word = _LEVEL_WORDS.get(record.levelno, record.levelname)
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if self.syslog:
            return f"{self.ident}: [{record.process}]: {word}: {text}"
        if self.syslogmsgfmt:
            stamp = time.strftime("%b %d %H:%M:%S", time.localtime(record.created))
            return f"{stamp} {self.hostname} {self.ident}: [{record.process}]: {word}: {text}"
        stamp = time.strftime("%Y/%m/%d_%H:%M:%S", time.localtime(record.created))
        return f"{self.ident}[{record.process}]: {stamp} {word}: {text}"


class _BelowLevel(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


def _syslog_handler(facility: str) -> logging.Handler | None:
    code = logging.handlers.SysLogHandler.facility_names.get(facility)
    if code is None:
        return None
    for address in ("/dev/log", "/var/run/syslog"):
        if os.path.exists(address):
            try:
                return logging.handlers.SysLogHandler(
                    address=address, facility=code, socktype=socket.SOCK_DGRAM
                )
            except OSError:
                return None
    return None


_listener: logging.handlers.QueueListener | None = None


def configure(cfg: Logging, *, ident: str = "pulse", stderr: bool | None = None) -> logging.Logger:
    """Install pulse's handlers from the ``Logging`` section; returns the root pulse logger.

    ``stderr`` forces (True) or suppresses (False) the stderr handler; by default
    stderr is used only when no logfile, debugfile or syslog facility is set.
    """
    global _listener
    shutdown()
    handlers: list[logging.Handler] = []
    file_fmt = HeartbeatFormatter(ident=ident, syslogmsgfmt=cfg.syslogmsgfmt)
    if cfg.logfile and cfg.logfile != "/dev/null":
        # Watched: a file moved away by logrotate is reopened at its path on the next
        # line (and at SIGHUP, see reopen()), so no line goes to the rotated file.
        h: logging.Handler = logging.handlers.WatchedFileHandler(cfg.logfile)
        h.setFormatter(file_fmt)
        h.addFilter(_BelowLevel(logging.INFO))
        handlers.append(h)
    if cfg.debugfile and cfg.debugfile != "/dev/null":
        h = logging.handlers.WatchedFileHandler(cfg.debugfile)
        h.setFormatter(file_fmt)
        handlers.append(h)
    facility = cfg.logfacility
    if facility and facility != "none":
        sh = _syslog_handler(facility)
        if sh is not None:
            sh.setFormatter(HeartbeatFormatter(ident=ident, syslog=True))
            sh.addFilter(_BelowLevel(logging.INFO))
            handlers.append(sh)
    want_stderr = stderr if stderr is not None else not handlers
    if want_stderr:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(HeartbeatFormatter(ident=ident, syslogmsgfmt=cfg.syslogmsgfmt))
        h.addFilter(_BelowLevel(logging.DEBUG if cfg.debug else logging.INFO))
        handlers.append(h)

    logger = logging.getLogger(LOGGER_NAME)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    logger.addHandler(logging.handlers.QueueHandler(q))
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    _listener = logging.handlers.QueueListener(q, *handlers, respect_handler_level=True)
    _listener.start()
    return logger


def reopen() -> None:
    """Reopen log files that were moved or removed (SIGHUP after logrotate)."""
    if _listener is None:
        return
    for h in _listener.handlers:
        if isinstance(h, logging.handlers.WatchedFileHandler):
            h.reopenIfNeeded()


def shutdown() -> None:
    """Flush and stop the handler thread (idempotent)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        for h in _listener.handlers:
            h.close()
        _listener = None


atexit.register(shutdown)
