"""`pulse run` keeps OpenSSL out of memory when nothing needs it (pulse.cli.lean).

Each case runs in a fresh interpreter: the test process has imported trio and hmac.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

from pulse.config.model import AuthKey, AuthKeys, AuthMethod
from pulse.wire.auth import Signer

# Every plugin installed here (the contrib plugins and the example), by entry point.
PLUGINS_OFF = ",".join(sorted(ep.name for ep in importlib.metadata.entry_points(group="pulse")))


def _python(code: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    return done.stdout.strip()


def test_the_daemon_imports_without_openssl_and_tls_still_works_when_used() -> None:
    code = (
        "import sys\n"
        "from pulse.cli import lean\n"
        "print(lean.defer(), lean.builtin_hashes())\n"
        "import pulse.cli.run, pulse.daemon, pulse.transport.udp\n"
        "print('_ssl' in sys.modules, '_hashlib' in sys.modules, 'idna.core' in sys.modules)\n"
        "import hmac\n"
        "print(hmac.new(b'key', b'The quick brown fox', 'sha1').hexdigest())\n"
        "import ssl\n"
        "print(type(ssl.create_default_context()).__name__, '_ssl' in sys.modules)\n"
    )
    lines = _python(code).splitlines()
    assert lines[0] == "['ssl', 'idna'] True"
    assert lines[1] == "False False False"
    assert lines[2] == _hmac_sha1_reference()
    assert lines[3] == "SSLContext True"


def test_builtin_hashes_are_refused_once_hashlib_is_imported() -> None:
    code = "import hashlib\nfrom pulse.cli import lean\nprint(lean.builtin_hashes())\n"
    assert _python(code) == "False"


def test_installed_plugins_keep_openssl_unless_all_are_disabled() -> None:
    code = "from pulse.cli import lean\nprint(lean.plugins_installed())\n"
    everything = _python(code, PULSE_DISABLE_PLUGINS="")
    assert _python(code, PULSE_DISABLE_PLUGINS=PLUGINS_OFF) == "False"
    assert everything in ("True", "False")  # True where the contrib plugins are installed


def test_signatures_are_the_same_with_cpythons_own_digests() -> None:
    keys = AuthKeys(
        outbound=2,
        keys=(
            AuthKey(index=1, method=AuthMethod.MD5, key=b"secret"),
            AuthKey(index=2, method=AuthMethod.SHA1, key=b"pulse-e2e-secret"),
            AuthKey(index=3, method=AuthMethod.SHA256, key=b"k"),
        ),
    )
    data = b"t=status\nst=active\n" * 10
    here = Signer(keys)
    ours = [here.digest(i, data) for i in (1, 2, 3)]
    code = (
        "from pulse.cli import lean\nlean.builtin_hashes()\n"
        "from pulse.config.model import AuthKey, AuthKeys, AuthMethod\n"
        "from pulse.wire.auth import Signer\n"
        "k = AuthKeys(outbound=2, keys=(AuthKey(index=1, method=AuthMethod.MD5, key=b'secret'),"
        " AuthKey(index=2, method=AuthMethod.SHA1, key=b'pulse-e2e-secret'),"
        " AuthKey(index=3, method=AuthMethod.SHA256, key=b'k')))\n"
        "s = Signer(k)\n"
        f"print(' '.join(s.digest(i, {data!r}) for i in (1, 2, 3)))\n"
        "import sys; print('_hashlib' in sys.modules)\n"
    )
    theirs, openssl = _python(code).splitlines()
    assert theirs.split() == ours
    assert openssl == "False"
    # The same message twice gives the same digest (the per-key template is copied).
    assert here.sign(data) == here.sign(data) == (2, ours[1])


def _hmac_sha1_reference() -> str:
    import hmac

    return hmac.new(b"key", b"The quick brown fox", "sha1").hexdigest()
