"""`pulse run` keeps OpenSSL out of memory when nothing needs it (pulse.cli.lean).

Each case runs in a fresh interpreter: the test process has imported trio and hmac.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import zipfile
from pathlib import Path

from pulse.cli import lean
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
    assert lines[0] == "['ssl', 'idna', 'pickle', 'shutil', 'tempfile'] True"
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


def _dist(root: Path, folder: str, entry_points: str | None) -> None:
    info = root / folder
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {folder.split('-')[0]}\n")
    if entry_points is not None:
        (info / "entry_points.txt").write_text(entry_points)


def _metadata_names(path: list[str], group: str) -> set[str]:
    found = importlib.metadata.distributions(path=path)
    return {ep.name for dist in found for ep in dist.entry_points if ep.group == group}


def test_declared_plugins_are_read_as_importlib_metadata_reads_them(tmp_path: Path) -> None:
    site, eggs = tmp_path / "site", tmp_path / "eggs"
    _dist(site, "alpha-1.0.dist-info", "[pulse]\nalpha = alpha_mod\n\n[console_scripts]\nx = y\n")
    _dist(site, "Beta_Two-2.dist-info", "# comment\n[pulse]\n  beta=beta.plugin:hooks  \n")
    _dist(site, "gamma-0.1.egg-info", "[other]\ngamma = g\n")
    _dist(site, "delta-3.dist-info", None)
    (site / "epsilon-1.egg-info").write_text("Metadata-Version: 1.0\nName: epsilon\n")
    _dist(eggs / "zeta-1.0.egg", "EGG-INFO", "[pulse]\nzeta = zeta\n")
    path = [str(site), str(eggs / "zeta-1.0.egg"), str(tmp_path / "missing")]
    assert sorted(lean.declared_names("pulse", path) or ()) == ["alpha", "beta", "zeta"]
    assert set(lean.declared_names("pulse", path) or ()) == _metadata_names(path, "pulse")
    assert lean.declared_names("other", path) == ["gamma"] == sorted(_metadata_names(path, "other"))


def test_declared_plugins_are_unknown_when_a_zip_file_is_on_the_path(tmp_path: Path) -> None:
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("omega-1.dist-info/entry_points.txt", "[pulse]\nomega = omega\n")
    assert lean.declared_names("pulse", [str(archive)]) is None
    assert _metadata_names([str(archive)], "pulse") == {"omega"}  # what it would miss


def test_the_installed_plugins_are_found_without_importlib_metadata() -> None:
    code = (
        "import sys\nfrom pulse.cli import lean\n"
        "print(sorted(set(lean.declared_names('pulse'))), lean.plugins_installed())\n"
        "print('importlib.metadata' in sys.modules)\n"
    )
    names, imported = _python(code, PULSE_DISABLE_PLUGINS="").splitlines()
    assert names == f"{sorted(PLUGINS_OFF.split(','))} {bool(PLUGINS_OFF)}"
    assert imported == "False"


def test_what_is_imported_only_to_be_at_hand_stays_out_until_it_is_used() -> None:
    code = (
        "import sys\nfrom pulse.cli import lean\nlean.defer(), lean.builtin_hashes()\n"
        "from pulse.cli.main import build_parser\n"
        "build_parser().parse_args(['run', '-c', '/etc/ha.d'])\n"
        "import pulse.cli.run, pulse.daemon, pulse.logsetup, pulse.notify\n"
        "real = ('_pickle', 'bz2', '_lzma', 'shutil.copyfileobj', 'tempfile.TemporaryFile',"
        " '_datetime')\n"
        "print([m for m in real if m in sys.modules])\n"
        "from pulse.resources.base import wall_clock_iso\n"
        "print(wall_clock_iso(1.5))\n"
        "import tempfile\n"
        "with tempfile.TemporaryFile() as f:\n"
        "    print(f.write(b'out'))\n"
    )
    lines = _python(code).splitlines()
    assert lines == ["[]", "1970-01-01T00:00:01.500+00:00", "3"]


def test_a_daemon_without_plugins_does_not_load_what_it_never_uses() -> None:
    code = (
        "import sys\nfrom pulse.cli import lean\nlean.defer(), lean.builtin_hashes()\n"
        "import pulse.cli.main, pulse.cli.run, pulse.daemon\n"
        "unused = ('importlib.metadata', 'email', 'zipfile', 'csv', 'tomllib', 'difflib',"
        " 'trio_serial')\n"
        "print([m for m in unused if m in sys.modules])\n"
    )
    assert _python(code) == "[]"


def test_help_is_wrapped_to_the_terminal_width_without_shutil() -> None:
    code = (
        "import sys\nfrom pulse.cli.main import build_parser\n"
        "text = build_parser().format_help()\n"
        "print(max(len(line) for line in text.splitlines()), 'shutil' in sys.modules)\n"
    )
    widest, imported = _python(code, COLUMNS="50").split()
    assert int(widest) <= 48 and imported == "False"
