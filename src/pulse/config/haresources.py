"""haresources, read as ResourceManager reads it: comments removed only on a logical
line's first physical line, ``\\`` joins with nothing inserted, implicit ``IPaddr`` for
dotted words (docs/heartbeat.md#haresources-grammar).
"""

from __future__ import annotations

import re

from pulse.config.checks import (
    IMPLICIT_IP,
)
from pulse.config.model import (
    ResourceGroup,
    ResourceSpec,
    Source,
)
from pulse.config.words import MAXLINE, decode, physical_lines
from pulse.errors import Diagnostic


def resource_spec(word: str, source: Source | None) -> tuple[ResourceSpec | None, str | None]:
    """ResourceManager's reading of one haresources word (docs/heartbeat.md#script-resolution)."""
    if IMPLICIT_IP.fullmatch(word):
        return ResourceSpec(raw=word, agent="IPaddr", args=(word,), source=source), None
    parts = word.split("::")
    if not parts[0]:
        return None, f"resource [{word}] has no script name before '::'"
    return ResourceSpec(raw=word, agent=parts[0], args=tuple(parts[1:]), source=source), None


# --------------------------------------------------------------------------- haresources


def logical_lines(data: bytes, file: str) -> tuple[list[tuple[int, str]], list[Diagnostic]]:
    """ResourceManager's normalisation: (first physical line, normalised text) per group."""
    diags: list[Diagnostic] = []
    lines = list(physical_lines(data))
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        start, raw = lines[i]
        i += 1
        if len(raw) + 1 > MAXLINE:
            diags.append(Diagnostic(file, start, f"line longer than {MAXLINE} bytes"))
            continue
        text = decode(raw).rstrip("\r").split("#", 1)[0]
        while text.endswith("\\") and i < len(lines):
            _, nxt = lines[i]
            i += 1
            text = text[:-1] + decode(nxt).rstrip("\r")
        if text.endswith("\\"):
            text = text[:-1]
        words = [w for w in re.split(r"[ \t]+", text) if w]
        if words:
            out.append((start, " ".join(words)))
    return out, diags


def parse_haresources(data: bytes, file: str) -> tuple[list[ResourceGroup], list[Diagnostic]]:
    """Resource groups in file order; node names are lower-cased, not yet checked."""
    logical, diags = logical_lines(data, file)
    groups: list[ResourceGroup] = []
    for line, text in logical:
        words = text.split(" ")
        src = Source(file, line)
        node = words[0].lower()
        if len(words) < 2:
            diags.append(
                Diagnostic(file, line, f"resource group for node [{node}] lists no resources")
            )
            continue
        specs: list[ResourceSpec] = []
        for w in words[1:]:
            spec, err = resource_spec(w, src)
            if spec is None:
                diags.append(Diagnostic(file, line, err or f"bad resource [{w}]"))
            else:
                specs.append(spec)
        if len(specs) == len(words) - 1:
            groups.append(ResourceGroup(node=node, resources=tuple(specs), source=src))
    return groups, diags
