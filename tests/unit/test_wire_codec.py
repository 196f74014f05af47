"""Encoding, decoding and authentication of single packets (docs/heartbeat.md#encodings)."""

from __future__ import annotations

import bz2
import re
import zlib

import pytest

from pulse.config.model import AuthKey, AuthKeys, AuthMethod
from pulse.errors import WireError
from pulse.wire import (
    MAX_MESSAGE,
    Encoding,
    Field,
    FieldType,
    Message,
    Signer,
    codec,
    decode,
    encode,
    render_for_signing,
)

UUID = bytes(range(16))

SPEC_RENDERING = (
    b"t=status\nst=init\ndt=2ee0\nprotocol=1\nsrc=vm\n"
    b"(1)srcuuid=QwGyVLCwTkqsVkq7hOxxQg==\nseq=1\nhg=6b021a20\nts=6b021a1f\n"
    b"ld=0.38 0.42 0.20 4/116 16908\nttl=3\n"
)

SPEC_NETSTRING = (
    b"###\n11:(0)t=status,10:(0)st=init,10:(0)dt=2ee0,13:(0)protocol=1,9:(0)src=vm,"
    b"27:(1)srcuuid=C\x01\xb2T\xb0\xb0NJ\xacVJ\xbb\x84\xecqB,8:(0)seq=1,14:(0)hg=6b021a20,"
    b"14:(0)ts=6b021a1f,32:(0)ld=0.38 0.42 0.20 4/116 16908,8:(0)ttl=3,"
    b"50:(0)auth=1 64027a152a006212841fd48837227ec869e972b7,%%%\n"
    b"42:1 78a5aeba8c5ff002b3958f848f4826debac8ea77,"
)

SPEC_CLASSIC = (
    b">>>\nt=status\nst=up\ndt=2710\nprotocol=1\nsrc=peer1\n"
    b"(1)srcuuid=AAECAwQFBgcICQoLDA0ODw==\nseq=1\nhg=3e8\nts=6b021ab0\n"
    b"ld=0.00 0.00 0.00 1/1 1\nttl=3\nauth=1 e2b52ed02fd7f013e597b342f5997ec1178ed6bf\n<<<\n\0"
)


def signer_of(outbound: int, *keys: tuple[int, AuthMethod, bytes | None]) -> Signer:
    return Signer(
        AuthKeys(
            outbound=outbound,
            keys=tuple(AuthKey(index=i, method=m, key=k) for i, m, k in keys),
        )
    )


TEST_SIGNER = signer_of(1, (1, AuthMethod.SHA1, b"testsecret"))


def status(src: str = "peer1") -> Message:
    return (
        Message.of(("t", "status"), ("st", "up"), ("dt", "2710"), ("protocol", "1"), ("src", src))
        .with_field("srcuuid", UUID, FieldType.BINARY)
        .with_field("seq", "1")
        .with_field("hg", "3e8")
        .with_field("ts", "6b021ab0")
        .with_field("ld", "0.00 0.00 0.00 1/1 1")
        .with_field("ttl", "3")
    )


def reason_of(data: bytes, signer: Signer = TEST_SIGNER) -> str:
    with pytest.raises(WireError) as err:
        decode(data, signer)
    return err.value.reason


# --------------------------------------------------------------------------- spec examples


def test_classic_rendering_for_signing_matches_the_spec_example() -> None:
    message = decode(SPEC_NETSTRING, TEST_SIGNER).message
    assert render_for_signing(message) == SPEC_RENDERING
    assert TEST_SIGNER.digest(1, SPEC_RENDERING) == "64027a152a006212841fd48837227ec869e972b7"


def test_spec_netstring_example_decodes_and_reencodes_identically() -> None:
    decoded = decode(SPEC_NETSTRING, TEST_SIGNER)
    assert decoded.encoding is Encoding.NETSTRING
    assert decoded.auth_index == 1
    assert decoded.message.get("src") == "vm"
    assert encode(decoded.message, TEST_SIGNER, Encoding.NETSTRING) == SPEC_NETSTRING


