"""Heartbeat's two wire encodings and their signatures (docs/heartbeat.md#encodings).

Classic form::

    >>>\\n
    name=value\\n              string field; LF inside the value travels as byte 0x13
    (1)name=<base64>\\n        binary field
    auth=<idx> <digest>\\n     HMAC/CRC over the classic rendering of every other field
    <<<\\n                     (+ an optional NUL)

Netstring form::

    ###\\n
    <len>:(<type>)name=value,  one netstring per field, values raw
    %%%\\n
    <len>:<idx> <digest>,      trailer: digest over "###\\n" ... "%%%\\n"

:func:`encode` is deterministic: the same :class:`Message` always gives the same
bytes, so a retransmission can re-encode the stored message. :func:`decode` raises
:class:`~pulse.errors.WireError` for every input it refuses, and nothing else; its
``reason`` is a short stable key meant for drop counters.
"""

from __future__ import annotations

import binascii
import enum
import hmac
import zlib
from dataclasses import dataclass

from pulse.errors import WireError
from pulse.wire.auth import Signer
from pulse.wire.message import Field, FieldType, Message

__all__ = [
    "ACK_CLASSIC_PREFIX",
    "ACK_NETSTRING_PREFIX",
    "MAX_MESSAGE",
    "MAX_UNCOMPRESSED",
    "Decoded",
    "Encoding",
    "ack_for_another",
    "ack_netstring_head",
    "decode",
    "encode",
    "render_for_signing",
    "screen",
    "screen_verified",
]

MAX_MESSAGE = 256 * 1024
"""Heartbeat's ``MAXMSG``: a packet this long or longer is refused ("msg too big")."""

MAX_UNCOMPRESSED = 2 * 1024 * 1024
"""Heartbeat's ``MAXUNCOMPRESSED``: the largest message a compressed payload may expand to."""

AUTH_FIELD = "auth"
COMPRESSED_PAYLOAD = "_compressed_payload"
COMPRESSION_ALGORITHM = "_compression_algorithm"

_CLASSIC_START = b">>>\n"
_CLASSIC_END = b"<<<\n"
_NETSTRING_START = b"###\n"
_NETSTRING_END = b"%%%\n"
_LF = 0x0A
_CR = 0x0D
_LF_ESCAPE = b"\x13"  # Heartbeat's SPECIAL_SYMBOL: a newline inside a classic string value
_MAX_LENGTH_DIGITS = 9  # no netstring in a <= 256 KiB packet needs more
_MAX_INDEX_DIGITS = 9
_TYPE_PREFIX = {t: b"(%d)" % t for t in FieldType}
_FORBIDDEN_IN_NAME = (b"=", b"\n", b"\r", b"\0")
_FORBIDDEN_IN_CLASSIC_STRING = (b"\r", b"\0", _LF_ESCAPE)


class Encoding(enum.StrEnum):
    CLASSIC = "classic"
    NETSTRING = "netstring"


@dataclass(frozen=True, slots=True)
class Decoded:
    """A verified packet. ``message`` never contains the classic ``auth`` field."""

    message: Message
    encoding: Encoding
    auth_index: int


# --------------------------------------------------------------------------- encoding


