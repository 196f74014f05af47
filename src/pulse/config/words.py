"""Heartbeat's lexical helpers shared by the ha.cf, authkeys and haresources readers."""

from __future__ import annotations

import re
from collections.abc import Iterator

MAXLINE = 5120  # Heartbeat's line buffer (bytes)
SEPARATORS = ", \t\n\r\f"
WHITESPACE = " \t\n\r\f"
_SPLIT = re.compile(r"[, \t\n\r\f]+")
BLANKS = re.compile(r"[ \t\n\r\f]+")


def did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str:
    """`` (did you mean X?)`` or ""."""
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return f" (did you mean {lowered[word.lower()]}?)"
    import difflib  # only for a mistake: a running daemon need not load it

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def split_tokens(text: str) -> list[str]:
    """Split on Heartbeat's separators: commas and whitespace."""
    return [t for t in _SPLIT.split(text) if t]


def physical_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line without LF) for each line of ``data``."""
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    yield from enumerate(lines, start=1)


def decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")
