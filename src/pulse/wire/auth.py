"""Heartbeat's message digests: HMAC-SHA1, HMAC-MD5 and CRC-32 (docs/heartbeat.md#digests).

A :class:`Signer` wraps the parsed authkeys. It computes digests exactly as
Heartbeat prints them (lowercase hex; ``crc`` with ``%lx``, i.e. no zero padding) so
that comparing signatures is a plain string comparison, as in Heartbeat.

``sha256`` is pulse's own method (HMAC-SHA256); a Heartbeat peer does not know it.
"""

from __future__ import annotations

import binascii
import hmac
from collections.abc import Callable

from pulse.config.model import AuthKey, AuthKeys, AuthMethod
from pulse.errors import WireError

__all__ = ["Signer", "crc32_posix"]

# Bit-reversal of every byte value: the MSB-first CRC equals the bit-reversed
# LSB-first (zlib) CRC of the bit-reversed input, and zlib's is implemented in C.
_REVERSE_BITS = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def crc32_posix(data: bytes) -> int:
    """Heartbeat's ``crc``: poly 0x04C11DB7, MSB-first, init 0, final complement.

    Unlike ``cksum`` no length is appended. Check value: ``crc32_posix(b"123456789")``
    is ``0x765E7680``.
    """
    # binascii.crc32 complements its start value, so 0xFFFFFFFF means "register 0";
    # its final complement is the one this CRC wants as well.
    reflected = binascii.crc32(data.translate(_REVERSE_BITS), 0xFFFFFFFF)
    return int.from_bytes(reflected.to_bytes(4, "little").translate(_REVERSE_BITS), "big")


def _hmac_digest(digestmod: str) -> Callable[[bytes], Callable[[bytes], str]]:
    """A maker of digest functions for one key.

    The HMAC of the key alone (its inner and outer hash states) is computed once per
    key; each message then costs a copy of those states and the digest of the message:
    3 µs instead of 5 (HMAC-SHA1 of a 300-byte status), and the same with CPython's own
    SHA-1 as with OpenSSL's (``pulse run`` may use either, ``pulse.cli.lean``).
    """

    def for_key(key: bytes) -> Callable[[bytes], str]:
        template = hmac.new(key, digestmod=digestmod)

        def compute(data: bytes) -> str:
            h = template.copy()
            h.update(data)
            return h.hexdigest()

        return compute

    return for_key


def _crc_digest(data: bytes) -> str:
    return format(crc32_posix(data), "x")


def _crc_for_key(key: bytes) -> Callable[[bytes], str]:
    del key  # crc has no key
    return _crc_digest


_COMPUTE: dict[AuthMethod, Callable[[bytes], Callable[[bytes], str]]] = {
    AuthMethod.CRC: _crc_for_key,
    AuthMethod.MD5: _hmac_digest("md5"),
    AuthMethod.SHA1: _hmac_digest("sha1"),
    AuthMethod.SHA256: _hmac_digest("sha256"),
}


class Signer:
    """Signs and verifies with an :class:`~pulse.config.model.AuthKeys`.

    ``digest`` raises ``WireError("bad-auth-index")`` for an index the authkeys do not
    list, which is what Heartbeat logs as ``Invalid authentication type [n]``.
    """

    __slots__ = ("_digests", "_keys", "_outbound", "keys")

    def __init__(self, keys: AuthKeys) -> None:
        table: dict[int, AuthKey] = {}
        for key in keys.keys:
            if key.method not in _COMPUTE:
                raise ValueError(f"authkeys index {key.index}: unknown method {key.method!r}")
            if key.method is not AuthMethod.CRC and not key.key:
                raise ValueError(f"authkeys index {key.index}: method {key.method} needs a key")
            table.setdefault(key.index, key)
        if keys.outbound not in table:
            raise ValueError(f"authkeys: outbound index {keys.outbound} has no key line")
        self.keys = keys
        self._keys = table
        self._outbound = table[keys.outbound]
        # (method, key) -> its digest function, made on first use.
        self._digests: dict[tuple[AuthMethod, bytes], Callable[[bytes], str]] = {}

    @property
    def outbound_index(self) -> int:
        return self._outbound.index

    def knows(self, index: int) -> bool:
        """Whether *index* is listed in the authkeys."""
        return index in self._keys

    def digest(self, index: int, data: bytes) -> str:
        """The digest of *data* with index *index*'s method and key, as Heartbeat prints it."""
        key = self._key(index)
        return self._digest(key.method, key.key or b"")(data)

    def trailer_digest(self, index: int, data: bytes) -> str:
        """The digest Heartbeat expects in a netstring trailer naming *index*.

        Heartbeat's quirk (docs/heartbeat.md#what-is-signed): the trailer's index selects the
        *method*, but the *key* is always the receiver's outbound key.
        """
        method = self._key(index).method
        return self._digest(method, self._outbound.key or b"")(data)

    def sign(self, data: bytes) -> tuple[int, str]:
        """``(index, digest)`` of *data* with the outbound key."""
        key = self._outbound
        return key.index, self._digest(key.method, key.key or b"")(data)

    def _digest(self, method: AuthMethod, key: bytes) -> Callable[[bytes], str]:
        compute = self._digests.get((method, key))
        if compute is None:
            compute = self._digests[(method, key)] = _COMPUTE[method](key)
        return compute

    def _key(self, index: int) -> AuthKey:
        key = self._keys.get(index)
        if key is None:
            raise WireError("bad-auth-index", f"Invalid authentication type [{index}]")
        return key
