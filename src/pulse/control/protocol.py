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
MAX_LINE = 1 << 20
COMMANDS = ("status", "ping")


@dataclass(frozen=True, slots=True)
class Request:
    command: str
    args: Mapping[str, Any]

    def encode(self) -> bytes:
        return json.dumps({"command": self.command, "args": dict(self.args)}).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> Request:
        obj = json.loads(line)
        if not isinstance(obj, dict) or not isinstance(obj.get("command"), str):
            raise ValueError("a request is a JSON object with a string 'command'")
        args = obj.get("args", {})
        if not isinstance(args, dict):
            raise ValueError("'args' must be an object")
        return cls(obj["command"], args)


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
