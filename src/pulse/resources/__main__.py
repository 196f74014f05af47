"""Run resource operations by hand, as ``ResourceManager`` lets a Heartbeat admin do.

::

    python -m pulse.resources start IPaddr2::198.51.100.10/24/eth0
    python -m pulse.resources status ocf:heartbeat:Dummy::state=/run/d.state
    python -m pulse.resources monitor 198.51.100.10/24/eth0 apache2   # monitor_agent
    python -m pulse.resources takegroup 198.51.100.10 apache2     # acquire_group
    python -m pulse.resources givegroup 198.51.100.10 apache2     # release_group

Exit status: 0 success / running, 3 ``status`` or ``monitor`` found a resource
not running, 1 failure (a ``monitor`` that found one failed). ``monitor`` prints
``RESOURCE STATE [CODE] REASON`` per resource (docs/resources.md#monitoring).
``start`` and ``takegroup`` wait until the gratuitous ARPs of the addresses they
added have all been sent. The end-to-end tests drive agents
inside network namespaces through this entry point
(``ip netns exec NS python -m pulse.resources ...``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import trio

from pulse.config.model import AuthKeys, Config, ResourceSpec
from pulse.resources.agents import make_agent
from pulse.resources.arp import ArpPolicy
from pulse.resources.base import AgentTimeouts, MonitorState, ResourceAgent, ResourceError
from pulse.resources.group import acquire_group, release_group
from pulse.resources.ipaddr import IP_AGENTS, FloatingIP, is_bare_ip
from pulse.resources.monitor import monitor_agent
from pulse.resources.scripts import DEFAULT_INIT_DIR, DEFAULT_RESOURCE_DIR

OPS = ("start", "stop", "status", "monitor", "takegroup", "givegroup")


def spec_of(word: str) -> ResourceSpec:
    """A haresources word -> ResourceSpec, as ResourceManager's canonname/resource2arg."""
    if is_bare_ip(word):
        return ResourceSpec(raw=word, agent="IPaddr", args=(word,))
    agent, sep, rest = word.partition("::")
    if not sep:
        return ResourceSpec(raw=word, agent=word)
    if agent in IP_AGENTS:
        return ResourceSpec(raw=word, agent=agent, args=(rest,))
    return ResourceSpec(raw=word, agent=agent, args=tuple(rest.split("::")))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pulse.resources", description=__doc__.split("\n")[0]
    )
    p.add_argument("op", choices=OPS)
    p.add_argument("resources", nargs="+", metavar="RESOURCE")
    p.add_argument("--resource-dir", default=DEFAULT_RESOURCE_DIR)
    p.add_argument("--init-dir", default=DEFAULT_INIT_DIR)
    p.add_argument("--timeout", type=float, default=None, help="seconds for every operation")
    p.add_argument("--kill-grace", type=float, default=5.0)
    p.add_argument("--arp-count", type=int, default=None)
    p.add_argument("--arp-interval", type=float, default=None)
    p.add_argument("--stop-retries", type=int, default=10)
    p.add_argument("--retry-delay", type=float, default=1.0)
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


async def _main(args: argparse.Namespace) -> int:
    log = logging.getLogger("pulse.resources")
    config = Config(
        nodes=(),
        media=(),
        auth=AuthKeys(outbound=1, keys=()),
        resource_dir=args.resource_dir,
    )
    if args.timeout is not None:
        timeouts = AgentTimeouts(
            start=args.timeout, stop=args.timeout, status=args.timeout, kill_grace=args.kill_grace
        )
    else:
        timeouts = AgentTimeouts(kill_grace=args.kill_grace)
    env = dict(item.split("=", 1) for item in args.env)
    arp = None
    if args.arp_count is not None or args.arp_interval is not None:
        policy = ArpPolicy(
            count=args.arp_count if args.arp_count is not None else 5,
            interval=args.arp_interval if args.arp_interval is not None else 0.2,
        )
        arp = dict.fromkeys(IP_AGENTS, policy)
    agents: list[ResourceAgent] = [
        make_agent(spec_of(w), config, timeouts=timeouts, env=env, init_dir=args.init_dir, arp=arp)
        for w in args.resources
    ]
    rc = 0
    try:
        if args.op == "start":
            for agent in agents:
                await agent.start()
        elif args.op == "stop":
            for agent in reversed(agents):
                await agent.stop()
        elif args.op == "status":
            for agent in agents:
                running = await agent.status()
                print(f"{agent.spec.raw} {'running' if running else 'stopped'}")
                if not running:
                    rc = 3
        elif args.op == "monitor":
            for agent in agents:
                seen = await monitor_agent(agent, timeout=timeouts.status)
                code = "" if seen.code is None else f" {seen.code}"
                print(f"{agent.spec.raw} {seen.state.value}{code} {seen.reason}".rstrip())
                if seen.state is MonitorState.FAILED:
                    rc = 1
                elif seen.state is MonitorState.NOT_RUNNING and rc == 0:
                    rc = 3
        elif args.op == "takegroup":
            result = await acquire_group(agents, log=log)
            rc = 0 if result.ok else 1
        else:
            result = await release_group(
                agents, log=log, stop_retries=args.stop_retries, retry_delay=args.retry_delay
            )
            rc = 0 if result.ok else 1
    except ResourceError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        rc = 1
    for agent in agents:
        if isinstance(agent, FloatingIP):
            await agent.wait_announced()
    return rc


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(levelname)s: %(message)s",
    )
    if args.verbose:
        logging.getLogger("pulse").setLevel(logging.DEBUG)
    return trio.run(_main, args)


if __name__ == "__main__":
    sys.exit(main())
