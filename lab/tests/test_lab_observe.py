"""The pure timeline helpers of pulse_lab.observe that bench/chaos's figures rest on."""

from __future__ import annotations

from pulse_lab.observe import holders_at, holders_between, overlaps

A, B, AB, NONE = frozenset({"a"}), frozenset({"b"}), frozenset({"a", "b"}), frozenset()
TIMELINE = [(1.0, A), (2.0, AB), (2.5, B), (4.0, AB), (4.25, A)]


def test_holders_at_is_the_last_change_at_or_before_the_time() -> None:
    assert holders_at(TIMELINE, 0.5) == NONE
    assert holders_at(TIMELINE, 2.0) == AB
    assert holders_at(TIMELINE, 3.0) == B
    assert holders_at(TIMELINE, 9.0) == A


def test_overlaps_are_the_stretches_with_two_holders_clipped_to_the_window() -> None:
    assert overlaps(TIMELINE, 0.0, 9.0) == [(2.0, 2.5), (4.0, 4.25)]
    assert overlaps(TIMELINE, 2.2, 4.1) == [(2.2, 2.5), (4.0, 4.1)]
    assert overlaps(TIMELINE, 2.6, 3.9) == []


def test_an_overlap_still_open_at_the_end_of_the_window_counts_up_to_it() -> None:
    assert overlaps([(0.0, AB)], 1.0, 3.0) == [(1.0, 3.0)]


def test_holders_between_collects_every_node_that_held_in_the_window() -> None:
    assert holders_between(TIMELINE, 2.6, 3.0) == {"b"}
    assert holders_between(TIMELINE, 1.5, 2.6) == {"a", "b"}
