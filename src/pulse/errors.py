"""Exceptions that cross module boundaries.

Configuration problems are collected as :class:`Diagnostic` records so that one
``pulse check`` run reports every problem as ``FILE:LINE: message`` at once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in a config file. ``line`` is 0 when it concerns the whole file."""

    file: str
    line: int
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        return f"{where}: {prefix}{self.message}"


class PulseError(Exception):
    """Base of pulse's own exceptions."""


class ConfigError(PulseError):
    """A configuration that cannot be used; carries every error diagnostic found."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))


class WireError(PulseError):
    """A packet that cannot be decoded or authenticated. ``reason`` is a counter key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class TransportError(PulseError):
    """A link could not be opened or used (what membership sees, never a raw OSError)."""
