"""Asterisk's configuration syntax, read the way ``main/config.c`` reads it, and edited
without touching anything but one value.

Everything here is pure: text in, text out. :func:`load_tree` follows ``#include``
through a ``read`` function it is given, so tests can feed it a dictionary and the
agent a real file system.

What is understood (asterisk.conf format):

* ``[name]`` headers, ``[name](!)`` templates, ``[name](base1,base2)`` inheritance
  (the bases' settings are copied in front of the section's own, at that point of
  the file), ``[name](+)`` additions to an earlier section, and combinations;
* ``key = value`` settings and ``key => value`` objects (``=>`` lines are never a
  target);
* ``;`` line comments, ``\\;`` escaped semicolons, ``;-- ... --;`` block comments
  (nested, over several lines, or in the middle of a line);
* ``#include`` / ``#tryinclude`` (relative to the Asterisk config directory, globs
  allowed, at most 10 levels deep): the included lines continue the current section,
  as in Asterisk, and a section opened in an included file stays open after it;
* ``#exec`` / ``#tryexec`` lines are noted (their output cannot be known without
  running them) and never run.

Lines are split on LF only; a CR before it stays part of the line, so CRLF files are
written back with CRLF. Text is handled as latin-1, which maps every byte to one
character and back: whatever is not rewritten stays byte for byte.
"""

from __future__ import annotations

import enum
import glob
import ipaddress
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

ENCODING = "latin-1"
MAX_INCLUDE_LEVEL = 10
# Lines pulse adds (when a section lacks the key) carry this comment, so that a
# release can find and remove them again even in a file edited in the meantime.
MARKER = "added by pulse-asterisk"


class Kind(enum.Enum):
    BLANK = "blank"
    COMMENT = "comment"
    HEADER = "header"
    DIRECTIVE = "directive"
    SETTING = "setting"
    OBJECT = "object"  # key => value
    OTHER = "other"  # text Asterisk warns about and ignores


@dataclass(frozen=True, slots=True, kw_only=True)
class Line:
    """One physical line. ``raw`` includes its line ending; ``span`` is where the
    setting's value sits in ``raw`` (None when a comment or an escape splits it)."""

    number: int
    raw: str
    kind: Kind
    name: str = ""
    options: tuple[str, ...] = ()
    argument: str = ""
    value: str = ""
    span: tuple[int, int] | None = None


class SyntaxProblem(Exception):
    """A configuration Asterisk itself would refuse, or one pulse cannot edit safely."""

    def __init__(self, file: str, line: int, message: str) -> None:
        self.file = file
        self.line = line
        self.message = message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}")


# --------------------------------------------------------------------------- one file


