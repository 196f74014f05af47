"""The built-in floating IP agent behind ``IPaddr``, ``IPaddr2``, ``IPv6addr`` and bare IPs.

Three layers, as everywhere in pulse:

* pure: :func:`parse_ip_argument` (haresources argument forms, docs/heartbeat.md#ipaddr-arguments),
  :func:`findif` (interface/netmask/broadcast from a routing-table snapshot,
  docs/heartbeat.md#findif) and :func:`free_alias_label` (IPaddr's ``IF:N``);
* netlink I/O: small async functions (:func:`read_routes`, :func:`netlink_add`,
  :func:`netlink_remove`, ...) that open a :class:`~pulse.resources.netlink.Rtnetlink`
  socket, do one job and close it again. The socket is non-blocking and waited
  on by trio, so no worker thread is involved, also not on the failover path;
* :class:`FloatingIP`, the trio-facing agent, which also announces the address
  (gratuitous ARP / unsolicited NA, :mod:`pulse.resources.arp`): the first
  packet right after the address is added, the rest from a background task so
  that ``start()`` returns at once.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import trio

from pulse.config.model import ResourceSpec
from pulse.resources.arp import (
    IPADDR2_ARP,
    IPADDR_ARP,
    Announcement,
    Announcer,
    ArpPolicy,
)
from pulse.resources.base import MonitorResult, MonitorState, ResourceError, monitor_result
from pulse.resources.netlink import (
    AddressRecord,
    Link,
    NetlinkError,
    Rtnetlink,
    address_add_request,
    address_delete_request,
    family_of,
    link_up_request,
)

log = logging.getLogger("pulse.resources")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

IP_AGENTS = ("IPaddr", "IPaddr2", "IPv6addr")

IFNAMSIZ = 16  # kernel limit, including the terminating NUL
MAX_ALIAS = 512  # IPaddr tries IF:0 ... IF:511
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
ARPHRD_ETHER = 1
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_RUNNING = 0x40  # operational state up (carrier, RFC 2863 "up")
IFF_NOARP = 0x80
IFA_F_NODAD = 0x02


# --------------------------------------------------------------------------- argument forms


@dataclass(frozen=True, slots=True, kw_only=True)
class IPArgument:
    """One parsed floating-IP argument; ``None`` means "find it out" (findif)."""

    address: Address
    prefixlen: int | None = None
    interface: str | None = None
    label: str | None = None  # the whole label, e.g. "eth0:0"
    broadcast: ipaddress.IPv4Address | None = None

    @property
    def version(self) -> int:
        return self.address.version


def ip_argument_text(spec: ResourceSpec) -> str:
    """The single floating-IP argument of a haresources word, IPv6 colons intact.

    ResourceManager splits arguments on ``::``, which would cut an IPv6 address
    in pieces; the argument is therefore taken from the raw word: everything
    after ``AGENT::``, or the whole word for a bare address.
    """
    raw = spec.raw
    for agent in IP_AGENTS:
        if raw.startswith(agent + "::"):
            return raw[len(agent) + 2 :]
    if raw in IP_AGENTS:
        return ""
    if is_bare_ip(raw):
        return raw
    return "::".join(spec.args)


def is_bare_ip(word: str) -> bool:
    """True when ``word`` is an address written without an agent (``198.51.100.10/24``).

    Heartbeat only knows dotted IPv4 here; pulse also accepts a bare IPv6 address.
    """
    head = word.split("/", 1)[0]
    try:
        ipaddress.ip_address(head)
    except ValueError:
        return False
    return True


def _prefix_from_mask(mask: str, version: int) -> int:
    limit = 32 if version == 4 else 128
    if mask.isdigit():
        bits = int(mask)
        if not 1 <= bits <= limit:
            raise ValueError(f"netmask /{mask} is out of range 1-{limit}")
        return bits
    if version == 4:
        try:
            value = int(ipaddress.IPv4Address(mask))
        except ValueError:
            raise ValueError(f"bad netmask {mask!r}") from None
        bits = bin(value).count("1")
        if bits == 0 or value != ((1 << 32) - 1) ^ ((1 << (32 - bits)) - 1):
            raise ValueError(f"netmask {mask} is not contiguous")
        return bits
    raise ValueError(f"bad IPv6 prefix length {mask!r}")


def _check_ifname(name: str) -> None:
    if not name or len(name) >= IFNAMSIZ or any(c in name for c in "/: \t") or name in {".", ".."}:
        raise ValueError(f"bad interface name {name!r}")


def parse_ip_argument(text: str) -> IPArgument:
    """Parse ``IP[/MASK[/IF[:LABEL][/BCAST]]]`` (IPaddr, IPaddr2, IPv6addr).

    docs/heartbeat.md#ipaddr-arguments.

    MASK is a bit count or (IPv4) a dotted netmask. A third part starting with a
    digit is the broadcast address (``198.51.100.10/24/198.51.100.255``).
    ``IF:LABEL`` names the interface and the address label (``eth0:0``) for
    both IPaddr and IPaddr2. IPv6 takes ``IP[/PREFIX[/IF]]``. Raises ValueError.
    """
    if not text:
        raise ValueError("missing IP address argument")
    parts = text.split("/")
    if len(parts) > 4:
        raise ValueError(f"too many '/' parts in {text!r}")
    try:
        address = ipaddress.ip_address(parts[0])
    except ValueError:
        raise ValueError(f"{parts[0]!r} is not an IP address") from None
    prefixlen: int | None = None
    interface: str | None = None
    label: str | None = None
    broadcast: ipaddress.IPv4Address | None = None
    if len(parts) > 1 and parts[1]:
        prefixlen = _prefix_from_mask(parts[1], address.version)
    third = parts[2] if len(parts) > 2 else ""
    fourth = parts[3] if len(parts) > 3 else ""
    if third[:1].isdigit():
        if len(parts) > 3:
            raise ValueError(f"nothing may follow the broadcast address in {text!r}")
        fourth, third = third, ""
    if third:
        base, colon, suffix = third.partition(":")
        _check_ifname(base)
        interface = base
        if colon:
            if address.version == 6:
                raise ValueError("address labels (IF:LABEL) exist for IPv4 only")
            if not suffix or len(third) >= IFNAMSIZ or any(c in suffix for c in "/ \t"):
                raise ValueError(f"bad label {third!r} (at most {IFNAMSIZ - 1} characters)")
            label = third
    if fourth:
        if address.version == 6:
            raise ValueError("IPv6 has no broadcast address")
        try:
            broadcast = ipaddress.IPv4Address(fourth)
        except ValueError:
            raise ValueError(f"{fourth!r} is not a broadcast address") from None
    return IPArgument(
        address=address,
        prefixlen=prefixlen,
        interface=interface,
        label=label,
        broadcast=broadcast,
    )


# --------------------------------------------------------------------------- findif


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One routing-table entry, as much as findif needs of it."""

    network: Network
    ifname: str | None
    gateway: str | None = None
    table: int = RT_TABLE_MAIN
    type: int = RTN_UNICAST
    metric: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    """Where an address goes: interface, prefix length and (IPv4) broadcast."""

    interface: str
    prefixlen: int
    broadcast: ipaddress.IPv4Address | None


