"""pulse.transport.deferred: the split of a bcast/mcast link's datagrams between a
prompt socket and one read on the timer. The programs run in the kernel in
tests/e2e/test_links_udp.py; here: their shape, the dating and the drop arithmetic."""

from __future__ import annotations

import socket
import struct

import pytest

from pulse.config.model import AuthKey, AuthKeys, AuthMethod, BcastMedium, Config, UcastMedium
from pulse.transport import BcastLink, UcastLink, defers_every_status
from pulse.transport.deferred import (
    DEFERRED_PREFIXES,
    SO_TIMESTAMPNS,
    arrival,
    overflow_drops,
    split_filters,
)

BROADCAST = int.from_bytes(socket.inet_aton("198.51.100.255"), "big")


def _instructions(program: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]


@pytest.mark.parametrize("echo", [None, (0xC6336401, 40000)])
def test_every_jump_of_both_programs_lands_inside_the_program_on_a_return(
    echo: tuple[int, int] | None,
) -> None:
    for program in split_filters(BROADCAST, echo):
        code = _instructions(program)
        assert code[-1][0] == 0x06  # the last instruction returns
        for index, (op, jt, jf, _k) in enumerate(code):
            if op & 0x07 == 0x05:  # a jump
                assert index + 1 + max(jt, jf) < len(code)


def test_the_prompt_program_keeps_by_default_and_the_deferred_one_drops() -> None:
    prompt, deferred = split_filters(BROADCAST)
    assert _instructions(prompt)[-1] == (0x06, 0, 0, 0xFFFFFFFF)
    assert _instructions(deferred)[-1] == (0x06, 0, 0, 0)


def test_the_prompt_program_only_gives_up_what_was_sent_to_the_deferred_address() -> None:
    prompt, deferred = split_filters(BROADCAST)
    loads = [k for op, _jt, _jf, k in _instructions(prompt) if op == 0x20]
    assert (-0x100000 + 16) & 0xFFFFFFFF in loads  # the IP destination is looked at
    assert BROADCAST in [k for op, _jt, _jf, k in _instructions(prompt) if op == 0x15]
    assert (-0x100000 + 16) & 0xFFFFFFFF not in [
        k for op, _jt, _jf, k in _instructions(deferred) if op == 0x20
    ]


def test_deferred_prefixes_are_the_encoders_plain_status_and_ack() -> None:
    assert b">>>\nt=status\nst=active\n" in DEFERRED_PREFIXES
    assert b">>>\nt=NS_ackmsg\n" in DEFERRED_PREFIXES
    for prefix in DEFERRED_PREFIXES:
        if prefix.startswith(b"###\n"):  # netstrings: the length is that of the field
            for field in prefix[4:].split(b",")[:-1]:
                length, _, body = field.partition(b":")
                assert int(length) == len(body)


def _timestamp(sec: int, nsec: int) -> list[tuple[int, int, bytes]]:
    return [(socket.SOL_SOCKET, SO_TIMESTAMPNS, struct.pack("@ll", sec, nsec))]


def test_arrival_converts_the_kernel_wall_clock_stamp_to_trio_time() -> None:
    # offset = trio time - wall time when read
    at = arrival(_timestamp(1_000, 500_000_000), offset=-900.0, now=101.0)
    assert at == pytest.approx(100.5)


def test_arrival_is_never_later_than_now_and_without_a_stamp_is_now() -> None:
    assert arrival(_timestamp(2_000, 0), offset=-900.0, now=101.0) == 101.0
    assert arrival([], offset=-900.0, now=101.0) == 101.0


def test_overflow_is_what_the_prompt_socket_refused_beyond_echoes_and_deferred_reads() -> None:
    assert overflow_drops(prompt_drops=130, echoes=100, deferred_read=30) == 0
    assert overflow_drops(prompt_drops=137, echoes=100, deferred_read=30) == 7
    assert overflow_drops(prompt_drops=10, echoes=100, deferred_read=30) == 0


def _config(*media: BcastMedium | UcastMedium) -> Config:
    auth = AuthKeys(outbound=1, keys=(AuthKey(index=1, method=AuthMethod.CRC, key=None),))
    return Config(nodes=("a", "b"), media=media, auth=auth)


def test_statuses_go_on_a_fixed_grid_only_when_every_heartbeat_link_defers() -> None:
    bcast = BcastMedium(interface="eth0", port=694)
    ucast = UcastMedium(interface="eth1", port=694, peer="198.51.100.2")
    only_bcast = _config(bcast)
    assert defers_every_status(only_bcast, [BcastLink(interface="eth0", port=694)])
    both = _config(bcast, ucast)
    links = [
        BcastLink(interface="eth0", port=694),
        UcastLink(interface="eth1", port=694, peers=("198.51.100.2",)),
    ]
    assert not defers_every_status(both, links)
    assert not defers_every_status(only_bcast, [])
