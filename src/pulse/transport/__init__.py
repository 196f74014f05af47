"""Links: the media that carry heartbeats between nodes, as trio tasks.

``open_links(config)`` turns the media of a :class:`~pulse.config.model.Config` into
:class:`Link` objects. The daemon starts each with ``await nursery.start(link.run,
send_channel)`` — when ``start`` returns the link is receiving — then reads
:class:`Datagram` records from the other end of the channel and calls
``link.send(packet)`` on every link for every message it transmits (every message goes out
on all media, docs/heartbeat.md#transports). Nothing here decodes or authenticates a packet.

Grouping follows Heartbeat's media: one link per ``bcast`` interface and port, one per
``ucast`` interface and port carrying every peer of the lines that name it, one per
``mcast`` interface, group and port, and one per serial device. Each ``ping`` /
``ping6`` host and each ``ping_group`` is a pseudo-node with an ICMP link of its own,
named after it (:mod:`pulse.transport.ping`); these come last and carry no cluster
traffic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pulse.config.model import (
    BcastMedium,
    Config,
    McastMedium,
    PingGroupMedium,
    PingMedium,
    SerialMedium,
    UcastMedium,
)
from pulse.wire.auth import Signer
from pulse.wire.codec import Encoding

from ._link import Datagram as Datagram
from ._link import Link as Link
from ._link import LinkStatistics as LinkStatistics
from .ping import PingLink as PingLink
from .udp import BcastLink as BcastLink
from .udp import McastLink as McastLink
from .udp import UcastLink as UcastLink
from .udp import UdpLink as UdpLink

__all__ = [
    "BcastLink",
    "Datagram",
    "Link",
    "LinkStatistics",
    "McastLink",
    "PingLink",
    "SerialLink",
    "UcastLink",
    "UdpLink",
    "open_links",
]

if TYPE_CHECKING:
    from .serial import SerialLink as SerialLink


def __getattr__(name: str) -> Any:
    # SerialLink is imported when first used: a node without a serial line does not load
    # trio_serial (docs/performance.md, issue 14).
    if name == "SerialLink":
        from .serial import SerialLink

        return SerialLink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_links(
    config: Config,
    *,
    rtscts: bool = False,
    serial_write_timeout: float | None = None,
) -> list[Link]:
    """Build (without opening) one :class:`Link` per distinct medium, in config order.

    ``rtscts`` turns on hardware flow control on serial ports (see
    :mod:`pulse.transport.serial` for why it is off by default).
    ``serial_write_timeout`` bounds a serial write, in seconds, beyond the frame's own
    transmission time; it defaults to the keepalive interval, so a stuck tty costs at
    most one heartbeat.
    """
    write_timeout = (
        serial_write_timeout
        if serial_write_timeout is not None
        else max(config.timing.keepalive / 1000.0, 0.1)
    )
    # First occurrence fixes a link's position; later lines only add ucast peers.
    grouped: dict[tuple[str, ...], list[LinkMedium]] = {}
    for medium in config.links:
        grouped.setdefault(_link_key(medium), []).append(medium)

    links: list[Link] = []
    for media in grouped.values():
        first = media[0]
        if isinstance(first, BcastMedium):
            links.append(BcastLink(interface=first.interface, port=first.port))
        elif isinstance(first, UcastMedium):
            peers = tuple(dict.fromkeys(m.peer for m in media if isinstance(m, UcastMedium)))
            links.append(UcastLink(interface=first.interface, port=first.port, peers=peers))
        elif isinstance(first, McastMedium):
            links.append(
                McastLink(
                    interface=first.interface,
                    group=first.group,
                    port=first.port,
                    ttl=first.ttl,
                    loop=first.loop,
                )
            )
        else:
            from .serial import SerialLink  # trio_serial and termios only for a serial line

            links.append(
                SerialLink(
                    device=first.device,
                    baud=first.baud,
                    rtscts=rtscts,
                    write_timeout=write_timeout,
                )
            )
    return links + _ping_links(config)


def _ping_links(config: Config) -> list[Link]:
    """One ICMP link per ping node, in config order (a repeated host counts once)."""
    media: dict[str, PingMedium | PingGroupMedium] = {}
    for medium in config.media:
        if isinstance(medium, PingMedium | PingGroupMedium):
            media.setdefault(medium.name, medium)
    if not media:
        return []
    signer = Signer(config.auth)
    encoding = Encoding.NETSTRING if config.msgfmt == "netstring" else Encoding.CLASSIC
    interval = config.timing.keepalive / 1000.0
    links: list[Link] = []
    for name, medium in media.items():
        hosts: tuple[str, ...]
        if isinstance(medium, PingMedium):
            hosts, info = (medium.host,), "ping6" if medium.ipv6 else "ping"
        else:
            hosts, info = medium.hosts, "ping_group"
        links.append(
            PingLink(
                name=name,
                hosts=hosts,
                info=info,
                ipv6=isinstance(medium, PingMedium) and medium.ipv6,
                interval=interval,
                signer=signer,
                encoding=encoding,
            )
        )
    return links


LinkMedium = BcastMedium | McastMedium | UcastMedium | SerialMedium


def _link_key(medium: LinkMedium) -> tuple[str, ...]:
    if isinstance(medium, BcastMedium | UcastMedium):
        return (medium.kind, medium.interface, str(medium.port))
    if isinstance(medium, McastMedium):
        return (medium.kind, medium.interface, medium.group, str(medium.port))
    return (medium.kind, medium.device)