def test_spec_classic_example_that_heartbeat_accepted_decodes() -> None:
    decoded = decode(SPEC_CLASSIC, TEST_SIGNER)
    assert decoded.encoding is Encoding.CLASSIC
    assert decoded.message == status()


def test_classic_encoding_of_the_spec_message_is_byte_identical_with_nul() -> None:
    assert encode(status(), TEST_SIGNER, Encoding.CLASSIC, nul=True) == SPEC_CLASSIC
    assert encode(status(), TEST_SIGNER) == SPEC_CLASSIC[:-1]


def test_trailing_nul_after_classic_end_is_optional() -> None:
    assert decode(SPEC_CLASSIC[:-1], TEST_SIGNER).message == status()


# --------------------------------------------------------------------------- encoding rules


def test_newline_in_a_classic_string_travels_as_byte_0x13_and_comes_back() -> None:
    message = Message.of(("t", "x"), ("info", "two\nlines"))
    data = encode(message, TEST_SIGNER)
    assert b"info=two\x13lines\n" in data
    assert decode(data, TEST_SIGNER).message == message


def test_netstring_values_are_raw_bytes_with_type_prefix() -> None:
    message = Message.of(("t", "x"), ("info", "a\nb,c")).with_field(
        "blob", b"\0\n,=", FieldType.BINARY
    )
    data = encode(message, TEST_SIGNER, Encoding.NETSTRING, inner_auth=False)
    assert b"13:(0)info=a\nb,c," in data
    assert b"12:(1)blob=\0\n,=," in data
    assert b"auth=" not in data
    assert decode(data, TEST_SIGNER).message == message


def test_empty_string_value_is_accepted_as_empty_string() -> None:
    message = Message.of(("t", "x"), ("empty", ""))
    for encoding in Encoding:
        assert decode(encode(message, TEST_SIGNER, encoding), TEST_SIGNER).message == message


def test_existing_auth_field_is_replaced_in_place() -> None:
    message = Message.of(("t", "x"), ("auth", "9 stale"), ("src", "a"))
    data = encode(message, TEST_SIGNER)
    lines = data.split(b"\n")
    assert lines[2].startswith(b"auth=1 ")
    assert lines[3] == b"src=a"
    assert decode(data, TEST_SIGNER).message == message.without("auth")
    ns = encode(message, TEST_SIGNER, Encoding.NETSTRING)
    assert re.search(rb",\d+:\(0\)auth=1 [0-9a-f]{40},\d+:\(0\)src=a,%%%", ns)


def test_stale_auth_field_is_neither_checked_nor_signed_nor_kept() -> None:
    message = Message.of(("t", "x"), ("auth", "garbage\r\0"), ("src", "a"))
    assert decode(encode(message, TEST_SIGNER), TEST_SIGNER).message == message.without("auth")
    bare = encode(message, TEST_SIGNER, Encoding.NETSTRING, inner_auth=False)
    assert b"auth" not in bare
    assert decode(bare, TEST_SIGNER).message == message.without("auth")


def test_encoding_is_deterministic() -> None:
    for encoding in Encoding:
        assert encode(status(), TEST_SIGNER, encoding) == encode(status(), TEST_SIGNER, encoding)


def test_netstring_is_signed_with_the_outbound_index() -> None:
    signer = signer_of(2, (1, AuthMethod.SHA1, b"a"), (2, AuthMethod.MD5, b"b"))
    data = encode(status(), signer, Encoding.NETSTRING)
    assert re.search(rb"%%%\n\d+:2 [0-9a-f]{32},\Z", data)
    assert b"(0)auth=2 " in data
    assert decode(data, signer).auth_index == 2


@pytest.mark.parametrize("name", ["", "a=b", "a\nb", "a\rb", "a\0b", "(1)x"])
def test_unrepresentable_field_names_are_refused_by_both_encodings(name: str) -> None:
    message = Message((Field(name, b"v"),))
    for encoding in Encoding:
        with pytest.raises(ValueError):
            encode(message, TEST_SIGNER, encoding)


