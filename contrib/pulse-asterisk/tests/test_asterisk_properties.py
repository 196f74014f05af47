"""Property tests: on generated config files, rewriting changes only the value of the
target key (never comments, look-alike keys or other sections), and restore is exact."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from pulse_asterisk.rebind import files_carry, restore_files, rewrite_files
from pulse_asterisk.settings import AsteriskSettings
from pulse_asterisk.syntax import (
    GENERAL_BINDADDR,
    MARKER,
    all_carry,
    load_tree,
    parse_text,
    rewritten_texts,
    split_lines,
)

VIP = "198.51.100.100"


@dataclass(frozen=True)
class Generated:
    text: str
    targets: frozenset[int]  # 1-based numbers of the lines that must change
    general_header: int | None  # line of the first [general], if any


_free = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\n;\\"),
    max_size=20,
)
_value = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.sampled_from(["0.0.0.0:5060", "[::]:5061", "::", "pbx.example.com", "127.0.0.1"]),
)
_key = st.sampled_from(
    ["bindaddr", "BindAddr", "tcpbindaddr", "udpbindaddr", "bindport", "context", "bindaddress"]
)
_sep = st.sampled_from(["=", " = ", "\t=\t", "  =", "= "])
_section = st.sampled_from(["general", "General", "peer", "globals", "authentication"])


@st.composite
def configs(draw: st.DrawFn) -> Generated:
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    lines: list[str] = []
    targets: set[int] = set()
    general_header: int | None = None
    in_first_general = False
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        name = draw(_section)
        lines.append(f"[{name}]" + draw(st.sampled_from(["", "  ; section"])))
        in_first_general = name.lower() == "general" and general_header is None
        if in_first_general:
            general_header = len(lines)
        for _ in range(draw(st.integers(min_value=0, max_value=6))):
            kind = draw(st.sampled_from(["setting", "comment", "block", "blank"]))
            if kind == "setting":
                key = draw(_key)
                lead = draw(st.sampled_from(["", " ", "\t"]))
                trail = draw(st.sampled_from(["", "   "]))
                comment = draw(st.one_of(st.just(""), _free.map(lambda t: " ; " + t)))
                lines.append(f"{lead}{key}{draw(_sep)}{draw(_value)}{trail}{comment}")
                if in_first_general and key.lower() == "bindaddr":
                    targets.add(len(lines))
            elif kind == "comment":
                lines.append(f";{draw(_key)}={draw(_value)}")
            elif kind == "block":
                lines.append(";--" + draw(st.sampled_from(["", " old settings"])))
                lines.append("[general]")
                lines.append(f"bindaddr = {draw(_value)}")
                lines.append("--;")
            else:
                lines.append("")
    last_eol = draw(st.sampled_from([eol, ""]))
    return Generated(
        text=eol.join(lines) + last_eol,
        targets=frozenset(targets),
        general_header=general_header,
    )


def _rewrite(text: str) -> str:
    tree = load_tree("/c/sip.conf", confdir="/c", read=lambda _: text)
    return rewritten_texts(tree, GENERAL_BINDADDR, VIP).get("/c/sip.conf", text)


@settings(max_examples=300, deadline=None)
@given(configs())
def test_only_the_value_of_bindaddr_in_the_first_general_section_changes(g: Generated) -> None:
    out = _rewrite(g.text)
    before = split_lines(g.text)
    after = split_lines(out)
    if g.general_header is not None and not g.targets:
        # The key is added right after the header; nothing else moves.
        added = after[g.general_header]
        assert added.startswith(f"bindaddr={VIP} ; {MARKER}")
        del after[g.general_header]
        if not before[g.general_header - 1].endswith("\n"):
            after[g.general_header - 1] = after[g.general_header - 1].rstrip("\r\n")
    assert len(after) == len(before)
    parsed = parse_text(g.text)
    for number, (old, new) in enumerate(zip(before, after, strict=True), start=1):
        if number not in g.targets:
            assert old == new, f"line {number} changed"
            continue
        span = parsed[number - 1].span
        assert span is not None
        a, b = span
        assert new[:a] == old[:a]
        assert new[len(new) - (len(old) - b) :] == old[b:]
    if g.general_header is not None:
        tree = load_tree("/c/sip.conf", confdir="/c", read=lambda _: out)
        assert all_carry(tree, GENERAL_BINDADDR, VIP)
        assert _rewrite(out) == out  # idempotent


@settings(max_examples=100, deadline=None)
@given(configs())
def test_rewrite_then_restore_gives_the_same_bytes(g: Generated) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "sip.conf"
        path.write_bytes(g.text.encode("latin-1", errors="replace"))
        original = path.read_bytes()
        s = AsteriskSettings(confdir=d, files=("sip.conf",))
        if g.general_header is None:
            return
        rewrite_files(s, VIP)
        assert files_carry(s, VIP)
        restore_files(s, VIP)
        assert path.read_bytes() == original
        assert sorted(p.name for p in Path(d).iterdir()) == ["sip.conf"]
