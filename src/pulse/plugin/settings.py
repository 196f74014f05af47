"""Reading a plugin's ``[plugins.NAME]`` table: typed values, ``FILE:LINE`` diagnostics.

Every plugin reads its settings the same way, so every plugin accepts the same values
and reports them in the same words::

    from pulse.plugin.settings import SettingsReader

    r = SettingsReader.of(config, "example")
    journal = r.path("journal", None)                     # an absolute path, or None
    timeout = r.duration("timeout", 5.0)                  # seconds: 5, 2.5, "5s", "500ms"
    r.check_keys()                                        # unknown keys, with did-you-mean
    return r.diagnostics                                  # from pulse_configure

A value that is missing gives the default; a value that is wrong gives the default
*and* an error ``FILE:LINE: plugins.NAME.key: message`` (a hint how to write it
included), so a hook can always go on and report every problem at once. Nothing here
raises on bad input or reads a file: the lines come from the map the TOML loader
recorded while reading the file (``Config.key_lines``, see src/pulse/config/toml.py).
A configuration from Heartbeat's ha.cf has no ``[plugins]`` tables; its diagnostics
name the origin (the ha.d directory) at line 0.

The rules, one for every plugin:

* **text**: a non-empty string (surrounding blanks removed);
* **flag**: ``true`` or ``false`` (TOML booleans, not strings);
* **integer**: a whole number (not a boolean) within the bounds the plugin gives;
* **duration**: seconds as a number (``30``, ``2.5``) or a string with a unit:
  ``"30s"``, ``"500ms"``, ``"5min"``, ``"1h"`` (:func:`pulse.config.durations.parse_duration`,
  the syntax of pulse's own ``[timing]`` keys); more than 0 unless the plugin allows 0;
* **strings**: a list of strings (a single string is not a list);
* **choice**: one of a fixed set of words, with did-you-mean;
* **path**: an absolute path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar, overload

from pulse.config.durations import parse_bool, parse_duration
from pulse.config.model import Config
from pulse.config.words import did_you_mean as _did_you_mean
from pulse.errors import Diagnostic, Severity

__all__ = ["KeyPath", "SettingsReader", "did_you_mean", "parse_flag", "parse_seconds"]

KeyPath = tuple[str | int, ...]
_D = TypeVar("_D")

DURATION_EXAMPLES = '"30s", "500ms", "5min"'


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the closest of *choices*, or ``""`` (the rule pulse's
    own configuration messages use, src/pulse/config/legacy.py)."""
    return _did_you_mean(word, list(choices))