@pytest.mark.parametrize("value", [b"a\rb", b"a\0b", b"a\x13b"])
def test_classic_refuses_string_values_it_cannot_carry(value: bytes) -> None:
    message = Message((Field("info", value),))
    with pytest.raises(ValueError):
        encode(message, TEST_SIGNER, Encoding.CLASSIC)
    data = encode(message, TEST_SIGNER, Encoding.NETSTRING)
    assert decode(data, TEST_SIGNER).message == message


# --------------------------------------------------------------------------- authentication


def test_classic_is_verified_with_the_index_named_in_the_auth_field() -> None:
    old = signer_of(1, (1, AuthMethod.SHA1, b"old"))
    receiver = signer_of(2, (1, AuthMethod.SHA1, b"old"), (2, AuthMethod.MD5, b"new"))
    decoded = decode(encode(status(), old, Encoding.CLASSIC), receiver)
    assert decoded.auth_index == 1
    assert decoded.message == status()


def test_netstring_signed_with_a_non_outbound_index_whose_key_differs_is_rejected() -> None:
    # The spec's [V] experiment: signed "3 md5 othersecret" at a receiver whose authkeys
    # list 3 md5 othersecret but whose outbound is 1 sha1 testsecret.
    sender = signer_of(3, (3, AuthMethod.MD5, b"othersecret"))
    receiver = signer_of(
        1, (1, AuthMethod.SHA1, b"testsecret"), (3, AuthMethod.MD5, b"othersecret")
    )
    assert reason_of(encode(status(), sender, Encoding.NETSTRING), receiver) == "bad-signature"
    # ... while the same content in classic form is accepted.
    assert decode(encode(status(), sender, Encoding.CLASSIC), receiver).auth_index == 3


def test_netstring_with_a_non_outbound_index_verifies_when_the_keys_are_equal() -> None:
    sender = signer_of(3, (3, AuthMethod.MD5, b"samesecret"))
    receiver = signer_of(1, (1, AuthMethod.SHA1, b"samesecret"), (3, AuthMethod.MD5, b"x"))
    assert decode(encode(status(), sender, Encoding.NETSTRING), receiver).auth_index == 3


def test_netstring_signed_with_crc_always_verifies() -> None:
    sender = signer_of(2, (2, AuthMethod.CRC, None))
    receiver = signer_of(1, (1, AuthMethod.SHA1, b"testsecret"), (2, AuthMethod.CRC, None))
    assert decode(encode(status(), sender, Encoding.NETSTRING), receiver).auth_index == 2


def test_inner_auth_field_of_a_netstring_packet_is_not_checked() -> None:
    data = encode(status(), TEST_SIGNER, Encoding.NETSTRING)
    forged = re.sub(rb"auth=1 [0-9a-f]{40}", b"auth=1 " + b"0" * 40, data)
    body, _, _ = forged.partition(b"%%%\n")
    index, digest = TEST_SIGNER.sign(body + b"%%%\n")
    trailer = b"%d %s" % (index, digest.encode())
    forged = body + b"%%%\n" + b"%d:%s," % (len(trailer), trailer)
    assert decode(forged, TEST_SIGNER).message == status()


def test_wrong_key_is_a_bad_signature() -> None:
    other = signer_of(1, (1, AuthMethod.SHA1, b"not-the-secret"))
    for encoding in Encoding:
        assert reason_of(encode(status(), other, encoding)) == "bad-signature"


def test_flipped_byte_in_the_body_is_a_bad_signature() -> None:
    for encoding in Encoding:
        data = bytearray(encode(status(), TEST_SIGNER, encoding))
        at = data.index(b"peer1")
        data[at] ^= 0x01  # "peer1" -> "qeer1"
        assert reason_of(bytes(data)) == "bad-signature"