class FindifError(ValueError):
    """No interface or netmask can be found for an address (Heartbeat's "findif failed")."""


def default_broadcast(address: Address, prefixlen: int) -> ipaddress.IPv4Address | None:
    """``ip | ~mask`` for IPv4 networks that have a broadcast address (not /31, /32)."""
    if not isinstance(address, ipaddress.IPv4Address) or prefixlen > 30:
        return None
    return ipaddress.IPv4Network(f"{address}/{prefixlen}", strict=False).broadcast_address


def _example_prefix(address: Address) -> int:
    return 24 if address.version == 4 else 64


def findif(arg: IPArgument, routes: Iterable[Route]) -> Placement:
    """Choose interface and prefix for ``arg`` from the routing table (docs/heartbeat.md#findif).

    Given both an interface and a mask, they are used as written. Otherwise the
    most specific directly connected route of the main table (no gateway, not a
    default route) containing the address is used, restricted to the given
    interface if there is one; equal prefixes go to the lower metric, then to
    the earlier route. A default route alone is never enough.
    """
    address = arg.address
    if arg.interface is not None and arg.prefixlen is not None:
        return Placement(
            interface=arg.interface,
            prefixlen=arg.prefixlen,
            broadcast=arg.broadcast or default_broadcast(address, arg.prefixlen),
        )
    candidates = [
        r
        for r in routes
        if r.network.version == address.version
        and r.table == RT_TABLE_MAIN
        and r.type == RTN_UNICAST
        and r.gateway is None
        and r.ifname is not None
        and r.network.prefixlen > 0
        and address in r.network
        and (arg.interface is None or r.ifname == arg.interface)
    ]
    example = _example_prefix(address)
    if not candidates:
        if arg.interface is not None:
            raise FindifError(
                f"cannot determine the netmask for {address} on {arg.interface}: "
                f"add /CIDR, e.g. {address}/{example}/{arg.interface}"
            )
        raise FindifError(
            f"cannot find an interface for {address}: add /CIDR/IFACE, "
            f"e.g. {address}/{example}/eth0"
        )
    best = min(candidates, key=lambda r: (-r.network.prefixlen, r.metric))
    assert best.ifname is not None
    prefixlen = arg.prefixlen if arg.prefixlen is not None else best.network.prefixlen
    return Placement(
        interface=best.ifname,
        prefixlen=prefixlen,
        broadcast=arg.broadcast or default_broadcast(address, prefixlen),
    )


