"""Rewriting and restoring the configured files on disk (blocking; run in a thread).

* :func:`rewrite_files` makes every target carry the floating IP. Before the first
  change to a physical file (the main file or an included one) it saves the file as
  ``FILE.pulse-orig``; an existing backup is kept (it is the original from before the
  first rewrite, e.g. when a node crashed while holding the group).
* :func:`restore_files` puts the originals back: a file that still is exactly what
  pulse wrote gets its backup back byte for byte; a file someone changed while pulse
  held it gets only the original addresses back (and lines pulse added removed), the
  other changes are kept. The backup is removed afterwards.
* :func:`files_carry` says whether every target carries the address.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from pulse_asterisk.files import (
    atomic_write,
    backup_path,
    clean_stale_temps,
    read_bytes,
    remove_durably,
)
from pulse_asterisk.settings import AsteriskSettings
from pulse_asterisk.syntax import (
    ENCODING,
    Edit,
    SyntaxProblem,
    Tree,
    all_carry,
    apply_edits,
    load_tree,
    restore_edits,
    rewritten_texts,
    rule_for,
)

log = logging.getLogger("pulse.asterisk")


class RebindError(Exception):
    """A file cannot be read, understood or written; the message says which and why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    changed: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def read_text(path: str) -> str:
    return read_bytes(path).decode(ENCODING)


def read_original(path: str) -> str:
    """The file as it was before pulse changed it: its backup if there is one."""
    try:
        return read_text(backup_path(path))
    except FileNotFoundError:
        return read_text(path)


def _load(main: str, confdir: str, read: Callable[[str], str]) -> Tree:
    try:
        return load_tree(main, confdir=confdir, read=read)
    except SyntaxProblem as exc:
        raise RebindError(str(exc)) from exc
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise RebindError(f"cannot read {exc.filename or main}: {exc.strerror}") from exc


def _write(path: str, text: str) -> None:
    try:
        atomic_write(path, text.encode(ENCODING))
    except OSError as exc:
        raise RebindError(f"cannot write {path}: {exc.strerror}") from exc


def _trees(
    settings: AsteriskSettings, read: Callable[[str], str], skipped: list[str]
) -> list[Tree]:
    trees: list[Tree] = []
    for main in settings.paths():
        try:
            tree = _load(main, settings.confdir, read)
        except FileNotFoundError as exc:
            if settings.files_explicit:
                raise RebindError(f"{main}: no such file (listed in files)") from exc
            skipped.append(f"{main}: not present")
            continue
        rule = rule_for(main)
        if not rule.categories(tree):
            if settings.files_explicit:
                raise RebindError(f"{main}: no section to rewrite ({rule.describe()})")
            skipped.append(f"{main}: has no {rule.describe()}")
            continue
        trees.append(tree)
    return trees


def rewrite_files(settings: AsteriskSettings, vip: str) -> Outcome:
    """Make every target carry *vip*; returns the physical files changed."""
    changed: list[str] = []
    skipped: list[str] = []
    warnings: list[str] = []
    found = 0
    for main in settings.paths():
        # One main file at a time, re-read: two main files may include the same file.
        one = AsteriskSettings(
            confdir=settings.confdir, files=(main,), files_explicit=settings.files_explicit
        )
        for tree in _trees(one, read_text, skipped):
            found += 1
            rule = rule_for(tree.main)
            for path, line in tree.execs:
                warnings.append(
                    f"{path}:{line}: #exec output is not looked at; if it sets "
                    f"{rule.key}, it may override {vip}"
                )
            try:
                new = rewritten_texts(tree, rule, vip)
            except SyntaxProblem as exc:
                raise RebindError(str(exc)) from exc
            for path in tree.files:
                clean_stale_temps(path)
            for path, text in new.items():
                backup = backup_path(path)
                if not os.path.exists(backup):
                    try:
                        atomic_write(backup, tree.texts[path].encode(ENCODING), like=path)
                    except OSError as exc:
                        raise RebindError(f"cannot save {backup}: {exc.strerror}") from exc
                _write(path, text)
                changed.append(path)
    if not found:
        raise RebindError(
            f"none of {', '.join(settings.files)} in {settings.confdir} has a bind "
            "address to rewrite"
        )
    return Outcome(changed=tuple(changed), skipped=tuple(skipped), warnings=tuple(warnings))


def restore_files(settings: AsteriskSettings, vip: str) -> Outcome:
    """Undo :func:`rewrite_files` (see the module docstring); idempotent."""
    changed: list[str] = []
    warnings: list[str] = []
    for main in settings.paths():
        try:
            current = load_tree(main, confdir=settings.confdir, read=read_text)
        except FileNotFoundError:
            continue
        except (SyntaxProblem, OSError) as exc:
            warnings.append(f"cannot restore {main}: {exc}; left as it is")
            continue
        for path in current.files:
            clean_stale_temps(path)
        backed = [p for p in current.files if os.path.exists(backup_path(p))]
        if not backed:
            continue
        rule = rule_for(main)
        try:
            original = load_tree(main, confdir=settings.confdir, read=read_original)
            expected = {**original.texts, **rewritten_texts(original, rule, vip)}
            reverse = restore_edits(current, original, rule, vip)
        except (SyntaxProblem, OSError) as exc:
            warnings.append(f"cannot restore {main}: {exc}; left as it is")
            continue
        edits: dict[str, list[Edit]] = {}
        for e in reverse:
            edits.setdefault(e.file, []).append(e)
        for path in backed:
            backup = backup_path(path)
            saved = read_text(backup)
            now = current.texts[path]
            if now == expected.get(path):
                new = saved
            else:
                new = apply_edits(now, edits.get(path, []))
                if new != now:
                    warnings.append(
                        f"{path} was changed while pulse held it: only the original bind "
                        "addresses were put back, the other changes are kept"
                    )
            if new != now:
                _write(path, new)
                changed.append(path)
            remove_durably(backup)
    return Outcome(changed=tuple(changed), warnings=tuple(warnings))


def files_carry(settings: AsteriskSettings, vip: str) -> bool:
    """True when every target in every (present) file carries *vip*."""
    skipped: list[str] = []
    trees = _trees(settings, read_text, skipped)
    return bool(trees) and all(all_carry(t, rule_for(t.main), vip) for t in trees)
