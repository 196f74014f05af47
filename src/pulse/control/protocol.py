"""The control protocol shared by the daemon and `pulsectl`.

One JSON object per line over a Unix stream socket. A request is
``{"command": "status"}``; a reply is ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": "text"}``. Keeping both sides on this module keeps them
from drifting apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_SOCKET = "/run/pulse/control"
MAX_LINE = 1 << 20  # a reply (a status of many groups and counters)
MAX_REQUEST = 64 * 1024  # a request is a few dozen bytes; longer ones are refused
MAX_DEPTH = 32  # JSON nesting a request may have
COMMANDS = ("status", "ping")


@dataclass(frozen=True, slots=True)
class Request:
    command: str
    args: Mapping[str, Any]

    def encode(self) -> bytes:
        return json.dumps({"command": self.command, "args": dict(self.args)}).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> Request:
        """Raises ValueError (with a message for the client) for anything but a request."""
        if len(line) > MAX_REQUEST:
            raise ValueError(f"request longer than {MAX_REQUEST} bytes")
        if _depth(line) > MAX_DEPTH:
            raise ValueError(f"request nested deeper than {MAX_DEPTH} levels")
        obj = json.loads(line)
        if not isinstance(obj, dict) or not isinstance(obj.get("command"), str):
            raise ValueError("a request is a JSON object with a string 'command'")
        args = obj.get("args", {})
        if not isinstance(args, dict):
            raise ValueError("'args' must be an object")
        return cls(obj["command"], args)


def _depth(line: bytes) -> int:
    """An upper bound of the JSON nesting of *line* (brackets inside strings count too),
    found without recursion: json.loads would raise RecursionError on 100,000 levels."""
    depth = deepest = 0
    for byte in line.translate(None, _NOT_BRACKETS):
        depth += 1 if byte in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


@dataclass(frozen=True, slots=True)
class Reply:
    ok: bool
    result: Any = None
    error: str | None = None

    def encode(self) -> bytes:
        body: dict[str, Any] = {"ok": self.ok}
        if self.ok:
            body["result"] = self.result
        else:
            body["error"] = self.error
        return json.dumps(body).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> Reply:
        obj = json.loads(line)
        if not isinstance(obj, dict) or not isinstance(obj.get("ok"), bool):
            raise ValueError("malformed reply")
        return cls(obj["ok"], obj.get("result"), obj.get("error"))
