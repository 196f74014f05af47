"""Asterisk's config syntax as config.c reads it: comments, sections, includes, targets."""

from __future__ import annotations

import pytest
from pulse_asterisk.syntax import (
    GENERAL_BINDADDR,
    MARKER,
    PJSIP_TRANSPORT_BIND,
    Kind,
    SyntaxProblem,
    Tree,
    all_carry,
    find_targets,
    load_tree,
    parse_text,
    rewritten_texts,
    rule_for,
    split_host,
    split_lines,
    with_host,
)

VIP = "198.51.100.100"


def tree_of(files: dict[str, str], main: str = "/c/sip.conf") -> Tree:
    def read(path: str) -> str:
        try:
            return files[path]
        except KeyError:
            raise FileNotFoundError(path) from None

    return load_tree(main, confdir="/c", read=read, expand=lambda p: [p])


def rewrite(text: str, main: str = "/c/sip.conf") -> str:
    tree = tree_of({main: text}, main)
    return rewritten_texts(tree, rule_for(main), VIP).get(main, text)


# --------------------------------------------------------------------------- lines


def test_split_lines_keeps_every_byte_including_crlf_and_missing_last_newline() -> None:
    text = "a\r\nb\n\nc"
    assert split_lines(text) == ["a\r\n", "b\n", "\n", "c"]
    assert "".join(split_lines(text)) == text


def test_semicolon_starts_a_comment_and_escaped_semicolon_is_part_of_the_value() -> None:
    (line,) = parse_text("useragent = MOR\\;PBX ; the PBX\n")
    assert line.kind is Kind.SETTING
    assert line.name == "useragent"
    assert line.value == "MOR;PBX"
    assert line.span is None  # the escape makes the value differ from the raw text


def test_a_key_inside_a_line_comment_is_not_a_setting() -> None:
    lines = parse_text(";bindaddr=1.2.3.4\n  ; bindaddr = 5.6.7.8\n")
    assert [line.kind for line in lines] == [Kind.COMMENT, Kind.COMMENT]


def test_block_comments_span_lines_nest_and_end_mid_line() -> None:
    text = ";-- start\nbindaddr=1.1.1.1\n;-- nested --;\nbindaddr=2.2.2.2\n--; bindaddr = 3.3.3.3\n"
    lines = parse_text(text)
    assert [line.kind for line in lines] == [Kind.COMMENT] * 4 + [Kind.SETTING]
    assert lines[4].value == "3.3.3.3"
    assert lines[4].raw[slice(*lines[4].span or (0, 0))] == "3.3.3.3"


def test_four_dashes_are_a_line_comment_not_a_block_comment() -> None:
    lines = parse_text(";---- banner ----;\nbindaddr=1.1.1.1\n")
    assert [line.kind for line in lines] == [Kind.COMMENT, Kind.SETTING]


def test_headers_templates_and_inheritance_options() -> None:
    lines = parse_text("[general]\n[tmpl](!)\n[peer](tmpl, other)\n[general](+)\n")
    assert [(line.name, line.options) for line in lines] == [
        ("general", ()),
        ("tmpl", ("!",)),
        ("peer", ("tmpl", "other")),
        ("general", ("+",)),
    ]


def test_object_lines_are_not_settings() -> None:
    (line,) = parse_text("exten => bindaddr,1,Answer()\n")
    assert line.kind is Kind.OBJECT


def test_directives_strip_quotes_and_angle_brackets() -> None:
    lines = parse_text('#include "a.conf"\n#tryinclude <b.conf>\n#exec /bin/true\n')
    assert [(line.name, line.argument) for line in lines] == [
        ("include", "a.conf"),
        ("tryinclude", "b.conf"),
        ("exec", "/bin/true"),
    ]


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.0.0.0", VIP),
        ("0.0.0.0:5060", f"{VIP}:5060"),
        ("[::]:5061", f"{VIP}:5061"),
        ("::", VIP),
        ("", VIP),
        ("pbx.example.com:5070", f"{VIP}:5070"),
    ],
)
def test_with_host_replaces_the_address_and_keeps_the_port(value: str, expected: str) -> None:
    assert with_host(value, VIP) == expected