def test_flipped_byte_in_the_signature_is_a_bad_signature() -> None:
    classic = encode(status(), TEST_SIGNER)
    at = classic.index(b"auth=1 ") + 10
    flipped = classic[:at] + (b"0" if classic[at : at + 1] != b"0" else b"1") + classic[at + 1 :]
    assert reason_of(flipped) == "bad-signature"
    netstring = encode(status(), TEST_SIGNER, Encoding.NETSTRING)
    at = len(netstring) - 2
    last = netstring[at : at + 1]
    flipped = netstring[:at] + (b"0" if last != b"0" else b"1") + netstring[at + 1 :]
    assert reason_of(flipped) == "bad-signature"


def test_uppercase_hex_digest_is_a_bad_signature_as_with_strcmp() -> None:
    data = encode(status(), TEST_SIGNER)
    digest = re.search(rb"auth=1 ([0-9a-f]+)\n", data)
    assert digest is not None
    assert reason_of(data.replace(digest[1], digest[1].upper())) == "bad-signature"


def test_unknown_index_is_rejected_as_bad_auth_index() -> None:
    stranger = signer_of(7, (7, AuthMethod.SHA1, b"testsecret"))
    for encoding in Encoding:
        assert reason_of(encode(status(), stranger, encoding)) == "bad-auth-index"


def test_classic_without_auth_field_is_unsigned() -> None:
    assert reason_of(b">>>\nt=status\nsrc=a\n<<<\n") == "unsigned"


def test_netstring_without_trailer_is_unsigned() -> None:
    data = encode(status(), TEST_SIGNER, Encoding.NETSTRING)
    assert reason_of(data[: data.index(b"%%%\n") + 4]) == "unsigned"


@pytest.mark.parametrize("auth", [b"1", b"1 ", b"x abc", b"-1 abc", b" 1 abc", b"1234567890 ab"])
def test_garbled_auth_string_is_malformed(auth: bytes) -> None:
    assert reason_of(b">>>\nt=x\nauth=" + auth + b"\n<<<\n") == "malformed"
    assert reason_of(b"###\n7:(0)t=xy,%%%\n" + b"%d:%s," % (len(auth), auth)) == "malformed"


# --------------------------------------------------------------------------- framing


def test_garbage_is_malformed() -> None:
    for data in (b"", b"hello", b"<<<\n", b"\0\0\0\0", b">>>", b"###", b"\xff" * 100):
        assert reason_of(data) == "malformed"


def test_classic_without_end_line_is_malformed() -> None:
    data = encode(status(), TEST_SIGNER)
    assert reason_of(data[: -len(b"<<<\n")]) == "malformed"
    assert reason_of(data[:-1]) == "malformed"  # "<<<" without its newline


def test_end_marker_only_counts_at_the_start_of_a_line() -> None:
    assert reason_of(b">>>\nt=x<<<\n") == "malformed"


def test_classic_line_without_equals_is_malformed() -> None:
    assert reason_of(b">>>\nt=status\nnoequals\nauth=1 00\n<<<\n") == "malformed"


def test_classic_empty_name_is_malformed() -> None:
    assert reason_of(b">>>\n=value\nauth=1 00\n<<<\n") == "malformed"
    assert reason_of(b">>>\n(1)=AAAA\nauth=1 00\n<<<\n") == "malformed"


def test_classic_bad_base64_is_malformed() -> None:
    assert reason_of(b">>>\n(1)u=not base64!\nauth=1 00\n<<<\n") == "malformed"
    assert reason_of(b">>>\n(1)u=AAA\nauth=1 00\n<<<\n") == "malformed"


def test_classic_unknown_type_prefix_is_malformed() -> None:
    assert reason_of(b">>>\n(9)u=x\nauth=1 00\n<<<\n") == "malformed"
    assert reason_of(b">>>\n(x)u=x\nauth=1 00\n<<<\n") == "malformed"


def test_classic_junk_after_the_end_line_is_malformed() -> None:
    assert reason_of(encode(status(), TEST_SIGNER) + b"junk") == "malformed"


def test_classic_tolerates_crlf_and_blank_lines_like_heartbeat() -> None:
    data = encode(status(), TEST_SIGNER)
    loose = data.replace(b"\nst=up\n", b"\r\n\r\nst=up\r\n")
    assert decode(loose, TEST_SIGNER).message == status()


