"""The metrics of two real daemons (fake agents), over pulsectl and over HTTP, parsed
by prometheus_client's own text parser."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import trio
from daemon_support import runs_on, socket_of, start_daemons
from prometheus_client.parser import text_string_to_metric_families

from pulse.cli import ctl
from pulse.config.model import MetricsOptions, Timing
from pulse.testing import FakeNetwork
from pulse.testing.agents import FakeResources, two_node_config

CONFIG = two_node_config(
    Timing(keepalive=100, deadtime=500, warntime=300, initdead=1000, deadping=500)
)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def http_get(port: int, path: str) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    return data


async def test_metrics_say_who_holds_what_and_count_packets_and_failovers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = FakeResources()
    network = FakeNetwork()
    config = dataclasses.replace(CONFIG, metrics=MetricsOptions(host="127.0.0.1", port=0))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            daemons = await start_daemons(
                nursery, config, world, network, tmp_path,
                prime={"serve_metrics": True}, calc={"serve_metrics": False},
            )  # fmt: skip
            await runs_on(world, {"prime"})

            calc_metrics = ["-s", socket_of(tmp_path, "calc"), "metrics"]
            code = await trio.to_thread.run_sync(ctl.main, calc_metrics)
            text = capsys.readouterr().out
            assert code == 0
            got = samples(text)
            assert got[("pulse_node_status", (("node", "prime"), ("status", "active")))] == 1
            assert got[("pulse_node_status", (("node", "prime"), ("status", "dead")))] == 0
            assert got[("pulse_link_up", (("link", "eth0"), ("node", "prime")))] == 1
            assert got[("pulse_group_holder", (("group", "Fake::web"), ("node", "prime")))] == 1
            assert got[("pulse_group_running", (("group", "Fake::web"),))] == 1
            assert got[("pulse_packets_accepted_total", ())] > 0
            assert got[("process_resident_memory_bytes", ())] > 1_000_000

            # prime serves the same over HTTP (port 0: the kernel chose one).
            port = daemons["prime"].metrics_port
            reply = await http_get(port, "/metrics")
            head, _, body = reply.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert b"Content-Type: text/plain; version=0.0.4" in head
            got = samples(body.decode())
            key = ("pulse_group_state", (("group", "Fake::web"), ("state", "running")))
            assert got[key] == 1
            assert got[("pulse_groups_acquired_total", (("group", "Fake::web"),))] == 1
            assert (await http_get(port, "/nothing")).startswith(b"HTTP/1.1 404")

            # calc takes web over when prime is cut off: a failover, counted by its cause.
            network.cut("prime", "eth0")
            await runs_on(world, {"calc"}, partly=True)
            await trio.to_thread.run_sync(ctl.main, calc_metrics)
            got = samples(capsys.readouterr().out)
            assert got[("pulse_failovers_total", (("cause", "node-dead"),))] == 1
            assert got[("pulse_last_failover_timestamp_seconds", ())] > 1e9
            nursery.cancel_scope.cancel()