def split_lines(text: str) -> list[str]:
    """Physical lines with their endings; ``"".join(split_lines(t)) == t``."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _code_of(raw: str, depth: int) -> tuple[str, list[int], int, bool]:
    """The part of *raw* that is not comment, with each character's index in *raw*.

    Returns (code, index map, block-comment depth after the line, whether any
    comment was seen). Follows config.c: ``\\;`` is a literal ``;``; ``;--`` (not
    ``;---``) opens a block comment, ``--;`` closes one, any other ``;`` outside a
    block ends the line.
    """
    code: list[str] = []
    where: list[int] = []
    commented = depth > 0
    i = 0
    n = len(raw)
    seg = 0  # start of the text after the last comment token, for "--;"
    while i < n:
        c = raw[i]
        if c != ";":
            if depth == 0:
                code.append(c)
                where.append(i)
            i += 1
            continue
        if depth == 0 and code and where[-1] == i - 1 and raw[i - 1] == "\\":
            code[-1] = ";"  # the backslash goes, the semicolon stays
            where[-1] = i
            i += 1
            continue
        commented = True
        if raw.startswith("--", i + 1) and raw[i + 3 : i + 4] != "-":
            depth += 1
            i += 3
            seg = i
            continue
        if depth > 0:
            if i - 2 >= seg and raw[i - 2 : i] == "--":
                depth -= 1
                seg = i + 1
            i += 1
            continue
        break  # a line comment: the rest of the line is gone
    return "".join(code), where, depth, commented


_DIRECTIVE = re.compile(r"#(\S*)\s*(.*)", re.DOTALL)


def _strip_quotes(arg: str) -> str:
    if len(arg) >= 2 and ((arg[0] == '"' and arg[-1] == '"') or (arg[0] == "<" and arg[-1] == ">")):
        return arg[1:-1]
    return arg


def _value_span(raw: str, where: list[int], start: int, end: int, sep_end: int) -> tuple[int, int]:
    """Where code[start:end] is in raw, or None when it is not one contiguous run."""
    if start >= end:  # empty value: right after the separator and its blanks
        p = where[sep_end - 1] + 1 if sep_end > 0 else 0
        while p < len(raw) and raw[p] in " \t":
            p += 1
        return (p, p)
    return (where[start], where[end - 1] + 1)


def parse_line(number: int, raw: str, depth: int) -> tuple[Line, int]:
    code, where, depth, commented = _code_of(raw, depth)
    text = code.strip()
    if not text:
        return Line(number=number, raw=raw, kind=Kind.COMMENT if commented else Kind.BLANK), depth
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            return Line(number=number, raw=raw, kind=Kind.OTHER), depth
        name = text[1:close].strip()
        options: tuple[str, ...] = ()
        rest = text[close + 1 :].lstrip()
        if rest.startswith("("):
            end = rest.find(")")
            inner = rest[1:end] if end >= 0 else rest[1:]
            options = tuple(o.strip() for o in inner.split(",") if o.strip())
        return Line(number=number, raw=raw, kind=Kind.HEADER, name=name, options=options), depth
    if text.startswith("#"):
        m = _DIRECTIVE.fullmatch(text)
        word, arg = (m.group(1), m.group(2)) if m else (text[1:], "")
        return (
            Line(
                number=number,
                raw=raw,
                kind=Kind.DIRECTIVE,
                name=word.lower(),
                argument=_strip_quotes(arg.strip()),
            ),
            depth,
        )
    eq = code.find("=")
    if eq < 0:
        return Line(number=number, raw=raw, kind=Kind.OTHER), depth
    key = code[:eq].strip()
    sep_end = eq + 1
    kind = Kind.SETTING
    if code[sep_end : sep_end + 1] == ">":
        sep_end += 1
        kind = Kind.OBJECT
    value_part = code[sep_end:]
    vstart = sep_end + (len(value_part) - len(value_part.lstrip()))
    vend = sep_end + len(value_part.rstrip())
    value = code[vstart:vend] if vstart < vend else ""
    span: tuple[int, int] | None = _value_span(raw, where, vstart, max(vstart, vend), sep_end)
    if value and span is not None and raw[span[0] : span[1]] != value:
        span = None  # split by a block comment or an escape: not safe to edit in place
    return (
        Line(number=number, raw=raw, kind=kind, name=key, value=value, span=span),
        depth,
    )


def parse_text(text: str) -> tuple[Line, ...]:
    """Every physical line of one file, classified."""
    depth = 0
    out: list[Line] = []
    for number, raw in enumerate(split_lines(text), start=1):
        line, depth = parse_line(number, raw, depth)
        out.append(line)
    return tuple(out)


# --------------------------------------------------------------------------- includes


@dataclass(frozen=True, slots=True, kw_only=True)
class Setting:
    file: str
    line: int
    key: str
    value: str
    span: tuple[int, int] | None


@dataclass(slots=True, kw_only=True)
class Category:
    name: str
    template: bool
    file: str
    line: int
    settings: list[Setting] = field(default_factory=list)
    execs: list[tuple[str, int]] = field(default_factory=list)

    def values(self, key: str) -> list[Setting]:
        k = key.lower()
        return [s for s in self.settings if s.key.lower() == k]


@dataclass(frozen=True, slots=True, kw_only=True)
class Tree:
    """A main file with everything it includes, in Asterisk's reading order."""

    main: str
    texts: Mapping[str, str]
    lines: Mapping[str, tuple[Line, ...]]
    categories: tuple[Category, ...]
    execs: tuple[tuple[str, int], ...] = ()

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(self.texts)


Reader = Callable[[str], str]
Expander = Callable[[str], list[str]]


def expand_glob(pattern: str) -> list[str]:
    """Asterisk globs every #include (sorted, like glob(3)); a plain name is itself."""
    if glob.has_magic(pattern):
        return sorted(glob.glob(pattern))
    return [pattern]


def include_path(confdir: str, argument: str) -> str:
    return argument if os.path.isabs(argument) else os.path.join(confdir, argument)


