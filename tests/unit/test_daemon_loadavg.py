"""The ``ld`` field's load average is read when a message needs it, at most every
``refresh`` seconds, without a task or a thread (pulse.daemon.LoadAverage)."""

from __future__ import annotations

from pathlib import Path

from pulse.daemon import LoadAverage


def test_the_load_average_is_read_again_only_once_it_is_older_than_the_refresh(
    tmp_path: Path,
) -> None:
    path = tmp_path / "loadavg"
    path.write_text("0.10 0.20 0.30 1/100 4242\n")
    now = [100.0]
    load = LoadAverage(str(path), refresh=5.0, clock=lambda: now[0])
    assert load() == "0.10 0.20 0.30 1/100 4242"
    path.write_text("1.00 0.50 0.25 2/100 4243\n")
    now[0] = 104.9
    assert load() == "0.10 0.20 0.30 1/100 4242"  # still fresh: no read
    now[0] = 105.0
    assert load() == "1.00 0.50 0.25 2/100 4243"


def test_an_unreadable_load_average_is_sent_as_n_a(tmp_path: Path) -> None:
    load = LoadAverage(str(tmp_path / "missing"), refresh=5.0, clock=lambda: 0.0)
    assert load() == "n/a"
