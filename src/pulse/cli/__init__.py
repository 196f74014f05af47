"""The ``pulse`` and ``pulsectl`` commands."""

from __future__ import annotations

import os
import sys
from typing import Protocol


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
