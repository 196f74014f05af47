"""Outgoing messages: status content, envelope order and formats, as Heartbeat sends them."""

from __future__ import annotations

from pathlib import Path

import pytest
from protocol_harness import (
    WALL_EPOCH,
    make_config,
    make_engine,
    status_message,
    transmits,
    uuid_of,
)

from pulse.protocol.events import Log, Transmit
from pulse.wire import Signer, decode
from pulse.wire.message import FieldType, Message
from pulse_lab.pcap import read_udp

CAPTURE = Path(__file__).resolve().parents[1] / "data" / "captures" / "hb-sha1.pcap"
ENVELOPE = ["src", "srcuuid", "seq", "hg", "ts", "ld", "ttl"]


def names(msg: Message) -> list[str]:
    return [f.name for f in msg]


def test_start_sends_status_init_then_up_with_boosted_deadtime() -> None:
    engine = make_engine(make_config(deadtime=3.0), "alpha", generation=0x6B021FDA)
    out = engine.start(0.0)
    first, second = transmits(out)
    assert [(m.get("st"), m.get("seq")) for m in (first, second)] == [("init", "1"), ("up", "2")]
    assert first.get("dt") == "1388"  # 3000 + 2000 ms, as in the captures
    assert first.get("protocol") == "1"
    assert first.get("hg") == "6b021fda"
    assert first.get("ts") == format(int(WALL_EPOCH), "x")
    assert first.get("ttl") == "3"
    assert Log(level="info", text="Local status now set to: 'up'") in out


def test_status_fields_in_heartbeat_order_with_binary_srcuuid() -> None:
    engine = make_engine(make_config(), "alpha")
    status = transmits(engine.start(0.0))[0]
    assert names(status) == ["t", "st", "dt", "protocol", *ENVELOPE]
    srcuuid = status.field("srcuuid")
    assert srcuuid is not None
    assert srcuuid.type is FieldType.BINARY and srcuuid.value == uuid_of("alpha")
    assert status.get("ld") == "0.00 0.01 0.05 1/100 4242"


def test_keepalive_status_every_interval_at_exact_times() -> None:
    engine = make_engine(make_config(keepalive=2.0, deadtime=10.0), "alpha")
    engine.start(0.5)
    times = []
    for _ in range(4):
        when = engine.next_deadline()
        if transmits(engine.tick(when)):
            times.append(when)
    assert times == [2.5, 4.5, 5.5, 6.5]  # 5.5: the dead time boost ends


def test_boost_ends_five_seconds_after_start_with_an_immediate_status() -> None:
    engine = make_engine(make_config(keepalive=1.0, deadtime=3.0, initdead=20.0), "alpha")
    engine.start(0.0)
    for t in (1.0, 2.0, 3.0, 4.0):
        engine.tick(t)
    sent = transmits(engine.tick(5.0))
    assert [m.get("dt") for m in sent] == ["1388", "bb8"]  # as in hb-sha1.pcap
    assert [m.get("dt") for m in transmits(engine.tick(6.0))] == ["bb8"]


def test_sequence_numbers_are_lowercase_hex_shared_by_all_sequenced_types() -> None:
    engine = make_engine(make_config(), "alpha")
    engine.start(0.0)
    seqs = [
        transmits(engine.send(Message.of(("t", "resource"), ("rsc_hold", "none")), 0.1))[0].get(
            "seq"
        )
        for _ in range(10)
    ]
    assert seqs == ["3", "4", "5", "6", "7", "8", "9", "a", "b", "c"]


def test_noseq_messages_have_neither_seq_nor_load() -> None:
    engine = make_engine(make_config(), "alpha")
    engine.start(0.0)
    msg = transmits(engine.send(Message.of(("t", "NS_custom"), ("x", "1")), 0.1))[0]
    assert names(msg) == ["t", "x", "src", "srcuuid", "hg", "ts", "ttl"]


def test_noseq_message_keeps_its_own_src_but_sequenced_src_is_overwritten() -> None:
    engine = make_engine(make_config(), "alpha")
    engine.start(0.0)
    ns = transmits(engine.send(Message.of(("t", "NS_st"), ("src", "pinghost")), 0.1))[0]
    seq = transmits(engine.send(Message.of(("t", "starting"), ("src", "forged")), 0.1))[0]
    assert ns.get("src") == "pinghost"
    assert seq.get("src") == "alpha" and names(seq)[1] == "src"


