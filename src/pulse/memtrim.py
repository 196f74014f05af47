"""Give the C heap's free pages back to the kernel (glibc ``malloc_trim``).

Start-up (imports, parsing the configuration, loading plugins) leaves a few MiB of
freed but still resident memory in the C heap; a long-running daemon never needs it
again. :func:`trim` returns it; the daemon calls it once it is up and then every few
minutes. It is a sub-millisecond call, so it runs in the trio thread. Elsewhere than
glibc it does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

__all__ = ["trim"]


def _find() -> Callable[[int], int] | None:
    try:
        function = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_size_t,)
    function.restype = ctypes.c_int
    return function


_malloc_trim = _find()


def trim() -> bool:
    """Release free heap memory; True if some was given back."""
    if _malloc_trim is None:
        return False
    return bool(_malloc_trim(0))