def free_alias_label(ifname: str, used: Iterable[str]) -> str | None:
    """IPaddr's alias: the first ``IF:N`` (N = 0…511) not in ``used``; None if none fits."""
    taken = set(used)
    for n in range(MAX_ALIAS):
        label = f"{ifname}:{n}"
        if len(label) >= IFNAMSIZ:
            return None
        if label not in taken:
            return label
    return None


# ------------------------------------------------------------- netlink (on trio, no threads)


async def _links(nl: Rtnetlink) -> dict[int, Link]:
    return {link.index: link for link in await nl.links()}


def _name(links: Mapping[int, Link], index: int) -> str:
    link = links.get(index)
    return link.name if link is not None else str(index)


async def read_routes(family: int) -> list[Route]:
    """Snapshot of the kernel's routes of one address family."""
    width = 32 if family == socket.AF_INET else 128
    with Rtnetlink() as nl:
        names = {index: link.name for index, link in (await _links(nl)).items()}
        records = await nl.routes(family)
    routes: list[Route] = []
    for record in records:
        dst = record.dst
        if dst is None:
            dst = ipaddress.IPv4Address(0) if family == socket.AF_INET else ipaddress.IPv6Address(0)
        try:
            network = ipaddress.ip_network(f"{dst}/{record.dst_len}", strict=False)
        except ValueError:
            continue
        if network.max_prefixlen != width:
            continue
        routes.append(
            Route(
                network=network,
                ifname=names.get(record.oif) if record.oif is not None else None,
                gateway=str(record.gateway) if record.gateway is not None else None,
                table=record.table,
                type=record.type,
                metric=record.priority,
            )
        )
    return routes


@dataclass(frozen=True, slots=True, kw_only=True)
class AddPlan:
    address: Address
    interface: str
    prefixlen: int
    broadcast: ipaddress.IPv4Address | None
    label: str | None
    alias: bool  # pick the first free IF:N when no label is given (IPaddr)


@dataclass(frozen=True, slots=True, kw_only=True)
class AddOutcome:
    added: bool  # False: the address was already on this machine
    interface: str
    ifindex: int
    label: str | None
    mac: bytes | None  # None: no ARP on this link (loopback, NOARP, not Ethernet)


class NetlinkFailure(Exception):
    """Adding or removing an address failed; ``str()`` is the sentence to log."""


def _arp_mac(link: Link) -> bytes | None:
    if link.flags & (IFF_LOOPBACK | IFF_NOARP) or link.type != ARPHRD_ETHER:
        return None
    if len(link.address) != 6 or link.address == bytes(6):
        return None
    return link.address


