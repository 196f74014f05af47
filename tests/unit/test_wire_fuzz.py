"""Property tests: decode only ever raises WireError; encode/decode round-trips."""

from __future__ import annotations

import binascii
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pulse.config.model import AuthKey, AuthKeys, AuthMethod
from pulse.errors import WireError
from pulse.wire import Encoding, Field, FieldType, Message, Signer, codec, decode, encode
from pulse.wire.codec import render_for_signing
from pulse_lab.pcap import read_udp

CAPTURE = Path(__file__).resolve().parents[1] / "data" / "captures" / "hb-sha1.pcap"
SHA1 = Signer(
    AuthKeys(
        outbound=1,
        keys=(AuthKey(index=1, method=AuthMethod.SHA1, key=b"pulse-bench-sha1-secret"),),
    )
)
CRC = Signer(AuthKeys(outbound=1, keys=(AuthKey(index=1, method=AuthMethod.CRC, key=None),)))
REAL = [d.payload for d in read_udp(CAPTURE)]

SIGNERS = {
    method: Signer(
        AuthKeys(
            outbound=4,
            keys=(
                AuthKey(
                    index=4,
                    method=method,
                    key=None if method is AuthMethod.CRC else b"fuzz-" + method.encode(),
                ),
            ),
        )
    )
    for method in AuthMethod
}

# Names: anything printable-ish that both forms can carry (no '=', CR, LF, NUL, no
# leading '('); values: any bytes for binary, and for classic strings anything but
# CR, NUL and 0x13 (LF is escaped).
names = st.text(
    st.characters(exclude_characters="=\r\n\0", codec="utf-8"),
    min_size=1,
    max_size=12,
).filter(lambda n: not n.startswith("("))
string_values = st.one_of(
    st.text(st.characters(exclude_characters="\r\0\x13", codec="utf-8"), max_size=40).map(
        lambda s: s.encode("utf-8")
    ),
    st.binary(max_size=40).map(lambda b: b.translate(None, b"\r\0\x13")),
)
fields = st.one_of(
    st.builds(Field, names, string_values, st.just(FieldType.STRING)),
    st.builds(Field, names, st.binary(max_size=40), st.just(FieldType.BINARY)),
)
messages = st.lists(fields, min_size=1, max_size=12).map(lambda fs: Message(tuple(fs)))


def decode_or_wire_error(data: bytes, signer: Signer) -> None:
    try:
        decode(data, signer)
    except WireError as exc:
        assert exc.reason in {
            "malformed",
            "unsigned",
            "bad-auth-index",
            "bad-signature",
            "too-big",
            "compressed-unsupported",
        }


@settings(max_examples=500)
@given(st.binary(max_size=400))
def test_random_bytes_only_ever_raise_wire_error(data: bytes) -> None:
    decode_or_wire_error(data, SHA1)


@settings(max_examples=500)
@given(
    st.sampled_from([b">>>\n", b"###\n"]),
    st.lists(
        st.sampled_from(
            [
                b"\n",
                b"\r",
                b"=",
                b",",
                b":",
                b"(",
                b")",
                b"1",
                b"%%%\n",
                b"<<<\n",
                b"auth=1 ",
                b"9",
                b"(1)",
                b"(0)t",
                b"x",
                b"\0",
            ]
        ),
        max_size=40,
    ),
)
def test_structured_garbage_only_ever_raises_wire_error(start: bytes, pieces: list[bytes]) -> None:
    decode_or_wire_error(start + b"".join(pieces), CRC)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(REAL),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
)
def test_mutated_real_packets_only_ever_raise_wire_error(
    packet: bytes, edits: list[tuple[int, int]]
) -> None:
    data = bytearray(packet)
    for where, byte in edits:
        data[where % len(data)] = byte
    decode_or_wire_error(bytes(data), SHA1)


@settings(max_examples=300)
@given(st.sampled_from(REAL), st.integers(0, 10_000), st.binary(min_size=1, max_size=8))
def test_real_packets_with_inserted_or_deleted_bytes_only_raise_wire_error(
    packet: bytes, where: int, chunk: bytes
) -> None:
    at = where % len(packet)
    decode_or_wire_error(packet[:at] + chunk + packet[at:], SHA1)
    decode_or_wire_error(packet[:at] + packet[at + len(chunk) :], SHA1)


@settings(max_examples=300)
@given(messages, st.sampled_from(list(AuthMethod)), st.sampled_from(list(Encoding)))
def test_decode_of_encode_is_the_message(
    message: Message, method: AuthMethod, encoding: Encoding
) -> None:
    assume("auth" not in message)
    signer = SIGNERS[method]
    decoded = decode(encode(message, signer, encoding), signer)
    assert decoded.message == message
    assert decoded.encoding is encoding
    assert decoded.auth_index == 4


@settings(max_examples=200)
@given(messages, st.sampled_from(list(AuthMethod)))
def test_netstring_round_trip_without_inner_auth_and_classic_with_nul(
    message: Message, method: AuthMethod
) -> None:
    assume("auth" not in message)
    signer = SIGNERS[method]
    ns = encode(message, signer, Encoding.NETSTRING, inner_auth=False)
    assert decode(ns, signer).message == message
    classic = encode(message, signer, Encoding.CLASSIC, nul=True)
    assert decode(classic, signer).message == message


@settings(max_examples=200)
@given(messages)
def test_netstring_carries_any_string_bytes(message: Message) -> None:
    assume("auth" not in message)
    raw = Message(tuple(Field(f.name, f.value + b"\r\0\x13", f.type) for f in message))
    assert decode(encode(raw, CRC, Encoding.NETSTRING), CRC).message == raw


raw_lines = st.tuples(
    st.sampled_from([b"", b"(0)", b"(1)", b"(2)", b"(4)", b"(5)"]),
    st.sampled_from([b"t", b"src", b"auth", b"seq", b"x\x13y", b"\xff\xfe"]),
    st.one_of(
        st.binary(max_size=30).map(lambda b: b.translate(None, b"\r\n\0")),
        st.binary(max_size=20).map(lambda b: binascii.b2a_base64(b, newline=False)),
        st.sampled_from([b"QQ==", b"QR==", b"QQ", b"A\x13B", b""]),
    ),
    st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\r"]),
)


@settings(max_examples=500)
@given(st.lists(raw_lines, max_size=10))
def test_signed_text_collected_while_parsing_is_what_render_for_signing_gives(
    lines: list[tuple[bytes, bytes, bytes, bytes]],
) -> None:
    # decode() checks a classic signature over the lines as parsed; that must be
    # exactly Heartbeat's rendering of the parsed message, for any input it accepts.
    data = b">>>\n" + b"".join(p + n + b"=" + v + sep for p, n, v, sep in lines) + b"<<<\n"
    signing: list[bytes] = []
    try:
        fields = codec._parse_classic(data, signing)
    except WireError:
        return
    assert b"".join(signing) == render_for_signing(Message(tuple(fields)))


small_fields = st.builds(
    Field, st.sampled_from(["t", "src", "seq", "auth", "ttl"]), st.binary(max_size=3)
)


@settings(max_examples=300)
@given(messages, st.lists(small_fields, max_size=6), st.sampled_from([None, "auth", "src"]))
def test_with_fields_is_chained_with_field_in_one_pass(
    message: Message, new: list[Field], drop: str | None
) -> None:
    chained = message if drop is None else message.without(drop)
    for f in new:
        chained = chained.with_field(f.name, f.value, f.type)
    assert message.with_fields(*new, drop=drop) == chained
