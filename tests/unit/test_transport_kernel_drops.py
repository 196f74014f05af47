"""A UDP link reports the datagrams the kernel dropped for a full receive buffer."""

from __future__ import annotations

import socket

from pulse.transport.udp import RECEIVE_BUFFER, _grow_receive_buffer, kernel_drops


def test_datagrams_a_full_receive_buffer_dropped_are_counted() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel's minimum
        rx.bind(("127.0.0.1", 0))
        assert kernel_drops(rx) == 0
        for _ in range(200):  # nobody reads: most of these cannot be queued
            tx.sendto(b"x" * 1000, rx.getsockname())
        assert kernel_drops(rx) > 100


def test_the_receive_buffer_grows_to_what_is_asked_or_allowed() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        before = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        _grow_receive_buffer(sock, RECEIVE_BUFFER)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= before
