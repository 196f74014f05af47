"""Value syntaxes shared by ha.cf and TOML: Heartbeat times, booleans, durations.

Pure functions, no I/O. Every parser returns ``None`` for an invalid value so
that callers can attach the ``FILE:LINE`` themselves.
"""

from __future__ import annotations

import re

# Heartbeat's cl_get_msec: a decimal number, optional blanks, optional unit.
# No unit = seconds; a unit starting with "ms" = milliseconds; "us" = microseconds
# (case-insensitive prefix match on the first two characters, as in cl_misc.c).
_HB_TIME = re.compile(r"^\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[A-Za-z]*)\s*$")
# pulse's TOML durations additionally accept s/sec, m/min and h suffixes.
_TOML_UNITS_MS = {
    "": 1000.0,
    "s": 1000.0,
    "sec": 1000.0,
    "secs": 1000.0,
    "m": 60000.0,
    "min": 60000.0,
    "h": 3600000.0,
}

TRUE_WORDS = frozenset({"true", "on", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "off", "no", "n", "0"})


def _round_ms(value: float) -> int:
    # Heartbeat adds 0.5 and truncates (values are never negative here).
    return int(value + 0.5)


def parse_hb_time(text: str) -> int | None:
    """A Heartbeat time (``2``, ``1.5``, ``500ms``, ``500msec``, ``10us``) in ms."""
    m = _HB_TIME.match(text)
    if m is None:
        return None
    number = float(m.group("num"))
    unit = m.group("unit").lower()
    if unit == "":
        return _round_ms(number * 1000.0)
    if unit.startswith("ms"):
        return _round_ms(number)
    if unit.startswith("us"):
        return _round_ms(number / 1000.0)
    return None


def parse_duration(text: str) -> int | None:
    """A TOML duration string in ms: Heartbeat syntax plus ``2s``, ``1m``, ``1h``."""
    hb = parse_hb_time(text)
    if hb is not None:
        return hb
    m = _HB_TIME.match(text)
    if m is None:
        return None
    factor = _TOML_UNITS_MS.get(m.group("unit").lower())
    if factor is None:
        return None
    return _round_ms(float(m.group("num")) * factor)


def parse_bool(text: str) -> bool | None:
    """Heartbeat's cl_str_to_boolean: case-insensitive true/on/yes/y/1, false/off/no/n/0."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def parse_int(text: str) -> int | None:
    """A plain decimal integer (optionally signed), as atoi-style directives expect."""
    t = text.strip()
    if re.fullmatch(r"[+-]?\d+", t) is None:
        return None
    return int(t)


def format_ms(ms: int) -> str:
    """Human form of a millisecond value for messages and TOML: ``2s``, ``1500ms``."""
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"
