"""Heartbeat's wire format: messages, the classic and netstring encodings, signatures."""

from __future__ import annotations

from .auth import Signer as Signer
from .auth import crc32_posix as crc32_posix
from .codec import MAX_MESSAGE as MAX_MESSAGE
from .codec import MAX_UNCOMPRESSED as MAX_UNCOMPRESSED
from .codec import Decoded as Decoded
from .codec import Encoding as Encoding
from .codec import decode as decode
from .codec import encode as encode
from .codec import render_for_signing as render_for_signing
from .message import Field as Field
from .message import FieldType as FieldType
from .message import Message as Message
from .message import ascii_int as ascii_int
