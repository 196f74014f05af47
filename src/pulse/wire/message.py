"""Heartbeat's message: an ordered list of named, typed fields.

This module is the in-memory form only. ``codec.py`` turns it into bytes (classic
``>>>``/``<<<`` or netstring ``###``/``%%%``) and back, and ``auth.py`` signs it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field


class FieldType(enum.IntEnum):
    """The ``(t)`` prefix of a field. v1 traffic uses only STRING and BINARY."""

    STRING = 0
    BINARY = 1
    STRUCT = 2
    LIST = 3
    COMPRESSED = 4
    UNCOMPRESSED = 5


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    value: bytes
    type: FieldType = FieldType.STRING


def _b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class Message:
    """An immutable Heartbeat message. Look-ups return the first field of a name."""

    fields: tuple[Field, ...] = ()
    # The first field of each name, made on the first look-up: the engine asks a
    # received status for a dozen fields (docs/performance.md, "The fourth sitting").
    _first: dict[str, Field] | None = dataclass_field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

    @classmethod
    def of(cls, *pairs: tuple[str, str | bytes]) -> Message:
        """Build a message of string fields, in order: ``Message.of(("t", "status"))``."""
        return cls(tuple(Field(n, _b(v)) for n, v in pairs))

    def __iter__(self) -> Iterator[Field]:
        return iter(self.fields)

    def field(self, name: str) -> Field | None:
        first = self._first
        if first is None:
            first = {}
            for f in self.fields:
                first.setdefault(f.name, f)
            object.__setattr__(self, "_first", first)  # a cache: the message is unchanged
        return first.get(name)

    def get(self, name: str) -> str | None:
        f = self.field(name)
        if f is None:
            return None
        return f.value.decode("utf-8", "surrogateescape")

    def get_bytes(self, name: str) -> bytes | None:
        f = self.field(name)
        return None if f is None else f.value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.field(name) is not None

    @property
    def type(self) -> str | None:
        return self.get("t")

    def with_field(
        self, name: str, value: str | bytes, type: FieldType = FieldType.STRING
    ) -> Message:
        """Replace the first field called *name* in place, or append it."""
        new = Field(name, _b(value), type)
        out: list[Field] = []
        done = False
        for f in self.fields:
            if f.name == name and not done:
                out.append(new)
                done = True
            else:
                out.append(f)
        if not done:
            out.append(new)
        return Message(tuple(out))

    def with_fields(self, *new: Field, drop: str | None = None) -> Message:
        """:meth:`with_field` for several fields at once, in one pass.

        Each new field replaces the first field of its name in place, or is appended
        (in the order given); fields called *drop* are left out. The same as chained
        ``without(drop).with_field(...)`` calls, without a copy per field.
        """
        pending: dict[str, Field] = {}
        for f in new:
            pending[f.name] = f  # the last of a name wins, where the first would go
        out: list[Field] = []
        for f in self.fields:
            if f.name == drop:
                continue
            out.append(pending.pop(f.name, f))
        out.extend(pending.values())
        return Message(tuple(out))

    def without(self, name: str) -> Message:
        """Drop every field called *name*."""
        return Message(tuple(f for f in self.fields if f.name != name))


def ascii_int(text: str | None, max_digits: int) -> int | None:
    """The value of a decimal field of a peer's message, or None if it is not one.

    *text* (from :meth:`Message.get`; None: the field is absent) must be 1 to
    *max_digits* ASCII digits ``0-9`` and nothing else: no sign, no space, no ``_``.
    Leading zeros are allowed. Bounded for each field because ``int()`` refuses more
    than 4300 digits (``sys.int_info``) and costs time on thousands; ASCII because
    fields are decoded with surrogateescape and ``str.isdigit`` admits ``"²"``, which
    ``int()`` refuses, and ``int()`` alone accepts ``"٣"``, ``" 3"``, ``"+3"``, ``"3_0"``.
    """
    if text is None or not 0 < len(text) <= max_digits:
        return None
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text)