def _copies(records: Iterable[AddressRecord], address: Address) -> list[AddressRecord]:
    """Every copy of ``address`` among the dumped addresses."""
    return [record for record in records if record.address == address]


def _located(
    links: Mapping[int, Link], records: Iterable[AddressRecord], address: Address
) -> AddOutcome | None:
    present = _copies(records, address)
    if not present:
        return None
    first = present[0]
    link = links.get(first.index)
    return AddOutcome(
        added=False,
        interface=_name(links, first.index),
        ifindex=first.index,
        label=first.label,
        mac=_arp_mac(link) if link is not None else None,
    )


async def netlink_locate(address: Address) -> AddOutcome | None:
    """Where ``address`` is configured on this machine, if anywhere."""
    with Rtnetlink() as nl:
        return _located(await _links(nl), await nl.addresses(family_of(address)), address)


async def netlink_add(plan: AddPlan) -> AddOutcome:
    """Add the address and set its link up. Already present anywhere -> not added.

    Once the address is asked for, cancellation waits until the link is up too
    (as long as two bounded requests take), so no half-done change is left behind.
    """
    address = plan.address
    with Rtnetlink() as nl:
        links = await _links(nl)
        records = await nl.addresses(family_of(address))
        located = _located(links, records, address)
        if located is not None:
            return located
        index = next((i for i, link in links.items() if link.name == plan.interface), None)
        if index is None:
            raise NetlinkFailure(f"interface {plan.interface} does not exist")
        label = plan.label
        if label is None and plan.alias and address.version == 4:
            used = [record.label or "" for record in records if record.index == index]
            label = free_alias_label(plan.interface, used)
        v4 = address.version == 4
        with trio.CancelScope(shield=True):  # both changes or none (each request is bounded)
            try:
                await nl.change(
                    partial(
                        address_add_request,
                        index=index,
                        address=address,
                        prefixlen=plan.prefixlen,
                        broadcast=plan.broadcast if v4 else None,
                        label=label if v4 else None,
                        flags=0 if v4 else IFA_F_NODAD,
                    )
                )
            except NetlinkError as exc:
                if exc.errno != errno.EEXIST:
                    raise NetlinkFailure(
                        f"cannot add {address}/{plan.prefixlen} to {plan.interface}: {exc.strerror}"
                    ) from exc
            try:
                await nl.change(partial(link_up_request, index=index))
            except NetlinkError as exc:
                raise NetlinkFailure(f"cannot bring {plan.interface} up: {exc.strerror}") from exc
        return AddOutcome(
            added=True,
            interface=plan.interface,
            ifindex=index,
            label=label,
            mac=_arp_mac(links[index]),
        )


async def netlink_remove(address: Address) -> list[str]:
    """Remove every copy of ``address``; returns the interfaces it was on.

    Cancellation waits until every copy found is deleted (bounded requests).
    """
    removed: list[str] = []
    with Rtnetlink() as nl:
        links = await _links(nl)
        copies = _copies(await nl.addresses(family_of(address)), address)
        with trio.CancelScope(shield=True):  # every copy or none (each request is bounded)
            for record in copies:
                try:
                    await nl.change(
                        partial(
                            address_delete_request,
                            index=record.index,
                            address=address,
                            prefixlen=record.prefixlen,
                        )
                    )
                except NetlinkError as exc:
                    if exc.errno in (errno.EADDRNOTAVAIL, errno.ENODEV):
                        continue
                    raise NetlinkFailure(f"cannot remove {address}: {exc.strerror}") from exc
                removed.append(_name(links, record.index))
    return removed


async def netlink_present(address: Address) -> bool:
    """Is ``address`` configured on any interface of this machine?"""
    with Rtnetlink() as nl:
        return bool(_copies(await nl.addresses(family_of(address)), address))


@dataclass(frozen=True, slots=True, kw_only=True)
class Presence:
    """Where an address is configured and the state of that interface."""

    interface: str
    up: bool  # IFF_UP: administratively up
    running: bool  # IFF_RUNNING: operationally up (carrier)


