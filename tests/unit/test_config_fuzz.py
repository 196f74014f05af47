"""Random input never crashes the loaders: it loads or raises ConfigError."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulse.config import load_config
from pulse.config.authkeys import parse_authkeys
from pulse.config.hacf import parse_hacf
from pulse.config.haresources import parse_haresources
from pulse.errors import ConfigError

WORDS = st.sampled_from(
    ["node", "keepalive", "deadtime", "warntime", "initdead", "bcast", "ucast", "mcast",
     "serial", "udpport", "baud", "auto_failback", "nice_failback", "ping", "ping_group",
     "stonith", "respawn", "apiauth", "auth", "1", "2", "16", "-1", "crc", "md5", "sha1",
     "eth0", "239.0.0.1", "198.51.100.1", "/dev/ttyS0", "on", "off", "legacy", "#", "\\",
     "::", "IPaddr::", "500ms", "1.5", ",", "alpha", "beta", "\t", "=", "[", "]", "\"", "\r"]
)  # fmt: skip
LINES = st.lists(st.lists(WORDS | st.text(max_size=8), max_size=8).map(" ".join), max_size=12)
TEXT = LINES.map("\n".join) | st.text(max_size=300)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(TEXT)
def test_ha_cf_parser_never_raises(text: str) -> None:
    parse_hacf(text.encode("utf-8", errors="surrogateescape"), "ha.cf")


@SETTINGS
@given(TEXT)
def test_authkeys_parser_never_raises(text: str) -> None:
    parse_authkeys(text.encode("utf-8", errors="surrogateescape"), "authkeys")


@SETTINGS
@given(TEXT)
def test_haresources_parser_never_raises(text: str) -> None:
    parse_haresources(text.encode("utf-8", errors="surrogateescape"), "haresources")


@SETTINGS
@given(hacf=TEXT, authkeys=TEXT, haresources=TEXT, raw=st.binary(max_size=200))
def test_load_config_raises_only_config_error(
    hacf: str, authkeys: str, haresources: str, raw: bytes
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "ha.cf").write_bytes(hacf.encode("utf-8", errors="surrogateescape") + raw)
        (d / "authkeys").write_text("auth 1\n1 crc\n" + authkeys)
        (d / "authkeys").chmod(0o600)
        (d / "haresources").write_text(haresources)
        try:
            load_config(d, node="alpha")
        except ConfigError as e:
            assert e.diagnostics
            for diag in e.diagnostics:
                str(diag).encode("utf-8")  # printable on stderr


@SETTINGS
@given(TEXT)
def test_toml_loader_raises_only_config_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "pulse.toml"
        p.write_text("[cluster]\nnodes = ['alpha']\n" + text)
        p.chmod(0o600)
        try:
            load_config(p, node="alpha")
        except ConfigError as e:
            assert e.diagnostics


KEYS = st.sampled_from(
    ["cluster", "nodes", "name", "auto_failback", "udpport", "baud", "timing", "keepalive",
     "deadtime", "warntime", "initdead", "links", "type", "interface", "peer", "port", "group",
     "ttl", "loop", "device", "host", "hosts", "auth", "use", "keys", "index", "method", "key",
     "authkeys", "groups", "node", "resources", "logging", "facility", "heartbeat", "realtime",
     "stonith", "respawn", "command", "user", "plugins", "bcast", "mcast", "serial", "sha1"]
)  # fmt: skip
SCALARS = (
    st.booleans()
    | st.integers(-5, 70000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | WORDS
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)


@SETTINGS
@given(st.dictionaries(KEYS, VALUES, max_size=8))
def test_structured_toml_documents_raise_only_config_error(doc: dict[str, object]) -> None:
    from pulse.config.convert import key, value

    text = "".join(f"{key(k)} = {value(v)}\n" for k, v in doc.items())
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "pulse.toml"
        p.write_text(text)
        p.chmod(0o600)
        try:
            load_config(p, node="alpha")
        except ConfigError as e:
            assert e.diagnostics