def test_netstring_length_that_overruns_is_malformed() -> None:
    data = encode(status(), TEST_SIGNER, Encoding.NETSTRING)
    assert reason_of(data.replace(b"11:(0)t=status,", b"12:(0)t=status,")) == "malformed"
    assert reason_of(data.replace(b"11:(0)t=status,", b"10:(0)t=status,")) == "malformed"
    assert reason_of(data.replace(b"11:(0)t=status,", b"99999999:(0)t=status,")) == "malformed"


@pytest.mark.parametrize(
    "field",
    [b"x:(0)t=a,", b":(0)t=a,", b"-5:(0)t=a,", b"4:(0)=,", b"5:(0)=ab,", b"3:(0),", b"5:t=abc,"],
)
def test_netstring_bad_fields_are_malformed(field: bytes) -> None:
    assert reason_of(b"###\n" + field + b"%%%\n5:1 abc,") == "malformed"


def test_netstring_without_end_line_is_malformed() -> None:
    assert reason_of(b"###\n7:(0)t=xy,") == "malformed"


def test_netstring_unknown_type_is_malformed() -> None:
    assert reason_of(b"###\n7:(8)t=xy,%%%\n5:1 abc,") == "malformed"


def test_netstring_junk_after_the_trailer_is_malformed() -> None:
    data = encode(status(), TEST_SIGNER, Encoding.NETSTRING)
    assert reason_of(data + b"x") == "malformed"


def test_every_truncation_of_a_real_packet_is_a_wire_error() -> None:
    for data in (SPEC_NETSTRING, SPEC_CLASSIC):
        for end in range(len(data)):
            prefix = data[:end]
            if prefix == SPEC_CLASSIC[:-1]:
                continue  # dropping only the optional NUL leaves a valid packet
            with pytest.raises(WireError):
                decode(prefix, TEST_SIGNER)


def test_packet_above_256_kib_is_too_big() -> None:
    message = Message.of(("t", "x"), ("pad", "p" * MAX_MESSAGE))
    data = encode(message, TEST_SIGNER, Encoding.NETSTRING)
    assert reason_of(data) == "too-big"


def test_packet_just_below_the_limit_is_accepted() -> None:
    message = Message.of(("t", "x"), ("pad", "p" * (MAX_MESSAGE - 200)))
    data = encode(message, TEST_SIGNER, Encoding.NETSTRING)
    assert len(data) <= MAX_MESSAGE
    assert decode(data, TEST_SIGNER).message == message


def test_opaque_field_types_are_carried_through_unchanged() -> None:
    message = Message.of(("t", "x")).with_field("nested", b"###\n4:(0)a=,%%%\n", FieldType.STRUCT)
    data = encode(message, TEST_SIGNER, Encoding.NETSTRING)
    assert decode(data, TEST_SIGNER).message == message


# --------------------------------------------------------------------------- compression


def compressed(original: bytes, algorithm: str, compress: bytes | None = None) -> bytes:
    payload = (
        compress
        if compress is not None
        else (zlib.compress(original) if algorithm == "zlib" else bz2.compress(original))
    )
    outer = Message.of(("_compression_algorithm", algorithm)).with_field(
        "_compressed_payload", payload, FieldType.BINARY
    )
    outer = Message((outer.fields[1], outer.fields[0]))
    return encode(outer, TEST_SIGNER, Encoding.NETSTRING, inner_auth=False)


@pytest.mark.parametrize("algorithm", ["zlib", "bz2"])
def test_traditionally_compressed_message_is_expanded(algorithm: str) -> None:
    inner = encode(status(), TEST_SIGNER, Encoding.NETSTRING, inner_auth=False)
    body = inner[: inner.index(b"%%%\n") + 4]  # Heartbeat compresses the unsigned form
    decoded = decode(compressed(body, algorithm), TEST_SIGNER)
    assert decoded.message == status()
    assert decoded.encoding is Encoding.NETSTRING