def test_an_ipv6_floating_ip_is_bracketed_only_when_a_port_follows() -> None:
    assert with_host("0.0.0.0:5060", "2001:db8::10") == "[2001:db8::10]:5060"
    assert with_host("0.0.0.0", "2001:db8::10") == "2001:db8::10"
    assert with_host("[::]", "2001:db8::10") == "[2001:db8::10]"
    assert split_host("[2001:db8::1]:5060") == ("2001:db8::1", ":5060", True)


# --------------------------------------------------------------------------- rewriting one file


def test_only_bindaddr_in_general_changes_and_comment_and_spacing_stay() -> None:
    text = (
        "[general]\n"
        "tcpbindaddr=0.0.0.0\n"
        "bindaddr  =  0.0.0.0   ; all interfaces\n"
        "[peer]\n"
        "bindaddr=0.0.0.0\n"
    )
    assert rewrite(text) == text.replace("bindaddr  =  0.0.0.0   ;", f"bindaddr  =  {VIP}   ;")


def test_key_names_and_section_names_are_case_insensitive() -> None:
    assert rewrite("[General]\nBindAddr=0.0.0.0\n") == f"[General]\nBindAddr={VIP}\n"


def test_a_missing_key_is_added_right_after_the_header_with_its_line_ending() -> None:
    assert rewrite("[general]\r\nport=1720\r\n") == (
        f"[general]\r\nbindaddr={VIP} ; {MARKER}\r\nport=1720\r\n"
    )
    assert rewrite("; x\n[general]") == f"; x\n[general]\nbindaddr={VIP} ; {MARKER}"


def test_every_bindaddr_line_of_iax_general_is_rewritten_with_its_own_port() -> None:
    text = "[general]\nbindaddr=10.0.0.1\nbindaddr=10.0.0.2:4570\n"
    assert rewrite(text, "/c/iax.conf") == f"[general]\nbindaddr={VIP}\nbindaddr={VIP}:4570\n"


def test_an_empty_value_gets_the_address() -> None:
    assert rewrite("[general]\nbindaddr = \n") == f"[general]\nbindaddr = {VIP}\n"


def test_a_value_split_by_a_block_comment_is_refused_not_mangled() -> None:
    with pytest.raises(SyntaxProblem, match="split by a comment"):
        rewrite("[general]\nbindaddr=10.0.;-- x --;0.1\n")


def test_only_the_first_general_section_is_the_global_one_plus_its_additions() -> None:
    text = (
        "[general]\nbindaddr=1.1.1.1\n"
        "[general]\nbindaddr=2.2.2.2\n"  # a second category of the same name: ignored
        "[general](+)\nbindaddr=3.3.3.3\n"  # (+) adds to the first one
    )
    out = rewrite(text)
    assert out == (
        f"[general]\nbindaddr={VIP}\n[general]\nbindaddr=2.2.2.2\n[general](+)\nbindaddr={VIP}\n"
    )


def test_a_general_template_is_not_the_general_section() -> None:
    tree = tree_of({"/c/sip.conf": "[general](!)\nbindaddr=1.1.1.1\n"})
    assert find_targets(tree, GENERAL_BINDADDR) == []


# --------------------------------------------------------------------------- pjsip


def test_pjsip_bind_is_rewritten_in_transports_and_in_the_template_they_inherit() -> None:
    text = (
        "[tpl](!)\ntype=transport\nbind=0.0.0.0:5060\n"
        "[udp](tpl)\nprotocol=udp\n"
        "[ep]\ntype=endpoint\nbind=0.0.0.0\n"
    )
    out = rewrite(text, "/c/pjsip.conf")
    assert out == text.replace("bind=0.0.0.0:5060", f"bind={VIP}:5060")


