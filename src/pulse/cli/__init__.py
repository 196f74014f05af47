"""The ``pulse`` and ``pulsectl`` commands."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Protocol


class Main(Protocol):
    def __call__(self, argv: list[str] | None = None) -> int: ...


def closed_pipe_safe(main: Main) -> Main:
    """Wrap a command's ``main`` so that ``pulsectl status | head`` ends quietly.

    When the reader of our standard output goes away, the rest of the output is thrown
    away (standard output is pointed at /dev/null, so the interpreter's final flush does
    not fail either) and the command exits as it would have, without a traceback.
    """

    def wrapped(argv: list[str] | None = None) -> int:
        try:
            code = main(argv)
            sys.stdout.flush()
            return code
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return 0

    wrapped.__doc__ = main.__doc__
    return wrapped


def terminal_columns() -> int:
    """``shutil.get_terminal_size().columns`` without importing :mod:`shutil`: the
    ``COLUMNS`` variable when it is a positive number, else the width of the terminal
    on standard output, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    out = sys.__stdout__
    try:
        return (os.get_terminal_size(out.fileno()).columns if out else 0) or 80
    except (ValueError, OSError):
        return 80


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, told the width so that it does not import :mod:`shutil`
    to ask (``pulse run`` leaves shutil out of memory, :mod:`pulse.cli.lean`)."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = terminal_columns() - 2  # as argparse does
        super().__init__(prog, indent_increment, max_help_position, width)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose subcommand parsers, like itself, format help with
    :class:`HelpFormatter` (``add_subparsers`` makes them of this class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