def parse_seconds(value: object) -> float | None:
    """A duration in seconds by the rule above (number, or string with a unit), or None.

    Useful for the same values written elsewhere (an haresources ``k=v`` word): a
    plain number in a string (``"30"``) counts as seconds too.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        ms = parse_duration(value)
        if ms is None:
            return None
        seconds = ms / 1000.0
    else:
        return None
    return seconds if math.isfinite(seconds) else None


def parse_flag(value: object) -> bool | None:
    """``True``/``False``, or a word as Heartbeat reads one (yes/no, on/off, true/false,
    y/n, 1/0, any case), else None: for flags written in an haresources ``k=v`` word.
    (A TOML flag is a TOML boolean: :meth:`SettingsReader.flag`.)"""
    if isinstance(value, bool):
        return value
    return parse_bool(value) if isinstance(value, str) else None


class SettingsReader:
    """One plugin table (or a table inside it) and the diagnostics found reading it.

    ``table`` is what TOML said (an empty mapping when nothing), ``plugin`` the
    plugin's name, ``file`` the file to name in diagnostics, ``lines`` the key-line map
    of that file (``Config.key_lines``) and ``path`` the table's key path in it
    (``("plugins", NAME)`` by default, kept as ``table_path``). Every method reading a
    value takes the key and a default; :attr:`diagnostics` lists what was wrong, in
    file order.
    """

    def __init__(
        self,
        table: Mapping[str, object],
        *,
        plugin: str,
        file: str,
        lines: Mapping[KeyPath, int] | None = None,
        path: KeyPath | None = None,
        diagnostics: list[Diagnostic] | None = None,
    ) -> None:
        self.table = table
        self.plugin = plugin
        self.file = file
        self.lines: Mapping[KeyPath, int] = lines or {}
        self.table_path: KeyPath = path if path is not None else ("plugins", plugin)
        self._diags: list[Diagnostic] = diagnostics if diagnostics is not None else []
        self._read: list[str] = []

    @classmethod
    def of(cls, config: Config, plugin: str) -> SettingsReader:
        """The reader of ``[plugins.PLUGIN]`` in *config* (empty when there is none)."""
        return cls(
            config.plugins.get(plugin, {}),
            plugin=plugin,
            file=config.origin or "pulse.toml",
            lines=config.key_lines,
        )

    # ------------------------------------------------------------------ where

    @property
    def diagnostics(self) -> list[Diagnostic]:
        """Everything reported so far, in file order (stable within a line)."""
        return sorted(self._diags, key=lambda d: (d.file, d.line))

    def line(self, key: str | int | None = None) -> int:
        """The line *key* (None: the table itself) was written on; its table's line
        when the key has no line of its own; 0 when nothing is known (ha.cf)."""
        from pulse.config.toml import line_at  # tomllib only where TOML is read

        return line_at(self.lines, self.table_path if key is None else (*self.table_path, key))

    def name(self, key: str | int | None = None) -> str:
        """``plugins.NAME.key`` (array elements as ``devices[0]``), for messages."""
        from pulse.config.toml import format_path

        return format_path(self.table_path if key is None else (*self.table_path, key))

    def error(self, key: str | int | None, message: str) -> None:
        """Report ``FILE:LINE: plugins.NAME.key: message``."""
        self._diags.append(Diagnostic(self.file, self.line(key), f"{self.name(key)}: {message}"))

    def warn(self, key: str | int | None, message: str) -> None:
        """Report a warning ``FILE:LINE: warning: plugins.NAME.key: message``."""
        self._diags.append(
            Diagnostic(self.file, self.line(key), f"{self.name(key)}: {message}", Severity.WARNING)
        )

    # ------------------------------------------------------------------ values

    def _value(self, key: str) -> object:
        if key not in self._read:
            self._read.append(key)
        return self.table.get(key)

    def require(self, key: str, *, example: str) -> bool:
        """Whether *key* is there; when not, report ``required (e.g. key = example)``."""
        self._value(key)
        if key in self.table:
            return True
        self.error(key, f"required (e.g. {key} = {example})")
        return False

    def text(self, key: str, default: _D, *, example: str) -> str | _D:
        """A non-empty string, stripped. *example* is a value to show, e.g. ``'"pulse"'``."""
        value = self._value(key)
        if key not in self.table:
            return default
        if isinstance(value, str) and value.strip():
            return value.strip()
        self.error(key, f"expected a non-empty string, got {value!r} (e.g. {key} = {example})")
        return default

    def optional_text(self, key: str, *, example: str) -> str | None:
        """A non-empty string, or None when the key is absent (or wrong)."""
        return self.text(key, None, example=example)

    @overload
    def flag(self, key: str) -> bool: ...
    @overload
    def flag(self, key: str, default: _D) -> bool | _D: ...
    def flag(self, key: str, default: object = False) -> object:
        """``true`` or ``false`` (default: false)."""
        value = self._value(key)
        if key not in self.table:
            return default
        if isinstance(value, bool):
            return value
        self.error(key, f"expected true or false, got {value!r}")
        return default

    def integer(self, key: str, default: _D, *, low: int, high: int) -> int | _D:
        """A whole number from *low* to *high*."""
        value = self._value(key)
        if key not in self.table:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.error(key, f"expected a whole number from {low} to {high}, got {value!r}")
            return default
        return value

    def duration(self, key: str, default: _D, *, zero: bool = False) -> float | _D:
        """Seconds: a number, or a string with a unit (``"30s"``, ``"500ms"``, ``"5min"``).

        More than 0, or 0 or more with ``zero=True``.
        """
        value = self._value(key)
        if key not in self.table:
            return default
        seconds = parse_seconds(value)
        if seconds is None or seconds < 0 or (seconds == 0 and not zero):
            low = "0 or more" if zero else "more than 0"
            self.error(
                key,
                f"expected a duration of {low} seconds (a number, or a string such as "
                f"{DURATION_EXAMPLES}), got {value!r}",
            )
            return default
        return seconds

    def strings(
        self,
        key: str,
        default: Sequence[str] = (),
        *,
        example: str,
        empty: bool = True,
    ) -> tuple[str, ...]:
        """A list of strings, each not blank (kept as written); an empty list only with
        ``empty=True``.
        *example* shows a good value, e.g. ``'["sip.conf", "iax.conf"]'``."""
        value = self._value(key)
        if key not in self.table:
            return tuple(default)
        if (
            not isinstance(value, list)
            or not all(isinstance(item, str) and item.strip() for item in value)
            or (not value and not empty)
        ):
            what = "a list of strings" if empty else "a non-empty list of strings"
            self.error(key, f"expected {what}, got {value!r} (e.g. {key} = {example})")
            return tuple(default)
        return tuple(str(item) for item in value)

    def choice(self, key: str, choices: Sequence[str], default: _D) -> str | _D:
        """One of *choices*."""
        value = self._value(key)
        if key not in self.table:
            return default
        if isinstance(value, str) and value in choices:
            return value
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        known = ", ".join(f'"{c}"' for c in choices)
        self.error(key, f"expected one of {known}, got {value!r}{hint}")
        return default

    def path(self, key: str, default: _D) -> str | _D:
        """An absolute path (normalised: no trailing slash, no ``..``)."""
        value = self._value(key)
        if key not in self.table:
            return default
        if isinstance(value, str) and os.path.isabs(value.strip()):
            return os.path.normpath(value.strip())
        self.error(key, f"expected an absolute path, got {value!r}")
        return default

    # ------------------------------------------------------------------ tables

    def table_at(self, key: str) -> SettingsReader:
        """A reader of the table under *key* (``[plugins.NAME.key]`` or an inline table);
        its diagnostics are this reader's."""
        value = self._value(key)
        if key in self.table and not isinstance(value, Mapping):
            self.error(key, f"expected a table, got {value!r}")
        return self._child(value if isinstance(value, Mapping) else {}, (*self.table_path, key))

    def tables(self, key: str) -> list[SettingsReader]:
        """One reader per element of an array of tables (``[[plugins.NAME.key]]``),
        each pointing at its own ``[[...]]`` line; elements that are not tables are
        reported and left out."""
        value = self._value(key)
        if key not in self.table:
            return []
        if not isinstance(value, list):
            self.error(key, f"expected an array of tables ([[{self.name(key)}]]), got {value!r}")
            return []
        out: list[SettingsReader] = []
        for index, item in enumerate(value):
            if isinstance(item, Mapping):
                out.append(self._child(item, (*self.table_path, key, index)))
            else:
                self.error(key, f"element {index + 1}: expected a table, got {item!r}")
        return out

    def _child(self, table: Mapping[str, object], path: KeyPath) -> SettingsReader:
        return SettingsReader(
            table,
            plugin=self.plugin,
            file=self.file,
            lines=self.lines,
            path=path,
            diagnostics=self._diags,
        )

    def check_keys(self, known: Iterable[str] | None = None) -> None:
        """Report every key of the table that is not *known* (default: the keys read so
        far), with the closest known key or the list of them."""
        names = list(known) if known is not None else list(self._read)
        for key in self.table:
            if key in names:
                continue
            hint = did_you_mean(key, names) or f"; known: {', '.join(names)}"
            self.error(key, f"unknown key{hint}")
