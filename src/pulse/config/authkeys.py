"""authkeys, read as Heartbeat reads it: ``auth N`` must precede its key line, one-word
keys, and a file readable by group or others is refused (docs/heartbeat.md#authkeys).
"""

from __future__ import annotations

import os
import re
import stat

from pulse.config.checks import (
    diagnostic,
)
from pulse.config.durations import parse_int
from pulse.config.model import (
    AuthKey,
    AuthKeys,
    AuthMethod,
    Source,
)
from pulse.config.words import MAXLINE, decode, did_you_mean, physical_lines
from pulse.errors import Diagnostic, Severity

MAX_AUTH_INDEX = 15

# --------------------------------------------------------------------------- authkeys


def authkeys_permission_error(mode: int, path: str) -> str | None:
    """Heartbeat refuses a keyfile readable by group or others (docs/heartbeat.md#authkeys)."""
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return f"Bad permissions on keyfile [{path}], 600 recommended."
    return None


def parse_authkeys(data: bytes, file: str) -> tuple[AuthKeys | None, list[Diagnostic]]:
    """Parse authkeys text (permissions are checked by the caller)."""
    diags: list[Diagnostic] = []

    def err(line: int, msg: str) -> None:
        diags.append(diagnostic(Source(file, line), msg))

    auth_index: int | None = None
    auth_line = 0
    outbound: int | None = None
    keys: dict[int, AuthKey] = {}
    methods = [m.value for m in AuthMethod]
    for lineno, raw in physical_lines(data):
        if len(raw) + 1 > MAXLINE:
            err(lineno, f"line longer than {MAXLINE} bytes")
            continue
        text = decode(raw).strip(" \t\r\f\v")
        if not text or text.startswith("#"):
            continue
        if text.startswith("a"):
            m = re.fullmatch(r"auth[ \t]+([+-]?\d+)(?:[ \t].*)?", text)
            if m is None:
                err(lineno, f"bad auth line [{text}] (expected: auth N)")
                continue
            auth_index, auth_line = int(m.group(1)), lineno
            if not 0 <= auth_index <= MAX_AUTH_INDEX:
                err(lineno, f"auth index [{auth_index}] out of range (0-{MAX_AUTH_INDEX})")
            continue
        words = text.split()
        if not words:
            continue
        idx = parse_int(words[0])
        if idx is None:
            err(lineno, f"bad authkeys line [{text}] (expected: N METHOD [KEY])")
            continue
        if not 0 <= idx <= MAX_AUTH_INDEX:
            err(lineno, f"auth index [{idx}] out of range (0-{MAX_AUTH_INDEX})")
            continue
        if len(words) < 2:
            err(lineno, f"auth index [{idx}] has no method (crc, md5, sha1, sha256)")
            continue
        method_name = words[1]
        if method_name not in methods:
            err(
                lineno,
                f"unknown authentication method [{method_name}] (crc, md5, sha1, sha256)"
                f"{did_you_mean(method_name, methods)}",
            )
            continue
        method = AuthMethod(method_name)
        key: bytes | None = None
        if method is AuthMethod.CRC:
            if len(words) > 2:
                err(lineno, "Auth method [crc] doesn't use a key")
                continue
        else:
            if len(words) < 3:
                err(lineno, f"Auth method [{method_name}] requires a key")
                continue
            key = words[2].encode("utf-8", errors="surrogateescape")
            if len(words) > 3:
                diags.append(
                    diagnostic(
                        Source(file, lineno),
                        f"key for auth index [{idx}] contains whitespace; only its first word "
                        "is used (as Heartbeat does)",
                        warning=True,
                    )
                )
        if idx in keys:
            diags.append(
                diagnostic(
                    Source(file, lineno),
                    f"auth index [{idx}] listed twice; the last one wins",
                    warning=True,
                )
            )
        keys[idx] = AuthKey(index=idx, method=method, key=key, source=Source(file, lineno))
        if auth_index == idx:
            outbound = idx
    if any(d.severity is Severity.ERROR for d in diags):
        return None, diags
    if auth_index is None:
        err(0, "no `auth N` line: name the key index used to sign outgoing packets")
        return None, diags
    if outbound is None or outbound != auth_index:
        hint = ""
        if auth_index in keys:
            hint = " (the `auth N` line must come before the key line N)"
        err(auth_line, f"Auth Key [{auth_index}] not found in keyfile{hint}")
        return None, diags
    ordered = tuple(sorted(keys.values(), key=lambda k: k.index))
    return AuthKeys(outbound=outbound, keys=ordered, path=os.path.abspath(file)), diags


def read_authkeys(path: str) -> tuple[AuthKeys | None, list[Diagnostic]]:
    """Open, permission-check and parse an authkeys file."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
    except FileNotFoundError:
        return None, [Diagnostic(path, 0, "authkeys file is missing; Heartbeat needs one")]
    except (OSError, ValueError) as e:
        return None, [
            Diagnostic(
                path, 0, f"cannot read authkeys: {e.strerror if isinstance(e, OSError) else e}"
            )
        ]
    perm = authkeys_permission_error(st.st_mode, path)
    if perm is not None:
        return None, [Diagnostic(path, 0, perm)]
    return parse_authkeys(data, path)