def _name_bytes(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _check_name(raw: bytes) -> None:
    if not raw:
        raise ValueError("a field name must not be empty")
    if raw[:1] == b"(":
        raise ValueError(f"field name {raw!r} starts with '(' (reads as a type prefix)")
    for bad in _FORBIDDEN_IN_NAME:
        if bad in raw:
            raise ValueError(f"field name {raw!r} contains {bad!r}")


_CHECKED_NAMES: dict[str, bytes] = {}  # field names already encoded and found valid
_CHECKED_NAMES_MAX = 256  # a node sends a few dozen names; a flood of new ones is not cached


def _checked_name(name: str) -> bytes:
    raw = _CHECKED_NAMES.get(name)
    if raw is None:
        raw = _name_bytes(name)
        _check_name(raw)
        if len(_CHECKED_NAMES) < _CHECKED_NAMES_MAX:
            _CHECKED_NAMES[name] = raw
    return raw


def _classic_line(f: Field, *, check: bool) -> bytes:
    line = _RENDERED.get(f)
    if line is None:
        line = _render_line(f, check=check)
        if check and len(f.value) <= _LINE_MAX_CACHED and f.name not in _NEW_EVERY_TIME:
            if len(_RENDERED) >= _LINES_MAX:
                _RENDERED.clear()
            _RENDERED[f] = line
    return line


# Fields whose value is new in (almost) every message: the signature, a sequence
# number, the time in seconds, the load average. Neither cache below keeps them: they
# would fill it within two minutes (ten statuses a second per node), every clear costs
# a parse of the lines that do repeat, and the memory they held stays with the process.
_NEW_EVERY_TIME = frozenset({AUTH_FIELD, "seq", "ts", "ld", "ackseq"})
_NEW_EVERY_TIME_LINES = tuple(b"%s=" % name.encode() for name in sorted(_NEW_EVERY_TIME))

# Rendered lines of fields we send, checked: most of a status's fields are the same
# objects message after message (the engine makes its envelope fields once), so one
# rendering serves them all. Bounded like the parsed lines below (_LINES).
_RENDERED: dict[Field, bytes] = {}


def _render_line(f: Field, *, check: bool) -> bytes:
    name = _checked_name(f.name) if check else _name_bytes(f.name)
    if f.type is FieldType.STRING:
        if check:
            for bad in _FORBIDDEN_IN_CLASSIC_STRING:
                if bad in f.value:
                    raise ValueError(
                        f"field {f.name!r}: the classic form cannot carry byte {bad!r}"
                    )
        return b"%s=%s\n" % (name, f.value.replace(b"\n", _LF_ESCAPE))
    if f.type is FieldType.BINARY:
        return b"(1)%s=%s\n" % (name, binascii.b2a_base64(f.value, newline=False))
    # Nested/compressed types are carried opaquely, exactly as they arrived.
    if check and (b"\n" in f.value or b"\r" in f.value or b"\0" in f.value):
        raise ValueError(f"field {f.name!r}: opaque type {f.type} value is not one line")
    return b"%s%s=%s\n" % (_TYPE_PREFIX[f.type], name, f.value)


def render_for_signing(msg: Message) -> bytes:
    """The classic rendering the ``auth`` field's digest covers (docs/heartbeat.md#what-is-signed).

    Every field except ``auth``, in order, ``name=value\\n`` (binary fields
    ``(1)name=<base64>\\n``), without the ``>>>``/``<<<`` lines and without a NUL.
    """
    return b"".join(_classic_line(f, check=False) for f in msg.fields if f.name != AUTH_FIELD)


def _auth_value(index: int, digest: str) -> bytes:
    return b"%d %s" % (index, digest.encode("ascii"))


def _with_auth(lines: list[bytes], auth: bytes | None, names: list[str]) -> list[bytes]:
    """Put *auth* where the first ``auth`` field was (or last); drop other ``auth``s."""
    out: list[bytes] = []
    placed = False
    for line, name in zip(lines, names, strict=True):
        if name == AUTH_FIELD:
            if not placed and auth is not None:
                out.append(auth)
            placed = True
        else:
            out.append(line)
    if not placed and auth is not None:
        out.append(auth)
    return out


def encode(
    msg: Message,
    signer: Signer,
    encoding: Encoding = Encoding.CLASSIC,
    *,
    inner_auth: bool = True,
    nul: bool = False,
) -> bytes:
    """Render *msg* in *encoding*, signed with the outbound key.

    CLASSIC: ``>>>\\n``, the fields, ``auth=<idx> <hex>\\n`` (in place of an ``auth``
    field the message already has, else last), ``<<<\\n``, plus a NUL if *nul* (as
    Heartbeat with glue <= 1.0.9 sends). *inner_auth* does not apply.

    NETSTRING: ``###\\n``, the fields as netstrings, the classic ``auth`` field when
    *inner_auth* (as Heartbeat 3.0.6 with glue >= 1.0.10 sends), ``%%%\\n`` and the
    trailer ``<len>:<idx> <hex>,`` over all of that. *nul* does not apply. Without
    *inner_auth* an ``auth`` field the message carries is left out.

    Raises ``ValueError`` for a message the chosen form cannot carry: an empty field
    name, or one with ``=``, CR, LF or NUL in it or starting with ``(``; in the classic
    form also a string value holding CR, NUL or byte 0x13.
    """
    fields = msg.fields
    names = [f.name for f in fields]
    if encoding is Encoding.CLASSIC:
        # An ``auth`` field already present is replaced, so it is neither checked nor signed.
        lines = [b"" if f.name == AUTH_FIELD else _classic_line(f, check=True) for f in fields]
        signed = b"".join(lines)
        index, digest = signer.sign(signed)
        auth = b"auth=%s\n" % _auth_value(index, digest)
        parts = [_CLASSIC_START, *_with_auth(lines, auth, names), _CLASSIC_END]
        if nul:
            parts.append(b"\0")
        return b"".join(parts)
    if encoding is not Encoding.NETSTRING:
        raise ValueError(f"unknown encoding {encoding!r}")
    items: list[bytes] = []
    for f in fields:
        if f.name == AUTH_FIELD:
            items.append(b"")  # replaced by the fresh inner signature, or dropped
            continue
        name = _checked_name(f.name)
        content = b"%s%s=%s" % (_TYPE_PREFIX[f.type], name, f.value)
        items.append(b"%d:%s," % (len(content), content))
    auth_item: bytes | None = None
    if inner_auth:
        index, digest = signer.sign(render_for_signing(msg))
        content = b"(0)auth=%s" % _auth_value(index, digest)
        auth_item = b"%d:%s," % (len(content), content)
    body = b"".join([_NETSTRING_START, *_with_auth(items, auth_item, names), _NETSTRING_END])
    index, digest = signer.sign(body)
    trailer = _auth_value(index, digest)
    return b"%s%d:%s," % (body, len(trailer), trailer)


# --------------------------------------------------------------------------- decoding


def _malformed(detail: str) -> WireError:
    return WireError("malformed", detail)


def _field_type(digit: int) -> FieldType:
    t = digit - 0x30
    if not 0 <= t <= max(FieldType):
        raise _malformed(f"unknown field type {chr(digit)!r}")
    return FieldType(t)


def _parse_classic(data: bytes, signing: list[bytes] | None = None) -> list[Field]:
    """The fields of a classic message (starting with ``>>>\\n``).

    With *signing*, also collect what :func:`render_for_signing` would make of the
    message, line by line, without rendering it again (:func:`_parse_line`).
    """
    start = len(_CLASSIC_START)
    pos = start
    while True:
        end = data.find(_CLASSIC_END, pos)
        if end < 0:
            raise _malformed("classic message without '<<<' line")
        if end == start or data[end - 1] in (_LF, _CR):
            break
        pos = end + 1
    if data[end + len(_CLASSIC_END) :].strip(b"\0"):
        raise _malformed("bytes after the '<<<' line")
    body = data[start:end]
    if b"\0" in body:
        raise _malformed("NUL byte inside a classic message")
    fields: list[Field] = []
    cache = _LINES
    for line in body.replace(b"\r", b"\n").split(b"\n"):
        if not line:
            continue  # Heartbeat skips runs of CR/LF between lines
        known = cache.get(line)
        if known is None:
            known = _parse_line(line)
            if len(line) <= _LINE_MAX_CACHED and not line.startswith(_NEW_EVERY_TIME_LINES):
                if len(cache) >= _LINES_MAX:
                    cache.clear()  # a flood of new lines costs a parse each, never memory
                cache[line] = known
        field, rendering = known
        fields.append(field)
        if signing is not None and field.name != AUTH_FIELD:
            signing.append(rendering)
    return fields


# Parsed lines: a peer's statuses repeat most of their lines (t, st, dt, protocol, src,
# srcuuid, hg, ttl) packet after packet; a Field is immutable, so one parse serves
# them all. Each entry: the field and its rendering for the signature.
# Only short lines are kept (a status line is under 60 bytes): lines of packets not yet
# authenticated pass through here too, and 1024 of them must stay small (< 0.5 MiB).
_LINES: dict[bytes, tuple[Field, bytes]] = {}
_LINES_MAX = 1024
_LINE_MAX_CACHED = 128


def _parse_line(line: bytes) -> tuple[Field, bytes]:
    """One ``name=value`` line of a classic message: the field and what
    :func:`render_for_signing` makes of it (an untyped line is its own rendering: its
    value holds no LF, so unescaping and escaping again give it back byte for byte)."""
    eq = line.find(b"=")
    if eq < 0:
        raise _malformed("line without '='")
    ftype = FieldType.STRING
    name = line[:eq]
    if name[:1] == b"(":
        if len(name) < 3 or name[2] != 0x29:  # ")"
            raise _malformed("bad type prefix")
        ftype = _field_type(name[1])
        name = name[3:]
    if not name:
        raise _malformed("empty field name")
    value = line[eq + 1 :]
    if ftype is FieldType.STRING:
        value = value.replace(_LF_ESCAPE, b"\n")
    elif ftype is FieldType.BINARY:
        try:
            value = binascii.a2b_base64(value, strict_mode=True)
        except binascii.Error as exc:
            raise _malformed(f"bad base64 in binary field: {exc}") from None
    field = Field(name.decode("utf-8", "surrogateescape"), value, ftype)
    rendering = line + b"\n" if eq == len(name) else _classic_line(field, check=False)
    return field, rendering


def _peel(data: bytes, pos: int) -> tuple[bytes, int]:
    """One netstring at *pos*: ``(content, position after the ',')``."""
    colon = data.find(b":", pos, pos + _MAX_LENGTH_DIGITS + 1)
    digits = data[pos:colon]
    if colon < 0 or not digits or not digits.isdigit():
        raise _malformed(f"bad netstring length at offset {pos}")
    stop = colon + 1 + int(digits)
    if stop >= len(data) or data[stop] != 0x2C:  # ","
        raise _malformed(f"netstring at offset {pos} does not end where its length says")
    return data[colon + 1 : stop], stop + 1


def _netstring_field(content: bytes) -> Field:
    if len(content) < 3 or content[0] != 0x28 or content[2] != 0x29:  # "(t)"
        raise _malformed("netstring field without '(type)' prefix")
    ftype = _field_type(content[1])
    eq = content.find(b"=", 3)
    if eq < 0:
        raise _malformed("netstring field without '='")
    if eq == 3:
        raise _malformed("empty field name")
    return Field(content[3:eq].decode("utf-8", "surrogateescape"), content[eq + 1 :], ftype)


def _parse_netstring(data: bytes) -> tuple[list[Field], int]:
    """The fields of a netstring message and the offset just after ``%%%\\n``."""
    pos = len(_NETSTRING_START)
    fields: list[Field] = []
    while not data.startswith(_NETSTRING_END, pos):
        if pos >= len(data):
            raise _malformed("netstring message without '%%%' line")
        content, pos = _peel(data, pos)
        fields.append(_netstring_field(content))
    return fields, pos + len(_NETSTRING_END)


def _parse_auth(value: bytes) -> tuple[int, bytes]:
    index, sep, digest = value.partition(b" ")
    if not sep or not index.isdigit() or len(index) > _MAX_INDEX_DIGITS or not digest:
        raise _malformed(f"bad authentication string {value[:40]!r}")
    return int(index), digest


def _check(expected: str, got: bytes) -> None:
    if not hmac.compare_digest(expected.encode("ascii"), got):
        raise WireError("bad-signature", "digest mismatch")


def _decompress(algorithm: bytes, payload: bytes) -> bytes:
    limit = MAX_UNCOMPRESSED + 1
    if algorithm == b"zlib":
        z = zlib.decompressobj()
        try:
            out = z.decompress(payload, limit)
        except zlib.error as exc:
            raise _malformed(f"zlib: {exc}") from None
        finished = z.eof
    elif algorithm == b"bz2":
        import bz2  # here: few clusters compress with bz2, and libbz2 stays out of memory

        b = bz2.BZ2Decompressor()
        try:
            out = b.decompress(payload, limit)
        except (OSError, EOFError, ValueError) as exc:
            raise _malformed(f"bz2: {exc}") from None
        finished = b.eof
    else:
        raise WireError("compressed-unsupported", f"algorithm {algorithm[:40]!r}")
    if len(out) > MAX_UNCOMPRESSED:
        raise WireError("too-big", "compressed payload expands beyond 2 MiB")
    if not finished:
        raise _malformed("truncated compressed payload")
    return out


def _expand(msg: Message) -> Message:
    """The message inside a traditionally compressed one (docs/heartbeat.md#compression)."""
    payload = msg.field(COMPRESSED_PAYLOAD)
    if payload is None or payload.type is not FieldType.BINARY:
        return msg
    algorithm = msg.get_bytes(COMPRESSION_ALGORITHM)
    if algorithm is None:
        raise _malformed("compressed payload without algorithm")
    inner = _decompress(algorithm, payload.value)
    # The payload is the original message in wire form, not signed on its own (the
    # outer signature covers it); a netstring one may or may not carry a trailer.
    if inner.startswith(_CLASSIC_START):
        fields = _parse_classic(inner.rstrip(b"\0"))
    elif inner.startswith(_NETSTRING_START):
        fields, _ = _parse_netstring(inner)
    else:
        raise _malformed("compressed payload is not a message")
    expanded = Message(tuple(fields))
    if COMPRESSED_PAYLOAD in expanded:
        raise _malformed("nested compressed payload")
    return expanded


def _decode(data: bytes, signer: Signer, verified: bool) -> Decoded:
    if len(data) > MAX_MESSAGE:
        raise WireError("too-big", f"{len(data)} bytes")
    if data.startswith(_CLASSIC_START):
        signing: list[bytes] | None = None if verified else []
        fields = _parse_classic(data, signing)
        auth = next((f for f in fields if f.name == AUTH_FIELD), None)
        if auth is None:
            raise WireError("unsigned", "no auth field")
        if auth.type is not FieldType.STRING:
            raise _malformed("auth field is not a string")
        index, digest = _parse_auth(auth.value)
        if signing is not None:
            _check(signer.digest(index, b"".join(signing)), digest)
        msg = Message(tuple(f for f in fields if f.name != AUTH_FIELD))
        encoding = Encoding.CLASSIC
    elif data.startswith(_NETSTRING_START):
        fields, signed_len = _parse_netstring(data)
        msg = Message(tuple(fields))
        if signed_len >= len(data):
            raise WireError("unsigned", "no netstring authentication trailer")
        trailer, end = _peel(data, signed_len)
        if data[end:].strip(b"\0"):
            raise _malformed("bytes after the authentication trailer")
        index, digest = _parse_auth(trailer)
        _check(signer.trailer_digest(index, data[:signed_len]), digest)
        encoding = Encoding.NETSTRING
    else:
        raise _malformed("neither '>>>' nor '###' at the start")
    expanded = _expand(msg)
    if expanded is not msg or encoding is Encoding.NETSTRING:
        expanded = expanded.without(AUTH_FIELD)
    return Decoded(message=expanded, encoding=encoding, auth_index=index)


def decode(data: bytes, signer: Signer, *, verified: bool = False) -> Decoded:
    """Parse and authenticate one packet (docs/heartbeat.md#what-is-signed).

    Classic packets are verified with the ``auth`` field's index's method and key;
    netstring packets by their trailer, with the trailer index's method but this
    node's *outbound* key (Heartbeat's behaviour); the inner ``auth`` field of a
    netstring packet is not checked. Traditionally compressed messages (zlib, bz2)
    are expanded after authentication.

    ``verified``: :func:`screen_verified` has checked this classic packet's signature
    over its raw bytes (it does so only for the canonical form, whose raw bytes are
    what the signature covers), so the HMAC is not computed again; a netstring
    packet is verified here all the same.

    Raises ``WireError`` with reason ``malformed``, ``unsigned``, ``bad-auth-index``,
    ``bad-signature``, ``too-big`` or ``compressed-unsupported``; never anything else.
    """
    try:
        return _decode(bytes(data), signer, verified)
    except WireError:
        raise
    except (ValueError, IndexError, UnicodeError) as exc:  # defence in depth
        raise WireError("malformed", f"{type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------- screening

#: How an ACK begins in each encoder's field order, up to its ``dest`` value (classic)
#: or field (netstring); transport/sockfilter.py matches the same bytes in the kernel.
ACK_CLASSIC_PREFIX = b">>>\nt=NS_ackmsg\ndest="
ACK_NETSTRING_PREFIX = b"###\n14:(0)t=NS_ackmsg,"
_DEST_NETSTRING = b":(0)dest="


def ack_netstring_head(dest: bytes) -> bytes:
    """How a netstring ACK for *dest* begins, up to the name: the prefix, then the
    ``dest`` field's length (its content is ``(0)dest=`` and the name) and its start."""
    return b"%s%d%s" % (ACK_NETSTRING_PREFIX, len(_DEST_NETSTRING) - 1 + len(dest), _DEST_NETSTRING)


def ack_for_another(data: bytes, local: bytes) -> bool:
    """Whether *data* is an ``NS_ackmsg`` whose ``dest`` (its second field, in both
    encoders' order) names a node other than *local* (lower case).

    Every node broadcasts an ACK to each peer once every ten of its messages, and every
    node reads all of them: with 16 nodes, 225 a second for someone else against 15 for
    us. The engine, after decoding them, only counted and dropped them
    (``Engine._for_us``: no liveness, no state), so they need neither an HMAC nor a
    parse; a packet of any other shape says False and goes the whole way. One count
    moves: a replayed ACK for another node was the engine's ``replay``, now it is
    ``not-for-us``.
    """
    if data.startswith(ACK_CLASSIC_PREFIX):
        start = len(ACK_CLASSIC_PREFIX)
        end = data.find(b"\n", start, start + 256)
    elif data.startswith(ACK_NETSTRING_PREFIX):
        marker = data.find(
            _DEST_NETSTRING, len(ACK_NETSTRING_PREFIX), len(ACK_NETSTRING_PREFIX) + 16
        )
        if marker < 0:
            return False
        start = marker + len(_DEST_NETSTRING)
        end = data.find(b",", start, start + 256)
    else:
        return False
    return end > start and data[start:end].lower() != local


def screen(data: bytes, signer: Signer) -> str | None:
    """A cheap look at a packet before :func:`decode`: the drop reason when it certainly
    fails authentication, None when it may pass (``decode`` then decides).

    The signature is checked over the raw bytes, without parsing a field: a netstring
    trailer covers the bytes up to ``%%%\\n`` as they are; a classic ``auth`` field
    covers every other line as it is, as long as the packet is in the canonical form
    Heartbeat and pulse send (LF line ends, no empty lines, no typed line but binary
    ``(1)`` ones in canonical base64). Anything else gets None and the full
    :func:`decode`. A flood of packets signed with a wrong key costs an HMAC each, not
    a parse (docs/hostile-input.md).
    """
    reason = _screen(data, signer)
    return None if reason is _VERIFIED else reason


def screen_verified(data: bytes, signer: Signer) -> tuple[str | None, bool]:
    """:func:`screen`, and whether it verified the signature itself: then
    ``decode(data, signer, verified=True)`` does not compute the HMAC a second time."""
    reason = _screen(data, signer)
    if reason is _VERIFIED:
        return None, True
    return reason, False


_VERIFIED = "verified"  # _screen: the signature over the raw bytes is right


def _screen(data: bytes, signer: Signer) -> str | None:
    if len(data) > MAX_MESSAGE:
        return "too-big"
    if data.startswith(_CLASSIC_START):
        return _screen_classic(data, signer)
    if data.startswith(_NETSTRING_START):
        return _screen_netstring(data, signer)
    return "malformed"


def _screen_index(value: bytes, signer: Signer) -> tuple[int, bytes] | str | None:
    index, sep, digest = value.partition(b" ")
    if not sep or not index.isdigit() or len(index) > _MAX_INDEX_DIGITS or not digest:
        return None  # decode says why
    number = int(index)
    if not signer.knows(number):
        return "bad-auth-index"
    return number, digest


def _canonical_typed_lines(body: bytes) -> bool:
    """Every typed line of a classic body is ``(1)name=<canonical base64>``."""
    pos = 0 if body.startswith(b"(") else body.find(b"\n(")
    while pos >= 0:
        start = pos if body[pos] == 0x28 else pos + 1
        end = body.find(b"\n", start)
        line = body[start:end]
        eq = line.find(b"=")
        if not line.startswith(b"(1)") or eq < 0:
            return False
        value = line[eq + 1 :]
        try:
            raw = binascii.a2b_base64(value, strict_mode=True)
        except binascii.Error:
            return False
        if binascii.b2a_base64(raw, newline=False) != value:
            return False
        pos = body.find(b"\n(", end)
    return True


def _screen_classic(data: bytes, signer: Signer) -> str | None:
    if b"auth=" not in data:  # not even a typed "(0)auth=" field
        return "unsigned"
    packet = data.rstrip(b"\0")
    if not packet.endswith(b"\n" + _CLASSIC_END):
        return None
    body = packet[len(_CLASSIC_START) : -len(_CLASSIC_END)]
    if b"\r" in body or b"\0" in body or b"\n\n" in body or body.startswith(b"\n"):
        return None
    if _CLASSIC_END in body:
        return None
    pos = 0 if body.startswith(b"auth=") else body.find(b"\nauth=") + 1
    if pos == 0 and not body.startswith(b"auth="):
        return None
    end = body.find(b"\n", pos)
    if body.find(b"\nauth=", end) >= 0:
        return None
    parsed = _screen_index(body[pos + 5 : end], signer)
    if not isinstance(parsed, tuple):
        return parsed
    if b"(" in body and not _canonical_typed_lines(body):
        return None
    index, digest = parsed
    expected = signer.digest(index, body[:pos] + body[end + 1 :])
    return _VERIFIED if hmac.compare_digest(expected.encode("ascii"), digest) else "bad-signature"


def _screen_netstring(data: bytes, signer: Signer) -> str | None:
    packet = data.rstrip(b"\0")
    mark = packet.rfind(_NETSTRING_END)
    if mark < 0 or not packet.endswith(b","):
        return None
    signed_len = mark + len(_NETSTRING_END)
    colon = packet.find(b":", signed_len)
    digits = packet[signed_len:colon]
    if colon < 0 or not digits.isdigit() or len(digits) > _MAX_LENGTH_DIGITS:
        return None
    content = packet[colon + 1 : -1]
    if len(content) != int(digits):
        return None
    parsed = _screen_index(content, signer)
    if not isinstance(parsed, tuple):
        return parsed
    index, digest = parsed
    expected = signer.trailer_digest(index, packet[:signed_len])
    return None if hmac.compare_digest(expected.encode("ascii"), digest) else "bad-signature"