async def netlink_presence(address: Address) -> Presence | None:
    """The first interface that carries ``address`` and its link state; None: not here."""
    with Rtnetlink() as nl:
        links = await _links(nl)
        copies = _copies(await nl.addresses(family_of(address)), address)
    if not copies:
        return None
    index = copies[0].index
    link = links.get(index)
    flags = link.flags if link is not None else 0
    return Presence(
        interface=_name(links, index),
        up=bool(flags & IFF_UP),
        running=bool(flags & IFF_RUNNING),
    )


def presence_state(presence: Presence | None) -> tuple[MonitorState, str]:
    """The monitor's verdict on a floating IP from where (and whether) it is configured."""
    if presence is None:
        return MonitorState.NOT_RUNNING, "the address is not configured on any interface"
    if not presence.up:
        return MonitorState.FAILED, f"interface {presence.interface} is down"
    if not presence.running:
        return MonitorState.FAILED, f"interface {presence.interface} has no carrier"
    return MonitorState.RUNNING, ""


# --------------------------------------------------------------------------- the agent


class FloatingIP:
    """The built-in IP address agent (Heartbeat's IPaddr / IPaddr2 / IPv6addr).

    ``start`` adds the address (already present anywhere on this machine ⇒
    success, nothing announced), ``stop`` removes every copy (absent ⇒ success),
    ``status`` tells whether it is configured here. ``log_path`` is the script
    Heartbeat would have run, used only in the "Running …" log line so that
    log watchers keep matching.
    """

    def __init__(
        self,
        spec: ResourceSpec,
        *,
        argument: IPArgument,
        flavor: str = "IPaddr",
        arp: ArpPolicy,
        log_path: str | None = None,
    ) -> None:
        self.spec = spec
        self.argument = argument
        self.flavor = flavor
        self.arp = arp
        self.log_path = log_path or flavor
        self._arp_scope: trio.CancelScope | None = None
        self._arp_done: trio.Event | None = None

    def __repr__(self) -> str:
        return f"FloatingIP({self.spec.raw!r})"

    @property
    def _shown(self) -> str:
        return ip_argument_text(self.spec)

    def _fail(self, reason: str) -> ResourceError:
        log.error("%s: %s", self.spec.raw, reason)
        return ResourceError(self.spec.raw, reason)

    def _netlink_failed(self, exc: NetlinkFailure | OSError) -> ResourceError:
        if isinstance(exc, NetlinkFailure):
            return self._fail(str(exc))
        return self._fail(f"netlink: {exc.strerror or exc}")

    async def _placement(self) -> Placement:
        arg = self.argument
        routes: Sequence[Route] = ()
        if arg.interface is None or arg.prefixlen is None:
            try:
                routes = await read_routes(family_of(arg.address))
            except OSError as exc:
                raise self._netlink_failed(exc) from None
        try:
            return findif(arg, routes)
        except FindifError as exc:
            raise self._fail(str(exc)) from None

    async def start(self) -> None:
        log.info("Running %s %s start", self.log_path, self._shown)
        log.debug("%s is pulse's built-in %s agent", self.spec.raw, self.flavor)
        placement = await self._placement()
        plan = AddPlan(
            address=self.argument.address,
            interface=placement.interface,
            prefixlen=placement.prefixlen,
            broadcast=placement.broadcast,
            label=self.argument.label,
            alias=self.flavor == "IPaddr",
        )
        try:
            outcome = await netlink_add(plan)
        except (NetlinkFailure, OSError) as exc:
            raise self._netlink_failed(exc) from None
        if not outcome.added:
            log.info("%s is already configured on %s", self.argument.address, outcome.interface)
            return
        where = outcome.label or outcome.interface
        log.info(
            "Added %s/%d to %s%s",
            self.argument.address,
            placement.prefixlen,
            where,
            f" broadcast {placement.broadcast}" if placement.broadcast else "",
        )
        await self._announce(outcome)

    async def refresh(self) -> None:
        """Announce the address again (gratuitous ARP / unsolicited NA) if it is here.

        Used when this node keeps or re-acquires an address it already had (a healed
        partition, a restart): the LAN's caches may point at another node by now.
        """
        try:
            outcome = await netlink_locate(self.argument.address)
        except OSError as exc:
            log.warning("cannot look up %s: %s", self.argument.address, exc.strerror or exc)
            return
        if outcome is not None:
            log.info("Announcing %s on %s again", self.argument.address, outcome.interface)
            await self._announce(outcome)

    async def _announce(self, outcome: AddOutcome) -> None:
        if outcome.mac is None:
            log.debug(
                "no ARP for %s: %s does not use ARP", self.argument.address, outcome.interface
            )
            return
        if self.arp.count == 0:
            return
        what = Announcement(
            ifname=outcome.interface,
            ifindex=outcome.ifindex,
            mac=outcome.mac,
            address=self.argument.address,
        )
        try:
            announcer = await Announcer.open(what, self.arp)
        except OSError as exc:
            log.warning("cannot announce %s on %s: %s", what.address, what.ifname, exc)
            return
        try:
            await announcer.first()
        except OSError as exc:
            announcer.close()
            log.warning("cannot announce %s on %s: %s", what.address, what.ifname, exc)
            return
        except BaseException:
            announcer.close()
            raise
        self._spawn_rest(announcer)

    def _spawn_rest(self, announcer: Announcer) -> None:
        self._cancel_announcement()
        scope = trio.CancelScope()
        done = trio.Event()
        self._arp_scope, self._arp_done = scope, done
        what = announcer.what

        async def rest() -> None:
            try:
                with scope:
                    await announcer.rest()
            except OSError as exc:
                log.warning("announcing %s on %s failed: %s", what.address, what.ifname, exc)
            except Exception:  # a system task must never raise
                log.exception("announcing %s on %s crashed", what.address, what.ifname)
            finally:
                announcer.close()
                done.set()

        trio.lowlevel.spawn_system_task(rest, name=f"announce {what.address}")

    def _cancel_announcement(self) -> None:
        if self._arp_scope is not None:
            self._arp_scope.cancel()

    async def wait_announced(self) -> None:
        """Wait until the background announcement (if any) has finished or was cancelled."""
        if self._arp_done is not None:
            await self._arp_done.wait()

    async def stop(self) -> None:
        log.info("Running %s %s stop", self.log_path, self._shown)
        self._cancel_announcement()
        try:
            removed = await netlink_remove(self.argument.address)
        except (NetlinkFailure, OSError) as exc:
            raise self._netlink_failed(exc) from None
        if removed:
            log.info("Removed %s from %s", self.argument.address, ", ".join(removed))
        else:
            log.debug("%s was not configured here: nothing to remove", self.argument.address)

    async def status(self) -> bool:
        try:
            return await netlink_present(self.argument.address)
        except OSError as exc:
            raise ResourceError(self.spec.raw, f"netlink: {exc.strerror or exc}") from None

    async def monitor(self, timeout: float) -> MonitorResult:
        """Still on an interface, and that interface up with a carrier (netlink, no process).

        A netlink request is bounded by the socket's own timeout; ``timeout`` bounds
        the whole check as well.
        """
        raw = self.spec.raw
        with trio.move_on_after(timeout) as scope:
            try:
                presence = await netlink_presence(self.argument.address)
            except OSError as exc:
                return monitor_result(
                    raw, MonitorState.FAILED, reason=f"netlink: {exc.strerror or exc}"
                )
        if scope.cancelled_caught:
            return monitor_result(
                raw, MonitorState.FAILED, reason=f"monitor timed out after {timeout:g}s"
            )
        state, reason = presence_state(presence)
        if reason:
            reason = f"{self.argument.address}: {reason}"
        return monitor_result(raw, state, reason=reason)


def arp_policy_for(flavor: str, overrides: Mapping[str, ArpPolicy] | None = None) -> ArpPolicy:
    """Heartbeat's defaults per agent name (docs/heartbeat.md#gratuitous-arp), unless overridden."""
    if overrides and flavor in overrides:
        return overrides[flavor]
    return IPADDR_ARP if flavor == "IPaddr" else IPADDR2_ARP
