"""What ``pulse run`` leaves out of memory when the configuration does not need it.

Measured with ``/proc/self/status`` ``VmRSS`` after each import (docs/performance.md,
"Where a node's memory goes"): of an idle daemon's resident memory, OpenSSL accounts for
about 7 MiB, loaded by two imports the daemon never uses for its own work:

- trio imports :mod:`ssl` (for ``trio.SSLStream`` and DTLS) and ``idna`` (for host
  names given to ``trio.socket``) when it is imported, although a node without TLS
  never calls them: 3.2 MiB for ``libssl`` and the ``ssl`` module, 1 MiB for ``idna``.
  :func:`defer` puts stand-ins in their place: the real module is imported on the
  first attribute read, so a plugin that does use TLS (SMTP) still gets it.
- Three more stand-ins, for modules imported only to be at hand (about 1.1 MiB,
  docs/performance.md, "The fourth sitting"): :mod:`logging.handlers` imports
  :mod:`pickle` for its socket handler, which pulse does not use; trio imports
  :mod:`ctypes.util` to name its worker threads, which imports :mod:`shutil` (with
  :mod:`bz2` and :mod:`lzma`) and :mod:`tempfile` for fallbacks that do not run when
  ``ldconfig`` finds the library. ``tempfile`` is really imported when the first
  resource script runs (pulse.resources.scripts captures its output in temporary
  files); the command line keeps :mod:`argparse` from importing ``shutil`` for the
  terminal width (:class:`pulse.cli.Parser`).
- :mod:`hashlib` and :mod:`hmac` load OpenSSL's ``libcrypto`` through ``_hashlib``
  (3.7 MiB) for the HMAC-SHA1/MD5 of heartbeats, which CPython also implements itself
  (``_sha1``, ``_md5``, ``_sha256``): :func:`builtin_hashes` imports both without
  ``_hashlib``. Only when no plugin is installed (or all are disabled through
  ``PULSE_DISABLE_PLUGINS``, :func:`plugins_installed`): a plugin may need what only
  OpenSSL offers (``hashlib.pbkdf2_hmac``, ``scrypt``).
- Whether a plugin is installed is read from the distributions' ``entry_points.txt``
  (:func:`declared_names`), not through :mod:`importlib.metadata` (with :mod:`email`,
  :mod:`zipfile` and :mod:`csv`, about 1.3 MiB); ``pulse run`` then skips the plugin
  host's entry-point scan too when there is nothing to load.

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

__all__ = ["builtin_hashes", "declared_names", "defer", "plugins_installed"]

DEFERRED = ("ssl", "idna", "pickle", "shutil", "tempfile")


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
    """Whether some installed plugin is not disabled by ``PULSE_DISABLE_PLUGINS``.

    Read from the installed distributions' ``entry_points.txt`` (:func:`declared_names`)
    without importing :mod:`importlib.metadata` (with :mod:`email`, :mod:`zipfile`,
    :mod:`csv`: about 1.3 MiB resident in a daemon that has no plugin to load); only
    where that cannot answer for certain does it ask :mod:`importlib.metadata`.
    """
    from pulse.plugin.host import ENTRY_POINT_GROUP, disabled_from

    disabled = disabled_from(None)
    names = declared_names(ENTRY_POINT_GROUP)
    if names is None:
        import importlib.metadata

        names = [ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
    return any(name not in disabled for name in names)


def declared_names(group: str, path: list[str] | None = None) -> list[str] | None:
    """The names of the entry points in *group* of every distribution on *path*
    (``sys.path``), or None when this cannot be read for certain without
    :mod:`importlib.metadata`.

    It looks where ``importlib.metadata``'s path finder looks: every ``*.dist-info`` and
    ``*.egg-info`` directory in a directory of the path (and an ``.egg`` directory's
    ``EGG-INFO``), and reads the ``[group]`` section of its ``entry_points.txt``. It
    does not drop a distribution shadowed by an earlier one of the same name, so it
    may name more entry points than ``importlib.metadata.entry_points`` does, never
    fewer. None when the path holds a zip file or ``sys.meta_path`` has a finder other
    than the path finder that can find distributions.
    """
    import os

    finders = [f for f in sys.meta_path if hasattr(f, "find_distributions")]
    if any(f.__name__ != "PathFinder" if isinstance(f, type) else True for f in finders):
        return None
    names: list[str] = []
    for entry in sys.path if path is None else path:
        base = entry or "."
        try:
            children = os.listdir(base)
        except NotADirectoryError:
            return None  # a zip file on the path
        except OSError:
            continue  # a path entry that does not exist: nothing found there
        for child in children:
            low = child.lower()
            if low.endswith((".dist-info", ".egg-info")) or (
                low == "egg-info" and os.path.basename(base).lower().endswith(".egg")
            ):
                try:
                    with open(os.path.join(base, child, "entry_points.txt"), "rb") as f:
                        text = f.read().decode("utf-8", "replace")
                except (NotADirectoryError, FileNotFoundError):
                    continue  # a PKG-INFO file, or a distribution without entry points
                except OSError:
                    return None
                names.extend(_section_names(text, group))
    return names


def _section_names(text: str, group: str) -> list[str]:
    """The names in the ``[group]`` section of an ``entry_points.txt``, read as
    ``importlib.metadata`` reads them (``Sectioned``: blank lines and ``#`` comments
    skipped, brackets stripped from a section line, the name left of the first ``=``)."""
    names: list[str] = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
        elif section == group:
            names.append(line.partition("=")[0].strip())
    return names


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
