"""Real-world config sets (a MOR-style /etc/asterisk and a FreePBX include forest):
rewritten exactly as the golden files say, restored byte for byte."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from pulse_asterisk.files import BACKUP_SUFFIX
from pulse_asterisk.rebind import RebindError, files_carry, restore_files, rewrite_files
from pulse_asterisk.settings import AsteriskSettings

VIP = "198.51.100.100"
DATA = Path(__file__).parent / "data"


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture(params=["asterisk", "freepbx"])
def confdir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    target = tmp_path / request.param
    shutil.copytree(DATA / request.param, target)
    return target


def test_rewrite_gives_the_golden_files_and_leaves_every_other_file_alone(confdir: Path) -> None:
    before = snapshot(confdir)
    outcome = rewrite_files(AsteriskSettings(confdir=str(confdir)), VIP)
    after = snapshot(confdir)
    golden = DATA / "expected" / confdir.name
    changed = {Path(p).name for p in outcome.changed}
    assert changed == {p.name for p in golden.iterdir()}
    for name, data in after.items():
        if name.endswith(BACKUP_SUFFIX):
            assert data == before[name.removesuffix(BACKUP_SUFFIX)]
        elif name in changed:
            assert data == (golden / name).read_bytes(), name
        else:
            assert data == before[name], name


def test_restore_gives_back_the_original_bytes_and_removes_the_backups(confdir: Path) -> None:
    settings = AsteriskSettings(confdir=str(confdir))
    before = snapshot(confdir)
    rewrite_files(settings, VIP)
    restored = restore_files(settings, VIP)
    assert restored.warnings == ()
    assert snapshot(confdir) == before


def test_status_follows_rewrite_and_restore(confdir: Path) -> None:
    settings = AsteriskSettings(confdir=str(confdir))
    assert not files_carry(settings, VIP)
    rewrite_files(settings, VIP)
    assert files_carry(settings, VIP)
    restore_files(settings, VIP)
    assert not files_carry(settings, VIP)


def test_a_second_start_changes_nothing_and_keeps_the_first_backup(confdir: Path) -> None:
    settings = AsteriskSettings(confdir=str(confdir))
    original = snapshot(confdir)
    rewrite_files(settings, VIP)
    once = snapshot(confdir)
    assert rewrite_files(settings, VIP).changed == ()
    assert snapshot(confdir) == once
    restore_files(settings, VIP)
    assert snapshot(confdir) == original


def test_a_stop_without_a_start_touches_nothing(confdir: Path) -> None:
    before = snapshot(confdir)
    assert restore_files(AsteriskSettings(confdir=str(confdir)), VIP).changed == ()
    assert snapshot(confdir) == before


def test_crlf_file_keeps_crlf_on_every_line() -> None:
    golden = (DATA / "expected" / "asterisk" / "iax.conf").read_bytes()
    assert golden.count(b"\n") == golden.count(b"\r\n") > 0
    assert f"bindaddr={VIP}                ; the address we listen on\r\n".encode() in golden


def test_mode_and_owner_are_kept(confdir: Path) -> None:
    target = confdir / ("manager.conf" if confdir.name == "asterisk" else "sip_general_custom.conf")
    os.chmod(target, 0o640)
    if os.geteuid() == 0:
        os.chown(target, 123, 456)
    rewrite_files(AsteriskSettings(confdir=str(confdir)), VIP)
    st = target.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    backup = Path(str(target) + BACKUP_SUFFIX).stat()
    assert stat.S_IMODE(backup.st_mode) == 0o640
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (123, 456)
        assert (backup.st_uid, backup.st_gid) == (123, 456)


def test_a_symlinked_file_is_rewritten_through_the_link(tmp_path: Path) -> None:
    real = tmp_path / "shared"
    real.mkdir()
    (real / "manager.conf").write_text("[general]\nbindaddr=127.0.0.1\n")
    confdir = tmp_path / "asterisk"
    confdir.mkdir()
    (confdir / "manager.conf").symlink_to(real / "manager.conf")
    settings = AsteriskSettings(confdir=str(confdir), files=("manager.conf",), files_explicit=True)
    rewrite_files(settings, VIP)
    assert (confdir / "manager.conf").is_symlink()
    assert (real / "manager.conf").read_text() == f"[general]\nbindaddr={VIP}\n"
    restore_files(settings, VIP)
    assert (real / "manager.conf").read_text() == "[general]\nbindaddr=127.0.0.1\n"


def test_an_explicit_file_must_exist_and_have_a_section(tmp_path: Path) -> None:
    (tmp_path / "pjsip.conf").write_text("[system]\ntype=system\n")
    with pytest.raises(RebindError, match=r"sip\.conf: no such file"):
        rewrite_files(
            AsteriskSettings(confdir=str(tmp_path), files=("sip.conf",), files_explicit=True), VIP
        )
    with pytest.raises(RebindError, match="no section to rewrite"):
        rewrite_files(
            AsteriskSettings(confdir=str(tmp_path), files=("pjsip.conf",), files_explicit=True),
            VIP,
        )


def test_the_default_list_skips_absent_files_but_not_all_of_them(tmp_path: Path) -> None:
    with pytest.raises(RebindError, match="has a bind address to rewrite"):
        rewrite_files(AsteriskSettings(confdir=str(tmp_path)), VIP)
    (tmp_path / "manager.conf").write_text("[general]\nbindaddr=127.0.0.1\n")
    outcome = rewrite_files(AsteriskSettings(confdir=str(tmp_path)), VIP)
    assert outcome.changed == (str(tmp_path / "manager.conf"),)
    assert len(outcome.skipped) == 4


def test_a_file_edited_while_held_gets_only_its_addresses_back(tmp_path: Path) -> None:
    sip = tmp_path / "sip.conf"
    sip.write_text("[general]\nbindaddr=0.0.0.0:5060\n\n[100]\nsecret=a\n")
    h323 = tmp_path / "h323.conf"
    h323.write_text("[general]\nport=1720\n")
    settings = AsteriskSettings(confdir=str(tmp_path), files=("sip.conf", "h323.conf"))
    rewrite_files(settings, VIP)
    # The admin adds a peer on the active node, and a setting to h323.conf.
    sip.write_text(sip.read_text() + "\n[101]\nsecret=b\n")
    h323.write_text(h323.read_text() + "context=default\n")
    outcome = restore_files(settings, VIP)
    assert (
        sip.read_text()
        == "[general]\nbindaddr=0.0.0.0:5060\n\n[100]\nsecret=a\n\n[101]\nsecret=b\n"
    )
    assert h323.read_text() == "[general]\nport=1720\ncontext=default\n"
    assert len(outcome.warnings) == 2
    assert not list(tmp_path.glob("*" + BACKUP_SUFFIX))


def test_exec_in_a_file_is_reported_as_a_warning(tmp_path: Path) -> None:
    (tmp_path / "sip.conf").write_text("[general]\nbindaddr=0.0.0.0\n#exec /usr/bin/true\n")
    outcome = rewrite_files(AsteriskSettings(confdir=str(tmp_path), files=("sip.conf",)), VIP)
    assert any("#exec" in w for w in outcome.warnings)