def test_compressed_classic_payload_is_expanded() -> None:
    inner = encode(status(), TEST_SIGNER, Encoding.CLASSIC, nul=True)
    assert decode(compressed(inner, "zlib"), TEST_SIGNER).message == status()


def test_unknown_compression_algorithm_is_unsupported() -> None:
    assert reason_of(compressed(b"", "lzo", b"\0")) == "compressed-unsupported"


def test_corrupt_compressed_payload_is_malformed() -> None:
    assert reason_of(compressed(b"", "zlib", b"not zlib at all")) == "malformed"
    good = zlib.compress(b"###\n7:(0)t=xy,%%%\n")
    assert reason_of(compressed(b"", "zlib", good[:-3])) == "malformed"


def test_compression_bomb_is_too_big() -> None:
    bomb = zlib.compress(b"###\n" + b"0" * (3 * 1024 * 1024), 9)
    assert reason_of(compressed(b"", "zlib", bomb)) == "too-big"


def test_compressed_payload_must_be_authenticated_by_the_trailer() -> None:
    inner = encode(status(), TEST_SIGNER, Encoding.NETSTRING, inner_auth=False)
    data = compressed(inner, "zlib")
    assert reason_of(data, signer_of(1, (1, AuthMethod.SHA1, b"other"))) == "bad-signature"


# ----------------------------------------------------------------- ack_for_another


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b">>>\nt=NS_ackmsg\ndest=n4\nackseq=2a3\nsrc=n2\n<<<\n", True),
        (b">>>\nt=NS_ackmsg\ndest=n1\nackseq=2a3\nsrc=n2\n<<<\n", False),
        (b">>>\nt=NS_ackmsg\ndest=N1\nackseq=2a3\nsrc=n2\n<<<\n", False),  # any case
        (b"###\n14:(0)t=NS_ackmsg,10:(0)dest=n4,%%%\n", True),
        (b"###\n14:(0)t=NS_ackmsg,10:(0)dest=n1,%%%\n", False),
        (b">>>\nt=status\ndest=n4\n<<<\n", False),  # not an ACK: the whole way
        (b">>>\nt=NS_ackmsg\nsrc=n2\ndest=n4\n<<<\n", False),  # another order
        (b">>>\nt=NS_ackmsg\ndest=", False),  # truncated: decode counts it
        (b">>>\nt=NS_ackmsg\ndest=\n<<<\n", False),  # empty dest
    ],
)
def test_an_ack_addressed_to_another_node_is_recognised_without_a_parse(
    data: bytes, expected: bool
) -> None:
    assert codec.ack_for_another(data, b"n1") is expected


def test_an_ack_for_another_node_is_one_the_engine_would_drop_as_not_for_us() -> None:
    signer = Signer(AuthKeys(outbound=1, keys=(AuthKey(index=1, method=AuthMethod.CRC, key=None),)))
    message = Message.of(
        ("t", "NS_ackmsg"), ("dest", "n4"), ("ackseq", "2a3"), ("src", "n2"), ("ts", "1")
    )
    for encoding in (Encoding.CLASSIC, Encoding.NETSTRING):
        data = encode(message, signer, encoding)
        assert codec.ack_for_another(data, b"n1")
        assert not codec.ack_for_another(data, b"n4")
        assert decode(data, signer).message.get("dest") == "n4"


@pytest.mark.parametrize("dest", ["n4", "a-longer-node-name"])
def test_the_netstring_ack_head_the_kernel_filter_matches_is_how_the_encoder_begins_an_ack(
    dest: str,
) -> None:
    signer = Signer(AuthKeys(outbound=1, keys=(AuthKey(index=1, method=AuthMethod.CRC, key=None),)))
    message = Message.of(("t", "NS_ackmsg"), ("dest", dest), ("ackseq", "2a3"), ("src", "n2"))
    data = encode(message, signer, Encoding.NETSTRING)
    assert data.startswith(codec.ack_netstring_head(dest.encode()) + dest.encode() + b",")