def test_a_pjsip_transport_without_bind_gets_one() -> None:
    out = rewrite("[tcp]\ntype=transport\nprotocol=tcp\n", "/c/pjsip.conf")
    assert out == f"[tcp]\nbind={VIP} ; {MARKER}\ntype=transport\nprotocol=tcp\n"


def test_a_transport_template_alone_is_no_target() -> None:
    tree = tree_of({"/c/pjsip.conf": "[tpl](!)\ntype=transport\nbind=0.0.0.0\n"}, "/c/pjsip.conf")
    assert find_targets(tree, PJSIP_TRANSPORT_BIND) == []


def test_rule_is_chosen_by_file_name() -> None:
    assert rule_for("/etc/asterisk/pjsip.conf") is PJSIP_TRANSPORT_BIND
    assert rule_for("/etc/asterisk/manager.conf") is GENERAL_BINDADDR


# --------------------------------------------------------------------------- includes


def test_an_included_file_continues_the_current_section_and_is_rewritten_in_place() -> None:
    files = {
        "/c/sip.conf": "[general]\n#include sip_general.conf\ncontext=public\n",
        "/c/sip_general.conf": "; from the GUI\nbindaddr=0.0.0.0\n",
    }
    tree = tree_of(files)
    out = rewritten_texts(tree, GENERAL_BINDADDR, VIP)
    assert out == {"/c/sip_general.conf": f"; from the GUI\nbindaddr={VIP}\n"}


def test_a_section_opened_in_an_included_file_stays_open_after_it() -> None:
    files = {
        "/c/sip.conf": '#include "head.conf"\nbindaddr=0.0.0.0\n',
        "/c/head.conf": "[general]\n",
    }
    tree = tree_of(files)
    assert [t.file for t in find_targets(tree, GENERAL_BINDADDR)] == ["/c/sip.conf"]


def test_a_missing_include_is_refused_and_a_missing_tryinclude_is_fine() -> None:
    with pytest.raises(SyntaxProblem, match="no such file"):
        tree_of({"/c/sip.conf": "[general]\n#include gone.conf\n"})
    tree = tree_of({"/c/sip.conf": "[general]\n#tryinclude gone.conf\nbindaddr=1.1.1.1\n"})
    assert len(find_targets(tree, GENERAL_BINDADDR)) == 1


def test_an_include_loop_is_reported() -> None:
    with pytest.raises(SyntaxProblem, match="include loop"):
        tree_of({"/c/sip.conf": "#include a.conf\n", "/c/a.conf": "#include sip.conf\n"})


def test_inheriting_from_an_undefined_section_is_refused_like_asterisk_does() -> None:
    with pytest.raises(SyntaxProblem, match="not defined before it"):
        tree_of({"/c/sip.conf": "[peer](nosuch)\n"})


def test_a_setting_before_any_section_is_refused() -> None:
    with pytest.raises(SyntaxProblem, match="before any"):
        tree_of({"/c/sip.conf": "bindaddr=1.1.1.1\n"})


def test_exec_lines_are_noted_not_run() -> None:
    tree = tree_of({"/c/sip.conf": "[general]\n#exec /usr/local/bin/make-bind\n"})
    assert tree.execs == (("/c/sip.conf", 2),)


def test_all_carry_needs_every_occurrence_and_no_missing_key() -> None:
    assert all_carry(
        tree_of({"/c/sip.conf": f"[general]\nbindaddr={VIP}\n"}), GENERAL_BINDADDR, VIP
    )
    assert not all_carry(tree_of({"/c/sip.conf": "[general]\n"}), GENERAL_BINDADDR, VIP)
    both = f"[general]\nbindaddr={VIP}\nbindaddr=10.0.0.1\n"
    assert not all_carry(tree_of({"/c/sip.conf": both}), GENERAL_BINDADDR, VIP)