def test_destuuid_added_once_the_peer_uuid_is_known() -> None:
    engine = make_engine(make_config(), "alpha")
    engine.start(0.0)
    before = transmits(engine.send(Message.of(("t", "ip-request")), 0.1, dest="beta"))[0]
    assert "destuuid" not in before
    engine.receive(status_message("beta", 1), "eth0", 0.2)
    after = transmits(engine.send(Message.of(("t", "ip-request")), 0.3, dest="beta"))[0]
    assert names(after) == ["t", "dest", "destuuid", *ENVELOPE]
    assert after.get_bytes("destuuid") == uuid_of("beta")


def test_transmit_names_the_destination_and_strips_a_stale_auth_field() -> None:
    engine = make_engine(make_config(), "alpha")
    engine.start(0.0)
    (out,) = engine.send(Message.of(("t", "hb_takeover"), ("auth", "1 abc")), 0.1, dest="beta")
    assert isinstance(out, Transmit) and out.dest == "beta" and not out.retransmit
    assert "auth" not in out.message


def test_message_without_type_cannot_be_sent() -> None:
    engine = make_engine(make_config(), "alpha")
    with pytest.raises(ValueError, match="'t'"):
        engine.send(Message.of(("x", "1")), 0.0)


def test_ttl_counts_hopfudge_nodes_and_ping_nodes() -> None:
    config = make_config(("alpha", "beta", "gamma"), ping=("198.51.100.1",), hopfudge=2)
    engine = make_engine(config, "alpha")
    assert transmits(engine.start(0.0))[0].get("ttl") == "6"


def _captured_n1() -> list[Message]:
    from pulse.config.model import AuthKey, AuthKeys, AuthMethod

    signer = Signer(
        AuthKeys(
            outbound=1,
            keys=(AuthKey(index=1, method=AuthMethod.SHA1, key=b"pulse-bench-sha1-secret"),),
        )
    )
    out = []
    for dgram in read_udp(CAPTURE):
        msg = decode(dgram.payload, signer).message
        if msg.get("src") == "n1":
            out.append(msg.without("auth"))
    return out


def _first(msgs: list[Message], t: str) -> Message:
    return next(m for m in msgs if m.type == t)


@pytest.mark.skipif(not CAPTURE.exists(), reason="capture not present")
def test_field_order_matches_heartbeat_capture_for_every_protocol_message() -> None:
    captured = _captured_n1()
    engine = make_engine(make_config(("n1", "n2")), "n1")
    ours: list[Message] = transmits(engine.start(0.0))
    ours += transmits(engine.receive(status_message("n2", 1, st="up"), "eth0", 0.1))
    ours += transmits(engine.receive(_peer_reqnodes(), "eth0", 0.2))
    for seq in range(3, 14):
        ours += transmits(engine.receive(status_message("n2", seq), "eth0", 0.3))
    for t in ("status", "reqnodes", "repnodes", "NS_ackmsg"):
        theirs, mine = _first(captured, t), _first(ours, t)
        assert names(mine) == names(theirs), t
        assert [f.type for f in mine] == [f.type for f in theirs], t
    assert _first(ours, "repnodes").get("nodelist") == _first(captured, "repnodes").get("nodelist")


def _peer_reqnodes() -> Message:
    from protocol_harness import peer_message

    return peer_message("reqnodes", "n2", seq=2, dest="n1")


def test_statuses_share_their_unchanged_fields_and_the_history_keeps_no_copies() -> None:
    engine = make_engine(make_config(keepalive=1.0, deadtime=5.0), "alpha")
    engine.start(0.0)
    sent = [transmits(engine.tick(engine.next_deadline())) for _ in range(3)]
    a, b = (batch[0] for batch in sent[1:])
    for name in ("t", "st", "dt", "protocol", "src", "srcuuid", "hg", "ld", "ttl"):
        assert a.field(name) is b.field(name), name
    assert a.get("seq") != b.get("seq")


def test_a_looked_up_message_equals_and_hashes_as_before_its_look_ups() -> None:
    looked = Message.of(("t", "status"), ("st", "up"), ("t", "second"))
    fresh = Message.of(("t", "status"), ("st", "up"), ("t", "second"))
    assert looked.get("t") == "status" and "st" in looked and "dt" not in looked
    assert looked == fresh and hash(looked) == hash(fresh) and repr(looked) == repr(fresh)
