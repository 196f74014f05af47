"""``codec.screen``: the cheap check before decode never refuses a packet decode accepts,
and refuses wrong-key packets without parsing them."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st
from test_wire_fuzz import REAL, SHA1, SIGNERS, messages

from pulse.config.model import AuthKey, AuthKeys, AuthMethod
from pulse.errors import WireError
from pulse.wire import Encoding, Message, Signer, codec, decode, encode
from pulse.wire.codec import screen, screen_verified

WRONG = Signer(
    AuthKeys(outbound=1, keys=(AuthKey(index=1, method=AuthMethod.SHA1, key=b"not-ours"),))
)
OTHER_INDEX = Signer(
    AuthKeys(outbound=7, keys=(AuthKey(index=7, method=AuthMethod.SHA1, key=b"x"),))
)


def decodes(data: bytes, signer: Signer) -> bool:
    try:
        decode(data, signer)
    except WireError:
        return False
    return True


@settings(max_examples=300)
@given(messages, st.sampled_from(list(Encoding)), st.sampled_from(sorted(SIGNERS)))
def test_screen_passes_every_correctly_signed_packet(
    msg: Message, encoding: Encoding, method: AuthMethod
) -> None:
    signer = SIGNERS[method]
    data = encode(msg, signer, encoding)
    assert screen(data, signer) is None
    assert decodes(data, signer)


@settings(max_examples=300)
@given(messages, st.sampled_from(list(Encoding)))
def test_screen_refuses_a_wrong_key_as_bad_signature(msg: Message, encoding: Encoding) -> None:
    data = encode(msg, WRONG, encoding)
    # None (decode decides) only for a classic packet with a value ending in "<<<".
    inner_end = encoding is Encoding.CLASSIC and b"<<<\n" in data[4:-4]
    expected = None if inner_end else "bad-signature"
    assert screen(data, SHA1) == expected
    assert not decodes(data, SHA1)


def test_a_wrong_key_status_as_a_peer_sends_it_is_refused_by_the_screen() -> None:
    for encoding in Encoding:
        assert screen(encode(REAL_MESSAGE, WRONG, encoding), SHA1) == "bad-signature"


def test_screen_refuses_an_unknown_auth_index() -> None:
    data = encode(REAL_MESSAGE, OTHER_INDEX, Encoding.CLASSIC)
    assert screen(data, SHA1) == "bad-auth-index"


@settings(max_examples=1000)
@given(
    st.sampled_from(REAL),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
    st.integers(0, 400),
)
def test_what_screen_refuses_decode_refuses_too(
    packet: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    mutated = _mutate(packet, flips, cut)
    if screen(mutated, SHA1) is not None:
        assert not decodes(mutated, SHA1)


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_screen_of_random_bytes_never_raises(data: bytes) -> None:
    verdict = screen(data, SHA1)
    if verdict is not None:
        assert not decodes(data, SHA1)


def _mutate(packet: bytes, flips: list[tuple[int, int]], cut: int) -> bytes:
    data = bytearray(packet)
    for where, value in flips:
        if data:
            data[where % len(data)] = value
    return bytes(data[: len(data) - cut % 8])


def _outcome(data: bytes, *, verified: bool) -> object:
    try:
        return decode(data, SHA1, verified=verified)
    except WireError as exc:
        return exc.reason


@settings(max_examples=1000)
@given(
    st.sampled_from(REAL),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
    st.integers(0, 400),
)
def test_a_packet_the_screen_verified_decodes_the_same_without_a_second_hmac(
    packet: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    mutated = _mutate(packet, flips, cut)
    reason, verified = screen_verified(mutated, SHA1)
    assert reason == screen(mutated, SHA1)
    if verified:
        assert reason is None
        assert _outcome(mutated, verified=True) == _outcome(mutated, verified=False)
        assert decodes(mutated, SHA1)


@settings(max_examples=300)
@given(messages, st.sampled_from(list(Encoding)))
def test_verified_decoding_of_any_message_we_send_is_the_full_decoding(
    msg: Message, encoding: Encoding
) -> None:
    data = encode(msg, SHA1, encoding)
    reason, verified = screen_verified(data, SHA1)
    assert reason is None
    assert verified == (encoding is Encoding.CLASSIC) or not verified
    assert _outcome(data, verified=verified) == _outcome(data, verified=False)


def test_real_heartbeat_captures_pass_the_screen() -> None:
    for packet in REAL:
        assert screen(packet, SHA1) is None, packet[:60]


REAL_MESSAGE = decode(REAL[0], SHA1).message


def test_the_parsed_line_cache_stays_small_whatever_arrives() -> None:
    for i in range(3000):
        junk = b">>>\r\nt=x\r\nbig=" + b"%d" % i * 5000 + b"\r\nsmall=%d\r\n<<<\n" % i
        with contextlib.suppress(WireError):
            decode(junk, SHA1)
    assert len(codec._LINES) <= codec._LINES_MAX
    assert all(len(line) <= codec._LINE_MAX_CACHED for line in codec._LINES)


def test_a_stream_of_statuses_caches_only_the_lines_that_repeat() -> None:
    codec._LINES.clear()
    codec._RENDERED.clear()
    base = Message.of(("t", "status"), ("st", "active"), ("src", "calc"), ("ttl", "4"))
    for seq in range(1, 2001):
        sent = base.with_field("seq", b"%x" % seq).with_field("ts", b"%x" % (seq // 10))
        assert decode(encode(sent, SHA1), SHA1).message == sent
    assert {line.split(b"=")[0] for line in codec._LINES} == {b"t", b"st", b"src", b"ttl"}
    assert {f.name for f in codec._RENDERED} == {"t", "st", "src", "ttl"}