def load_tree(main: str, *, confdir: str, read: Reader, expand: Expander = expand_glob) -> Tree:
    """Read *main* and its includes. ``read(path)`` returns the text or raises
    FileNotFoundError / OSError. Raises :class:`SyntaxProblem` for what Asterisk
    refuses (a missing #include, a setting before any section, inheriting from a
    section that does not exist) and for include loops."""
    texts: dict[str, str] = {}
    parsed: dict[str, tuple[Line, ...]] = {}
    categories: list[Category] = []
    execs: list[tuple[str, int]] = []
    current: list[Category | None] = [None]

    def find(name: str) -> Category | None:
        low = name.lower()
        for cat in categories:
            if cat.name.lower() == low:
                return cat
        return None

    def walk(path: str, stack: tuple[str, ...]) -> None:
        if path not in parsed:
            text = read(path)
            texts[path] = text
            parsed[path] = parse_text(text)
        for line in parsed[path]:
            if line.kind is Kind.HEADER:
                opts = line.options
                if "+" in opts:
                    existing = find(line.name)
                    if existing is None:
                        raise SyntaxProblem(
                            path,
                            line.number,
                            f"[{line.name}](+) adds to a section that does not exist",
                        )
                    current[0] = existing
                    continue
                cat = Category(name=line.name, template="!" in opts, file=path, line=line.number)
                for base_name in opts:
                    if base_name in ("!", "+"):
                        continue
                    base = find(base_name)
                    if base is None:
                        raise SyntaxProblem(
                            path,
                            line.number,
                            f"[{line.name}] inherits from [{base_name}], which is not "
                            "defined before it",
                        )
                    cat.settings.extend(base.settings)
                categories.append(cat)
                current[0] = cat
            elif line.kind is Kind.SETTING:
                cat_now = current[0]
                if cat_now is None:
                    raise SyntaxProblem(
                        path, line.number, f"{line.name} = ... comes before any [section]"
                    )
                cat_now.settings.append(
                    Setting(
                        file=path, line=line.number, key=line.name, value=line.value, span=line.span
                    )
                )
            elif line.kind is Kind.DIRECTIVE and line.name in ("include", "tryinclude"):
                if not line.argument:
                    raise SyntaxProblem(path, line.number, f"#{line.name} without a file name")
                target = include_path(confdir, line.argument)
                loaded = 0
                for inc in expand(target):
                    if inc in stack:
                        raise SyntaxProblem(
                            path, line.number, f"#{line.name} {line.argument}: include loop"
                        )
                    if len(stack) >= MAX_INCLUDE_LEVEL:
                        raise SyntaxProblem(
                            path,
                            line.number,
                            f"#{line.name} {line.argument}: more than "
                            f"{MAX_INCLUDE_LEVEL} levels of includes",
                        )
                    try:
                        walk(inc, (*stack, inc))
                    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                        continue
                    loaded += 1
                if not loaded and line.name == "include":
                    raise SyntaxProblem(
                        path,
                        line.number,
                        f"#include {line.argument}: no such file (Asterisk refuses this "
                        "configuration; use #tryinclude for optional files)",
                    )
            elif line.kind is Kind.DIRECTIVE and line.name in ("exec", "tryexec"):
                execs.append((path, line.number))
                cat_now = current[0]
                if cat_now is not None:
                    cat_now.execs.append((path, line.number))

    walk(main, (main,))
    return Tree(
        main=main,
        texts=texts,
        lines=parsed,
        categories=tuple(categories),
        execs=tuple(execs),
    )


# --------------------------------------------------------------------------- what to rewrite


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """Which key in which sections: ``bindaddr`` in ``[general]``, or ``bind`` in
    every section with ``type=transport`` (pjsip)."""

    key: str
    section: str | None = "general"

    def describe(self) -> str:
        if self.section is None:
            return f"{self.key} in type=transport sections"
        return f"{self.key} in [{self.section}]"

    def categories(self, tree: Tree) -> list[tuple[tuple[str, int], Category]]:
        """Target sections with a stable identity (name, n-th section of that name)."""
        out: list[tuple[tuple[str, int], Category]] = []
        if self.section is not None:
            low = self.section.lower()
            for cat in tree.categories:
                if cat.name.lower() == low and not cat.template:
                    out.append(((low, 0), cat))
                    break
            return out
        seen: dict[str, int] = {}
        for cat in tree.categories:
            if cat.template:
                continue
            types = cat.values("type")
            if not types or types[-1].value != "transport":
                continue
            low = cat.name.lower()
            n = seen.get(low, 0)
            seen[low] = n + 1
            out.append(((low, n), cat))
        return out


GENERAL_BINDADDR = Rule(key="bindaddr", section="general")
PJSIP_TRANSPORT_BIND = Rule(key="bind", section=None)


