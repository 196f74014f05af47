"""Core support this plugin relies on: a listener's own counters in ``pulsectl plugins``."""

from __future__ import annotations

from pulse.cli.ctl import format_plugins
from pulse.plugin.api import ClusterEvent
from pulse.plugin.bus import EventBus


class Counting:
    name = "counting"
    timeout = 1.0

    async def handle(self, event: ClusterEvent) -> None:
        return None

    def statistics(self) -> dict[str, object]:
        return {"mail_sent": 3, "mail_failed": 1}


class Broken(Counting):
    name = "broken"

    def statistics(self) -> dict[str, object]:
        raise RuntimeError("boom")


class Plain:
    name = "plain"
    timeout = 1.0

    async def handle(self, event: ClusterEvent) -> None:
        return None


def test_listener_statistics_appear_as_details_next_to_the_bus_counters() -> None:
    stats = EventBus([Counting(), Plain()]).statistics()
    assert stats["counting"]["details"] == {"mail_sent": 3, "mail_failed": 1}
    assert stats["counting"]["failures"] == 0
    assert "details" not in stats["plain"]


def test_a_failing_statistics_method_is_reported_not_raised() -> None:
    stats = EventBus([Broken()]).statistics()
    assert stats["broken"]["details"] == {"error": "statistics() failed: boom"}


def test_pulsectl_plugins_prints_listener_details() -> None:
    info = {
        "loaded": [{"name": "mailto", "version": "0.1.0", "module": "pulse_mailto"}],
        "listeners": EventBus([Counting()]).statistics(),
    }
    assert "counting: mail_sent 3, mail_failed 1" in format_plugins(info).splitlines()
