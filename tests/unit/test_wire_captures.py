"""Every packet Heartbeat 3.0.6 sent in the captures decodes, verifies and re-encodes."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from pulse.config.model import AuthKey, AuthKeys, AuthMethod
from pulse.errors import WireError
from pulse.wire import (
    Encoding,
    FieldType,
    Signer,
    decode,
    encode,
    render_for_signing,
)
from pulse_lab.pcap import read_udp

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"

KEYS = {
    "sha1": AuthKey(index=1, method=AuthMethod.SHA1, key=b"pulse-bench-sha1-secret"),
    "md5": AuthKey(index=1, method=AuthMethod.MD5, key=b"pulse-bench-md5-secret"),
    "crc": AuthKey(index=1, method=AuthMethod.CRC, key=None),
}

# Per capture: message types and how often each occurs (README of the captures).
EXPECTED_TYPES = {
    "sha1": {
        "status": 48,
        "resource": 12,
        "NS_ackmsg": 11,
        "ask_resources": 4,
        "reqnodes": 2,
        "repnodes": 2,
        "starting": 2,
        "ip-request-resp": 1,
    },
    "md5": {
        "status": 42,
        "NS_ackmsg": 12,
        "resource": 7,
        "reqnodes": 2,
        "repnodes": 2,
        "starting": 2,
        "ip-request-resp": 1,
    },
    "crc": {
        "status": 42,
        "NS_ackmsg": 10,
        "resource": 7,
        "reqnodes": 2,
        "repnodes": 2,
        "starting": 2,
        "ip-request-resp": 1,
    },
}

INNER_AUTH = re.compile(rb"\d+:\(0\)auth=(\d+) ([0-9a-f]+),%%%\n")
TRAILER = re.compile(rb"%%%\n\d+:(\d+) ([0-9a-f]+),\Z")


def signer_for(method: str) -> Signer:
    return Signer(AuthKeys(outbound=1, keys=(KEYS[method],)))


def packets(method: str) -> list[bytes]:
    return [d.payload for d in read_udp(CAPTURES / f"hb-{method}.pcap")]


@pytest.fixture(params=sorted(KEYS))
def method(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_every_captured_packet_decodes_as_a_signed_netstring_message(method: str) -> None:
    signer = signer_for(method)
    types: Counter[str] = Counter()
    for data in packets(method):
        decoded = decode(data, signer)
        assert decoded.encoding is Encoding.NETSTRING
        assert decoded.auth_index == 1
        assert "auth" not in decoded.message
        types[decoded.message.type or ""] += 1
    assert dict(types) == EXPECTED_TYPES[method]


def test_trailer_of_every_captured_packet_matches_our_digest_byte_for_byte(method: str) -> None:
    signer = signer_for(method)
    for data in packets(method):
        match = TRAILER.search(data)
        assert match is not None
        signed = data[: match.start() + len(b"%%%\n")]
        assert int(match[1]) == 1
        assert signer.digest(1, signed) == match[2].decode()


def test_inner_classic_auth_of_every_captured_packet_matches_the_rerendered_message(
    method: str,
) -> None:
    signer = signer_for(method)
    for data in packets(method):
        match = INNER_AUTH.search(data)
        assert match is not None
        rendering = render_for_signing(decode(data, signer).message)
        assert signer.digest(int(match[1]), rendering) == match[2].decode()


def test_reencoding_every_captured_packet_reproduces_heartbeats_bytes(method: str) -> None:
    signer = signer_for(method)
    for data in packets(method):
        message = decode(data, signer).message
        assert encode(message, signer, Encoding.NETSTRING, inner_auth=True) == data


def test_captured_messages_survive_a_classic_round_trip(method: str) -> None:
    signer = signer_for(method)
    for data in packets(method):
        message = decode(data, signer).message
        classic = encode(message, signer, Encoding.CLASSIC)
        assert classic.startswith(b">>>\n")
        assert classic.endswith(b"<<<\n")
        again = decode(classic, signer)
        assert again.encoding is Encoding.CLASSIC
        assert again.message == message


def test_captured_uuids_are_sixteen_raw_bytes(method: str) -> None:
    signer = signer_for(method)
    for data in packets(method):
        message = decode(data, signer).message
        for name in ("srcuuid", "destuuid"):
            field = message.field(name)
            if field is not None:
                assert field.type is FieldType.BINARY
                assert len(field.value) == 16


def test_captured_repnodes_carries_the_node_list_with_trailing_spaces() -> None:
    signer = signer_for("sha1")
    repnodes = [
        m for m in (decode(p, signer).message for p in packets("sha1")) if m.type == "repnodes"
    ]
    assert repnodes
    for m in repnodes:
        assert m.get("nodelist") == "n1 n2 "
        assert m.get("delnodelist") == " "


def test_a_packet_captured_with_one_key_fails_with_another() -> None:
    data = packets("sha1")[0]
    wrong = Signer(
        AuthKeys(
            outbound=1,
            keys=(AuthKey(index=1, method=AuthMethod.SHA1, key=b"pulse-bench-md5-secret"),),
        )
    )
    with pytest.raises(WireError) as err:
        decode(data, wrong)
    assert err.value.reason == "bad-signature"
