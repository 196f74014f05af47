"""Scenario builders and an in-memory wire for the pure protocol engine tests.

No trio, no sockets, no sleeping: every engine is driven at exact virtual times.
:class:`Wire` passes each :class:`~pulse.protocol.events.Transmit` of one engine to the
``receive`` of every other engine, once per shared link, optionally dropping,
duplicating or delaying packets with a seeded ``random.Random``.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from pulse.config.model import (
    AuthKey,
    AuthKeys,
    AuthMethod,
    BcastMedium,
    Config,
    Medium,
    PingMedium,
    Timing,
)
from pulse.protocol.engine import Engine
from pulse.protocol.events import Log, NodeStatus, NodeStatusChanged, Output, Transmit
from pulse.wire.message import FieldType, Message

WALL_EPOCH = 1_800_000_000.0
AUTH = AuthKeys(outbound=1, keys=(AuthKey(index=1, method=AuthMethod.SHA1, key=b"secret"),))


def uuid_of(name: str) -> bytes:
    return hashlib.md5(name.encode()).digest()


def make_config(
    nodes: Sequence[str] = ("alpha", "beta"),
    *,
    links: Sequence[str] = ("eth0",),
    keepalive: float = 1.0,
    deadtime: float = 3.0,
    warntime: float | None = None,
    initdead: float | None = None,
    max_rexmit_delay: int = 250,
    ping: Sequence[str] = (),
    deadping: float | None = None,
    hopfudge: int = 1,
) -> Config:
    """A config with times in seconds (converted to Heartbeat's milliseconds)."""
    ms = lambda s: round(s * 1000)  # noqa: E731
    timing = Timing(
        keepalive=ms(keepalive),
        deadtime=ms(deadtime),
        warntime=ms(warntime if warntime is not None else deadtime / 2),
        initdead=ms(initdead if initdead is not None else 2 * deadtime),
        deadping=ms(deadping if deadping is not None else deadtime),
    )
    media: list[Medium] = [BcastMedium(interface=link) for link in links]
    media += [PingMedium(host=host) for host in ping]
    return Config(
        nodes=tuple(nodes),
        media=tuple(media),
        auth=AUTH,
        timing=timing,
        max_rexmit_delay=max_rexmit_delay,
        hopfudge=hopfudge,
    )


def make_engine(
    config: Config,
    local: str,
    *,
    generation: int = 1000,
    now: float = 0.0,
    seed: int = 0,
    wallclock: Callable[[], float] | None = None,
    coalesce: bool = False,
) -> Engine:
    """An engine for protocol tests; statuses on a fixed keepalive grid unless *coalesce*."""
    return Engine(
        config=config,
        local=local,
        generation=generation,
        uuid=uuid_of(local),
        now=now,
        wallclock=wallclock or (lambda: WALL_EPOCH),
        loadavg=lambda: "0.00 0.01 0.05 1/100 4242",
        rng=random.Random(f"{seed}-{local}"),
        coalesce=coalesce,
    )


def peer_message(
    t: str,
    src: str,
    *,
    seq: int | None = None,
    hg: int = 7,
    extra: Iterable[tuple[str, str]] = (),
    dest: str | None = None,
) -> Message:
    """A hand-made message from *src* with a valid envelope (as a peer would send)."""
    pairs: list[tuple[str, str]] = [("t", t), *extra]
    if dest is not None:
        pairs.append(("dest", dest))
    pairs.append(("src", src))
    msg = Message.of(*pairs).with_field("srcuuid", uuid_of(src), FieldType.BINARY)
    if seq is not None:
        msg = msg.with_field("seq", format(seq, "x"))
    msg = msg.with_field("hg", format(hg, "x"))
    msg = msg.with_field("ts", format(int(WALL_EPOCH), "x"))
    return msg


def status_message(
    src: str, seq: int, *, st: str = "active", dt_ms: int = 3000, hg: int = 7, protocol: bool = True
) -> Message:
    extra = [("st", st), ("dt", format(dt_ms, "x"))]
    if protocol:
        extra.append(("protocol", "1"))
    return peer_message("status", src, seq=seq, hg=hg, extra=extra)


def run_timers(engine: Engine, until: float) -> list[Output]:
    """Tick *engine* at each of its deadlines up to *until*, as the daemon's timer task
    does (an engine whose timers run late believes its own process was stalled)."""
    out: list[Output] = []
    for _ in range(10_000):
        due = engine.next_deadline()
        if due > until:
            return out
        out += engine.tick(due)
    raise AssertionError("the engine's timers never got past the time asked for")


def transmits(outputs: Iterable[Output]) -> list[Message]:
    return [o.message for o in outputs if isinstance(o, Transmit)]


def of_type(outputs: Iterable[Output], kind: type) -> list:  # type: ignore[type-arg]
    return [o for o in outputs if isinstance(o, kind)]


def log_texts(outputs: Iterable[Output]) -> list[str]:
    return [o.text for o in outputs if isinstance(o, Log)]


@dataclass(order=True)
class _Packet:
    when: float
    order: int
    sender: str = field(compare=False)
    receiver: str = field(compare=False)
    link: str = field(compare=False)
    message: Message = field(compare=False)


@dataclass
class Record:
    """One output, with the node that produced it and the virtual time it happened."""

    node: str
    at: float
    output: Output


class Wire:
    """Engines of one cluster joined by in-memory media.

    ``loss``/``duplicate`` are probabilities and ``jitter`` a maximum extra delay in
    seconds (on top of the fixed ``delay``), all drawn from ``random.Random(seed)``.
    ``cut(node, link)`` pulls a cable, ``stop(node)`` kills a node (no more ticks or
    packets).
    """

    def __init__(
        self,
        config: Config,
        *,
        names: Sequence[str] | None = None,
        seed: int = 0,
        loss: float = 0.0,
        duplicate: float = 0.0,
        jitter: float = 0.0,
        generations: dict[str, int] | None = None,
        start_times: dict[str, float] | None = None,
        coalesce: bool = False,
        delay: float = 0.0,
    ) -> None:
        self.config = config
        self.coalesce = coalesce
        #: per node, the distinct virtual times at which it had work (a tick or a packet)
        self.wakes: dict[str, set[float]] = {}
        self.rng = random.Random(seed)
        self.loss = loss
        self.duplicate = duplicate
        self.jitter = jitter
        self.delay = delay  # fixed propagation delay of every packet (keeps the order)
        self.links = [m.name for m in config.links]
        self.engines: dict[str, Engine] = {}
        self.records: list[Record] = []
        self.cut_links: set[tuple[str, str]] = set()
        self.stopped: set[str] = set()
        self.now = 0.0
        self._queue: list[_Packet] = []
        self._order = itertools.count()
        self._pending_start: dict[str, float] = {}
        generations = generations or {}
        start_times = start_times or {}
        for name in names if names is not None else config.nodes:
            self.add(name, generation=generations.get(name, 1000), at=start_times.get(name, 0.0))

    # ------------------------------------------------------------------ control

    def add(self, name: str, *, generation: int = 1000, at: float = 0.0) -> Engine:
        engine = make_engine(
            self.config, name, generation=generation, now=at, seed=0, coalesce=self.coalesce
        )
        self.engines[name] = engine
        self.stopped.discard(name)
        self._pending_start[name] = at
        return engine

    def stop(self, name: str) -> None:
        self.stopped.add(name)

    def cut(self, name: str, link: str) -> None:
        self.cut_links.add((name, link))

    def mend(self, name: str, link: str) -> None:
        self.cut_links.discard((name, link))

    # ------------------------------------------------------------------ running

    def _record(self, name: str, at: float, outputs: list[Output]) -> None:
        for out in outputs:
            self.records.append(Record(node=name, at=at, output=out))
            if isinstance(out, Transmit):
                self._broadcast(name, out.message, at)

    def _broadcast(self, sender: str, message: Message, at: float) -> None:
        for link in self.links:
            if (sender, link) in self.cut_links:
                continue
            for receiver in self.engines:
                if receiver == sender or (receiver, link) in self.cut_links:
                    continue
                copies = 1
                if self.loss and self.rng.random() < self.loss:
                    copies = 0
                elif self.duplicate and self.rng.random() < self.duplicate:
                    copies = 2
                for _ in range(copies):
                    delay = self.delay
                    if self.jitter:
                        delay += self.rng.uniform(0, self.jitter)
                    heapq.heappush(
                        self._queue,
                        _Packet(at + delay, next(self._order), sender, receiver, link, message),
                    )

    def inject(self, receiver: str, message: Message, link: str, at: float) -> list[Output]:
        """Hand *message* to *receiver* directly (a hand-made peer packet)."""
        self.now = max(self.now, at)
        outputs = self.engines[receiver].receive(message, link, at)
        self._record(receiver, at, outputs)
        return outputs

    def run_until(self, end: float, *, max_steps: int = 200_000) -> None:
        """Advance virtual time to *end*, delivering packets and firing timers in order."""
        for _ in range(max_steps):
            candidates: list[tuple[float, int, str]] = []
            for name, when in self._pending_start.items():
                candidates.append((when, 0, name))
            if self._queue:
                candidates.append((self._queue[0].when, 1, ""))
            for name, engine in self.engines.items():
                if name not in self.stopped and name not in self._pending_start:
                    candidates.append((engine.next_deadline(), 2, name))
            if not candidates:
                break
            when, kind, name = min(candidates)
            if when > end:
                break
            self.now = when
            if kind == 0:
                del self._pending_start[name]
                if name not in self.stopped:
                    self._record(name, when, self.engines[name].start(when))
            elif kind == 1:
                packet = heapq.heappop(self._queue)
                if packet.receiver in self.stopped or packet.sender in self.stopped:
                    continue
                if (packet.receiver, packet.link) in self.cut_links:
                    continue
                engine = self.engines[packet.receiver]
                self.wakes.setdefault(packet.receiver, set()).add(when)
                self._record(
                    packet.receiver, when, engine.receive(packet.message, packet.link, when)
                )
            else:
                self.wakes.setdefault(name, set()).add(when)
                self._record(name, when, self.engines[name].tick(when))
        else:
            raise AssertionError("scenario did not settle within max_steps")
        self.now = end

    # ------------------------------------------------------------------ queries

    def outputs(self, node: str, kind: type | None = None) -> list[Record]:
        return [
            r
            for r in self.records
            if r.node == node and (kind is None or isinstance(r.output, kind))
        ]

    def logs(self, node: str) -> list[tuple[float, str]]:
        return [(r.at, r.output.text) for r in self.outputs(node, Log)]  # type: ignore[union-attr]

    def sent(self, node: str, t: str | None = None) -> list[tuple[float, Message]]:
        return [
            (r.at, r.output.message)  # type: ignore[union-attr]
            for r in self.outputs(node, Transmit)
            if t is None or r.output.message.type == t  # type: ignore[union-attr]
        ]


def deaths(wire: Wire, node: str) -> list[tuple[str, float]]:
    """(dead node, virtual time) of every death *node* declared."""
    return [
        (r.output.node, r.output.at)  # type: ignore[attr-defined]
        for r in wire.outputs(node, NodeStatusChanged)
        if r.output.new is NodeStatus.DEAD  # type: ignore[attr-defined]
    ]


def two_nodes(**timing: float) -> Wire:
    """alpha and beta on one medium, both started at t=0."""
    return Wire(make_config(("alpha", "beta"), **timing))  # type: ignore[arg-type]