def rule_for(filename: str) -> Rule:
    """pjsip*.conf: transports' ``bind``; any other file: ``bindaddr`` in ``[general]``."""
    if os.path.basename(filename).lower().startswith("pjsip"):
        return PJSIP_TRANSPORT_BIND
    return GENERAL_BINDADDR


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One place the key is (``setting``) or must be added (``setting is None``:
    right after the section header at ``file``:``line``)."""

    identity: tuple[str, int, int]  # section name, n-th such section, n-th occurrence
    section: str
    file: str
    line: int
    setting: Setting | None


def find_targets(tree: Tree, rule: Rule) -> list[Target]:
    out: list[Target] = []
    for (name, nth), cat in rule.categories(tree):
        found = cat.values(rule.key)
        if not found:
            out.append(
                Target(
                    identity=(name, nth, 0),
                    section=cat.name,
                    file=cat.file,
                    line=cat.line,
                    setting=None,
                )
            )
        for k, s in enumerate(found):
            out.append(
                Target(
                    identity=(name, nth, k), section=cat.name, file=s.file, line=s.line, setting=s
                )
            )
    return out


# --------------------------------------------------------------------------- addresses


def split_host(value: str) -> tuple[str, str, bool]:
    """``addr[:port]`` -> (host, rest, bracketed); rest is kept verbatim (``:5060``)."""
    if value.startswith("["):
        end = value.find("]")
        if end > 0:
            return value[1:end], value[end + 1 :], True
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, ":" + port, False
    return value, "", False


def with_host(value: str, vip: str) -> str:
    """*value* with its address replaced by *vip*, the port (if any) kept."""
    _, rest, bracketed = split_host(value)
    v6 = ":" in vip
    if v6 and (rest or bracketed):
        return f"[{vip}]{rest}"
    return f"{vip}{rest}"


def same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower() == b.lower()


def carries(value: str, vip: str) -> bool:
    return same_address(split_host(value)[0], vip)


# --------------------------------------------------------------------------- edits


@dataclass(frozen=True, slots=True, kw_only=True)
class Edit:
    file: str
    line: int
    raw: str | None  # the new text of the line (with its ending); None deletes it


def apply_edits(text: str, edits: Sequence[Edit]) -> str:
    lines = split_lines(text)
    for e in sorted(edits, key=lambda e: e.line, reverse=True):
        if e.raw is None:
            del lines[e.line - 1]
        else:
            lines[e.line - 1] = e.raw
    return "".join(lines)


def _eol(raw: str) -> str:
    if raw.endswith("\r\n"):
        return "\r\n"
    return "\n"


def _replace_value(tree: Tree, s: Setting, new: str) -> str:
    raw = tree.lines[s.file][s.line - 1].raw
    if s.span is None:
        raise SyntaxProblem(
            s.file,
            s.line,
            f"{s.key} = {s.value}: the value is split by a comment or an escape; "
            "write it on one line without comments inside it",
        )
    a, b = s.span
    return raw[:a] + new + raw[b:]


def rewrite_edits(tree: Tree, rule: Rule, vip: str) -> list[Edit]:
    """The edits that make every target carry *vip* (none if all already do)."""
    edits: dict[tuple[str, int], Edit] = {}
    for t in find_targets(tree, rule):
        if t.setting is not None:
            if t.setting.value and carries(t.setting.value, vip):
                continue
            key = (t.setting.file, t.setting.line)
            if key in edits:
                continue
            raw = _replace_value(tree, t.setting, with_host(t.setting.value, vip))
            edits[key] = Edit(file=t.setting.file, line=t.setting.line, raw=raw)
        else:
            header = tree.lines[t.file][t.line - 1].raw
            if header.endswith("\n"):
                added = f"{header}{rule.key}={vip} ; {MARKER}{_eol(header)}"
            else:
                eol = _eol(tree.texts[t.file]) if "\n" in tree.texts[t.file] else "\n"
                added = f"{header}{eol}{rule.key}={vip} ; {MARKER}"
            edits[(t.file, t.line)] = Edit(file=t.file, line=t.line, raw=added)
    return list(edits.values())


def rewritten_texts(tree: Tree, rule: Rule, vip: str) -> dict[str, str]:
    """path -> new text, for the files that change."""
    by_file: dict[str, list[Edit]] = {}
    for e in rewrite_edits(tree, rule, vip):
        by_file.setdefault(e.file, []).append(e)
    return {f: apply_edits(tree.texts[f], es) for f, es in by_file.items()}


def all_carry(tree: Tree, rule: Rule, vip: str) -> bool:
    """Every target section has the key and every occurrence carries *vip*."""
    targets = find_targets(tree, rule)
    return bool(targets) and all(
        t.setting is not None and carries(t.setting.value, vip) for t in targets
    )


def restore_edits(current: Tree, original: Tree, rule: Rule, vip: str) -> list[Edit]:
    """Put the original values back into a file that was edited while pulse held it.

    An occurrence carrying *vip* gets the value the same occurrence (same section,
    same position) had originally; a line pulse added (it carries :data:`MARKER`)
    and that had no original is removed. Everything else stays as it is now.
    """
    before = {t.identity: t for t in find_targets(original, rule)}
    edits: dict[tuple[str, int], Edit] = {}
    for t in find_targets(current, rule):
        s = t.setting
        if s is None or not carries(s.value, vip):
            continue
        key = (s.file, s.line)
        if key in edits:
            continue
        was = before.get(t.identity)
        if was is not None and was.setting is not None:
            if was.setting.value != s.value:
                edits[key] = Edit(
                    file=s.file, line=s.line, raw=_replace_value(current, s, was.setting.value)
                )
        elif MARKER in current.lines[s.file][s.line - 1].raw:
            edits[key] = Edit(file=s.file, line=s.line, raw=None)
    return list(edits.values())
