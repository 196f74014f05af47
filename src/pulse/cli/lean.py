"""What ``pulse run`` leaves out of memory when the configuration does not need it.

Measured with ``/proc/self/status`` ``VmRSS`` after each import (docs/performance.md,
"Where a node's memory goes"): of an idle daemon's resident memory, OpenSSL accounts for
about 7 MiB, loaded by two imports the daemon never uses for its own work:

- trio imports :mod:`ssl` (for ``trio.SSLStream`` and DTLS) and ``idna`` (for host
  names given to ``trio.socket``) when it is imported, although a node without TLS
  never calls them: 3.2 MiB for ``libssl`` and the ``ssl`` module, 1 MiB for ``idna``.
  :func:`defer` puts stand-ins in their place: the real module is imported on the
  first attribute read, so a plugin that does use TLS (SMTP) still gets it.
- :mod:`hashlib` and :mod:`hmac` load OpenSSL's ``libcrypto`` through ``_hashlib``
  (3.7 MiB) for the HMAC-SHA1/MD5 of heartbeats, which CPython also implements itself
  (``_sha1``, ``_md5``, ``_sha256``): :func:`builtin_hashes` imports both without
  ``_hashlib``. Only when no plugin is installed (or all are disabled through
  ``PULSE_DISABLE_PLUGINS``, :func:`plugins_installed`): a plugin may need what only
  OpenSSL offers (``hashlib.pbkdf2_hmac``, ``scrypt``).

Both must run before trio, ``hmac`` or ``hashlib`` is imported, so ``pulse run`` calls
them first (loading the configuration already imports trio, through the floating IP's
argument parser). Tests import trio first and so run with the ordinary modules.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

__all__ = ["builtin_hashes", "defer", "plugins_installed"]

DEFERRED = ("ssl", "idna")


class _Deferred(types.ModuleType):
    """Stands in for a module until one of its attributes is read.

    ``importlib.util.LazyLoader`` would not do: on Python 3.11 the import statement
    itself reads ``__spec__`` of a module found in ``sys.modules``, which makes it load.
    Here ``__spec__`` and the other dunders are plain attributes; any other name
    imports the real module, copies its namespace in and puts it in ``sys.modules``.
    """

    def __getattr__(self, attr: str) -> Any:
        with _lock:
            name = self.__name__
            if sys.modules.get(name) is self:
                del sys.modules[name]
            real = importlib.import_module(name)
            for key, value in real.__dict__.items():
                if key not in ("__getattr__",):
                    setattr(self, key, value)
        return getattr(real, attr)


_lock = threading.Lock()


def defer(names: tuple[str, ...] = DEFERRED) -> list[str]:
    """Put stand-ins for *names* not imported yet in ``sys.modules``; returns those."""
    done: list[str] = []
    for name in names:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        module = _Deferred(name)
        module.__spec__ = spec
        sys.modules[name] = module
        done.append(name)
    return done


def plugins_installed() -> bool:
    """Whether some installed plugin is not disabled by ``PULSE_DISABLE_PLUGINS``."""
    import importlib.metadata

    from pulse.plugin.host import ENTRY_POINT_GROUP, disabled_from

    disabled = disabled_from(None)
    entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return any(ep.name not in disabled for ep in entry_points)


def builtin_hashes() -> bool:
    """Import :mod:`hashlib` and :mod:`hmac` on CPython's own digests; False if too late."""
    if "hashlib" in sys.modules or "hmac" in sys.modules or "_hashlib" in sys.modules:
        return False
    sys.modules["_hashlib"] = None  # type: ignore[assignment]  # the documented way to block
    try:
        import hashlib
        import hmac

        del hashlib, hmac
    finally:
        del sys.modules["_hashlib"]  # a later `import _hashlib` works again
    return True
