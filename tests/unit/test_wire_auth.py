"""Signatures as Heartbeat computes and prints them (docs/heartbeat.md#digests)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulse.config.model import AuthKey, AuthKeys, AuthMethod
from pulse.errors import WireError
from pulse.wire import Signer, crc32_posix


def make_signer(outbound: int = 1, *keys: tuple[int, AuthMethod, bytes | None]) -> Signer:
    return Signer(
        AuthKeys(
            outbound=outbound,
            keys=tuple(AuthKey(index=i, method=m, key=k) for i, m, k in keys),
        )
    )


def crc_bitwise(data: bytes) -> int:
    """The textbook MSB-first CRC-32 register machine, one bit at a time."""
    reg = 0
    for byte in data:
        reg ^= byte << 24
        for _ in range(8):
            reg = ((reg << 1) ^ 0x04C11DB7) if reg & 0x80000000 else (reg << 1)
            reg &= 0xFFFFFFFF
    return reg ^ 0xFFFFFFFF


def test_crc_check_value_of_123456789_is_765e7680() -> None:
    assert crc32_posix(b"123456789") == 0x765E7680


def test_crc_of_nothing_is_the_complement_of_zero() -> None:
    assert crc32_posix(b"") == 0xFFFFFFFF


@given(st.binary(max_size=300))
def test_crc_matches_the_bitwise_definition(data: bytes) -> None:
    assert crc32_posix(data) == crc_bitwise(data)


def test_crc_digest_is_printed_without_zero_padding() -> None:
    signer = make_signer(1, (1, AuthMethod.CRC, None))
    # Find an input whose CRC has a leading zero nibble, as %lx prints it.
    data = next(d for d in (b"x%d" % i for i in range(10_000)) if crc32_posix(d) < 0x10000000)
    digest = signer.digest(1, data)
    assert digest == format(crc32_posix(data), "x")
    assert len(digest) < 8


def test_sha1_digest_is_hmac_sha1_of_the_spec_example() -> None:
    signer = make_signer(1, (1, AuthMethod.SHA1, b"testsecret"))
    rendering = (
        b"t=status\nst=init\ndt=2ee0\nprotocol=1\nsrc=vm\n"
        b"(1)srcuuid=QwGyVLCwTkqsVkq7hOxxQg==\nseq=1\nhg=6b021a20\nts=6b021a1f\n"
        b"ld=0.38 0.42 0.20 4/116 16908\nttl=3\n"
    )
    assert signer.digest(1, rendering) == "64027a152a006212841fd48837227ec869e972b7"


@pytest.mark.parametrize(
    ("method", "hashname", "length"),
    [(AuthMethod.MD5, "md5", 32), (AuthMethod.SHA1, "sha1", 40), (AuthMethod.SHA256, "sha256", 64)],
)
def test_keyed_methods_are_standard_hmacs_in_lowercase_hex(
    method: AuthMethod, hashname: str, length: int
) -> None:
    key = b"k" * 100  # longer than a block: hashed first, as RFC 2104 says
    signer = make_signer(2, (2, method, key))
    digest = signer.digest(2, b"payload")
    assert digest == hmac.new(key, b"payload", getattr(hashlib, hashname)).hexdigest()
    assert len(digest) == length
    assert digest == digest.lower()


def test_sign_uses_the_outbound_index_and_key() -> None:
    signer = make_signer(
        3, (1, AuthMethod.SHA1, b"old"), (3, AuthMethod.MD5, b"new"), (5, AuthMethod.CRC, None)
    )
    assert signer.outbound_index == 3
    assert signer.sign(b"data") == (3, hmac.new(b"new", b"data", "md5").hexdigest())


def test_digest_uses_the_named_index_not_the_outbound_one() -> None:
    signer = make_signer(3, (1, AuthMethod.SHA1, b"old"), (3, AuthMethod.MD5, b"new"))
    assert signer.digest(1, b"data") == hmac.new(b"old", b"data", "sha1").hexdigest()


def test_trailer_digest_takes_the_method_of_the_index_but_the_outbound_key() -> None:
    signer = make_signer(1, (1, AuthMethod.SHA1, b"testsecret"), (3, AuthMethod.MD5, b"other"))
    assert signer.trailer_digest(3, b"x") == hmac.new(b"testsecret", b"x", "md5").hexdigest()
    assert signer.trailer_digest(3, b"x") != signer.digest(3, b"x")


def test_unknown_index_is_an_invalid_authentication_type() -> None:
    signer = make_signer(1, (1, AuthMethod.SHA1, b"s"))
    with pytest.raises(WireError) as err:
        signer.digest(7, b"x")
    assert err.value.reason == "bad-auth-index"
    assert "Invalid authentication type [7]" in err.value.detail
    with pytest.raises(WireError):
        signer.trailer_digest(7, b"x")
    assert signer.knows(1)
    assert not signer.knows(7)


def test_keyed_method_without_a_key_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a key"):
        make_signer(1, (1, AuthMethod.SHA1, None))


def test_outbound_index_without_a_key_line_is_refused() -> None:
    with pytest.raises(ValueError, match="outbound index 2"):
        make_signer(2, (1, AuthMethod.SHA1, b"s"))
