"""Who may do what over the control socket.

The socket is root-only (mode 0600) by default. With ``--control-group NAME`` (TOML
``[control] group = "NAME"``) it is mode 0660 and owned by that group, so a monitoring
agent that is a member can read the node's state without running as root. The daemon
asks the kernel who is at the other end (``SO_PEERCRED``) and lets a user other than
root (or the daemon's own user) run only the commands that change nothing.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass
from typing import Protocol

#: Commands that only read: open to the control group.
READ_ONLY = frozenset({"ping", "status", "plugins", "metrics"})


@dataclass(frozen=True, slots=True)
class Peer:
    pid: int
    uid: int
    gid: int

    @property
    def privileged(self) -> bool:
        return self.uid == 0 or self.uid == os.geteuid()


class _Socket(Protocol):
    def getsockopt(self, level: int, optname: int, buflen: int, /) -> bytes: ...


def peer_of(sock: _Socket) -> Peer | None:
    """The process at the other end of a Unix stream socket, from the kernel."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid, uid, gid)


def refusal(command: str, peer: Peer | None) -> str | None:
    """Why *peer* may not run *command* (None: it may)."""
    if command in READ_ONLY or (peer is not None and peer.privileged):
        return None
    who = f"uid {peer.uid}" if peer is not None else "an unknown user"
    return (
        f"{command} needs root ({who} may only run {', '.join(sorted(READ_ONLY - {'ping'}))}): "
        "run pulsectl as root"
    )
