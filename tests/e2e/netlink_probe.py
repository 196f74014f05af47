"""Ask the kernel of one namespace through pulse's rtnetlink client, or through pyroute2.

Sockets belong to the network namespace of the process that opens them, so the
end-to-end netlink tests run this script inside a node:
``ip netns exec NS python netlink_probe.py OP ARG...``. It prints one JSON value.

pulse's side (``pulse.resources.ipaddr`` and ``pulse.resources.netlink``):

* ``add ADDRESS PREFIXLEN IFACE [--broadcast B] [--label L] [--alias]``: netlink_add,
  prints the outcome (``mac`` in hex);
* ``remove ADDRESS``, ``present ADDRESS``: netlink_remove, netlink_present;
* ``routes FAMILY`` (4 or 6): read_routes;
* ``links``, ``addresses FAMILY``: the raw dumps;
* ``refuse``: an address with prefix length 33 on ``lo``, which the kernel refuses:
  prints errno, strerror and detail.

The oracle (pyroute2, imported only here): ``oracle-routes FAMILY``,
``oracle-links``, ``oracle-addresses FAMILY``, in the same shapes.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import socket
import sys
from functools import partial
from typing import Any

import trio

from pulse.resources.ipaddr import (
    AddPlan,
    netlink_add,
    netlink_present,
    netlink_remove,
    read_routes,
)
from pulse.resources.netlink import NetlinkError, Rtnetlink, address_add_request

FAMILIES = {"4": socket.AF_INET, "6": socket.AF_INET6}
ZERO = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}


def route_row(
    dst: str, ifname: str | None, gateway: str | None, table: int, kind: int, metric: int
) -> list[Any]:
    return [dst, ifname, gateway, table, kind, metric]


async def ours(op: str, args: argparse.Namespace) -> Any:
    if op == "add":
        plan = AddPlan(
            address=ipaddress.ip_address(args.args[0]),
            prefixlen=int(args.args[1]),
            interface=args.args[2],
            broadcast=ipaddress.IPv4Address(args.broadcast) if args.broadcast else None,
            label=args.label,
            alias=args.alias,
        )
        outcome = dataclasses.asdict(await netlink_add(plan))
        return dict(outcome, mac=outcome["mac"].hex() if outcome["mac"] else None)
    if op == "remove":
        return await netlink_remove(ipaddress.ip_address(args.args[0]))
    if op == "present":
        return await netlink_present(ipaddress.ip_address(args.args[0]))
    if op == "routes":
        return [
            route_row(str(r.network), r.ifname, r.gateway, r.table, r.type, r.metric)
            for r in await read_routes(FAMILIES[args.args[0]])
        ]
    with Rtnetlink() as nl:
        if op == "links":
            return [[x.index, x.name, x.type, x.flags, x.address.hex()] for x in await nl.links()]
        if op == "addresses":
            return [
                [a.index, a.prefixlen, str(a.address), a.label]
                for a in await nl.addresses(FAMILIES[args.args[0]])
            ]
        if op == "refuse":
            try:
                too_long = ipaddress.IPv4Address("203.0.113.9")
                await nl.change(
                    partial(address_add_request, index=1, address=too_long, prefixlen=33)
                )
            except NetlinkError as exc:
                return [exc.errno, exc.strerror, exc.detail]
            return None
    raise SystemExit(f"unknown operation {op}")


def oracle(op: str, args: argparse.Namespace) -> Any:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = list(ipr.link("dump"))
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in links}
        if op == "oracle-links":
            return [
                [
                    link["index"],
                    link.get_attr("IFLA_IFNAME"),
                    link["ifi_type"],
                    link["flags"],
                    (link.get_attr("IFLA_ADDRESS") or "").replace(":", ""),
                ]
                for link in links
            ]
        family = FAMILIES[args.args[0]]
        if op == "oracle-addresses":
            return [
                [
                    msg["index"],
                    msg["prefixlen"],
                    msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS"),
                    msg.get_attr("IFA_LABEL"),
                ]
                for msg in ipr.addr("dump", family=family)
            ]
        if op == "oracle-routes":
            rows = []
            for msg in ipr.route("dump", family=family):
                dst = f"{msg.get_attr('RTA_DST') or ZERO[family]}/{msg['dst_len']}"
                oif = msg.get_attr("RTA_OIF")
                rows.append(
                    route_row(
                        str(ipaddress.ip_network(dst, strict=False)),
                        names.get(oif) if oif is not None else None,
                        msg.get_attr("RTA_GATEWAY"),
                        msg.get_attr("RTA_TABLE") or msg["table"],
                        msg["type"],
                        msg.get_attr("RTA_PRIORITY") or 0,
                    )
                )
            return rows
    raise SystemExit(f"unknown operation {op}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("op")
    parser.add_argument("args", nargs="*")
    parser.add_argument("--broadcast")
    parser.add_argument("--label")
    parser.add_argument("--alias", action="store_true")
    args = parser.parse_args()
    if args.op.startswith("oracle-"):
        result = oracle(args.op, args)
    else:
        result = trio.run(ours, args.op, args)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
