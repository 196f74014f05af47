"""The pure recovery policy (docs/resources.md#recovery): fail counts, thresholds,
failure_timeout, on_fail, maintenance and cleanup, with times passed in."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulse.config.model import OnFail, ResourceGroup, ResourceSpec
from pulse.failover.recovery import (
    Action,
    RecoveryState,
    ResourcePolicy,
    duration_text,
    restart_plan,
)

VIP, WEB, MAIL = "198.51.100.10/24/eth0", "apache2", "MailTo::ops@example.com"


def group(
    *,
    on_fail: OnFail = OnFail.RESTART,
    threshold: int = 3,
    failure_timeout: int | None = 600_000,
    overrides: dict[str, OnFail] | None = None,
) -> ResourceGroup:
    specs = tuple(
        ResourceSpec(raw=word, agent=word.split("::")[0], on_fail=(overrides or {}).get(word))
        for word in (VIP, WEB, MAIL)
    )
    return ResourceGroup(
        node="prime",
        resources=specs,
        on_fail=on_fail,
        migration_threshold=threshold,
        failure_timeout=failure_timeout,
    )


WEBGROUP = group()


def test_a_first_failure_restarts_the_resource_and_those_after_it_in_place() -> None:
    state, decision = RecoveryState().failed(WEBGROUP, WEB, "prime", now=100.0)
    assert decision.action is Action.RESTART
    assert decision.stop == (MAIL, WEB)
    assert decision.start == (WEB, MAIL)
    assert decision.count == 1
    assert decision.reason == (
        f"apache2 failed once in 10m on prime: restarting {WEB}, {MAIL} in place "
        f"(1 of 3 before {VIP} moves)"
    )
    assert state.fail_count(WEB, "prime", now=100.0) == 1
    assert not state.refuses(VIP, "prime", now=100.0)


def test_the_third_failure_within_the_window_moves_the_group_and_the_node_refuses_it() -> None:
    state = RecoveryState()
    actions = []
    for t in (0.0, 60.0, 120.0):
        state, decision = state.failed(WEBGROUP, WEB, "prime", now=t)
        actions.append(decision.action)
    assert actions == [Action.RESTART, Action.RESTART, Action.MOVE]
    assert decision.reason == (
        f"apache2 failed 3 times in 10m on prime: moving {VIP} (migration_threshold 3 reached)"
    )
    assert (decision.stop, decision.start) == ((), ())
    assert state.refuses(VIP, "prime", now=121.0, failure_timeout=600.0)
    assert not state.refuses(VIP, "calc", now=121.0, failure_timeout=600.0)


def test_failures_older_than_failure_timeout_are_forgotten() -> None:
    state = RecoveryState()
    for t in (0.0, 700.0, 1400.0):  # 10m apart and more: never two in one window
        state, decision = state.failed(WEBGROUP, WEB, "prime", now=t)
        assert (decision.action, decision.count) == (Action.RESTART, 1)
    assert state.fail_count(WEB, "prime", now=1400.0, failure_timeout=600.0) == 1
    assert state.fail_count(WEB, "prime", now=1400.0) == 1  # the older ones were dropped
    state = state.expire(now=2000.0 + 1, groups=[WEBGROUP])
    assert state.failures == {}


def test_the_refusal_of_a_moved_group_ends_with_its_failure_timeout() -> None:
    state = RecoveryState()
    for t in (0.0, 1.0, 2.0):
        state, _ = state.failed(WEBGROUP, WEB, "prime", now=t)
    assert state.refuses(VIP, "prime", now=601.0, failure_timeout=600.0)
    assert not state.refuses(VIP, "prime", now=602.0, failure_timeout=600.0)
    expired = state.expire(now=602.0, groups=[WEBGROUP])
    assert expired.refused == {}
    assert expired.fail_count(WEB, "prime", now=602.0) == 0


def test_a_refusal_says_when_its_failure_timeout_ends_it_and_none_without_one() -> None:
    state = RecoveryState()
    assert state.refusal_ends(WEBGROUP, "prime") is None
    for t in (0.0, 1.0, 2.0):
        state, _ = state.failed(WEBGROUP, WEB, "prime", now=t)
    assert state.refusal_ends(WEBGROUP, "prime") == 602.0
    assert state.refusal_ends(WEBGROUP, "calc") is None
    assert state.expire(now=602.0, groups=[WEBGROUP]).refusal_ends(WEBGROUP, "prime") is None
    forever = group(failure_timeout=None)
    state = RecoveryState()
    for t in (0.0, 1.0, 2.0):
        state, _ = state.failed(forever, WEB, "prime", now=t)
    assert state.refusal_ends(forever, "prime") is None  # only cleanup lifts it


def test_without_failure_timeout_failures_and_refusals_last_until_cleanup() -> None:
    forever = group(failure_timeout=None)
    state = RecoveryState()
    for t in (0.0, 1e6, 2e6):
        state, decision = state.failed(forever, WEB, "prime", now=t)
    assert decision.action is Action.MOVE
    assert decision.reason.startswith("apache2 failed 3 times on prime: moving")
    state = state.expire(now=1e9, groups=[forever])
    assert state.refuses(VIP, "prime", now=1e9)
    cleaned = state.cleanup(forever)
    assert not cleaned.refuses(VIP, "prime", now=1e9)
    assert cleaned.fail_count(WEB, "prime", now=1e9) == 0


def test_on_fail_failover_moves_at_the_first_failure() -> None:
    state, decision = RecoveryState().failed(
        group(on_fail=OnFail.FAILOVER), VIP, "prime", now=5.0, what="is not running"
    )
    assert decision.action is Action.MOVE
    assert decision.reason == (
        f"{VIP} is not running on prime (once in 10m): moving {VIP} (on_fail is failover)"
    )
    assert state.refuses(VIP, "prime", now=5.0)


def test_a_threshold_of_one_moves_at_the_first_failure() -> None:
    _, decision = RecoveryState().failed(group(threshold=1), MAIL, "prime", now=0.0)
    assert decision.action is Action.MOVE


def test_on_fail_ignore_only_counts_and_reports_even_past_the_threshold() -> None:
    ignoring = group(overrides={MAIL: OnFail.IGNORE})
    state = RecoveryState()
    for t in range(5):
        state, decision = state.failed(ignoring, MAIL, "prime", now=float(t))
        assert decision.action is Action.IGNORE
    assert decision.count == 5
    assert decision.reason.endswith("on_fail is ignore, nothing is done")
    assert not state.refuses(VIP, "prime", now=5.0)
    # The override is the resource's own: the group's other resources still restart.
    assert state.failed(ignoring, WEB, "prime", now=6.0)[1].action is Action.RESTART


def test_maintenance_mode_neither_acts_nor_counts() -> None:
    state = RecoveryState().set_maintenance(True)
    after, decision = state.failed(WEBGROUP, WEB, "prime", now=1.0)
    assert after is state
    assert decision.action is Action.NONE
    assert decision.reason == "apache2 failed on prime: maintenance mode, nothing is done"
    assert after.set_maintenance(False).maintenance is False


def test_a_success_after_a_failure_is_a_recovery_once() -> None:
    state, _ = RecoveryState().failed(WEBGROUP, WEB, "prime", now=1.0)
    state, recovered = state.succeeded(WEB, "prime")
    assert recovered
    state, recovered = state.succeeded(WEB, "prime")
    assert not recovered
    assert state.fail_count(WEB, "prime", now=2.0) == 1  # recovering does not forget


def test_fail_counts_are_kept_per_node() -> None:
    state = RecoveryState()
    state, _ = state.failed(WEBGROUP, WEB, "prime", now=0.0)
    state, _ = state.failed(WEBGROUP, WEB, "calc", now=1.0)
    state, _ = state.failed(WEBGROUP, WEB, "calc", now=2.0)
    assert state.fail_counts(WEB, now=3.0) == {"calc": 2, "prime": 1}
    assert state.fail_counts(MAIL, now=3.0) == {}


def test_cleanup_of_one_group_leaves_the_others_and_cleanup_of_all_forgets_everything() -> None:
    other = ResourceGroup(node="calc", resources=(ResourceSpec(raw="db", agent="db"),))
    state = RecoveryState()
    state, _ = state.failed(WEBGROUP, WEB, "prime", now=0.0)
    state, _ = state.failed(other, "db", "calc", now=0.0)
    one = state.cleanup(WEBGROUP)
    assert one.fail_counts(WEB, now=1.0) == {}
    assert one.fail_counts("db", now=1.0) == {"calc": 1}
    assert one.cleanup().failures == {}


def test_a_resource_removed_by_a_reload_is_forgotten() -> None:
    state, _ = RecoveryState().failed(WEBGROUP, WEB, "prime", now=0.0)
    assert state.expire(now=1.0, groups=[]).failures == {}
    assert state.expire(now=1.0, groups=[WEBGROUP]) is state


def test_the_restart_plan_of_the_first_resource_is_the_whole_group() -> None:
    assert restart_plan(WEBGROUP, VIP) == ((MAIL, WEB, VIP), (VIP, WEB, MAIL))
    assert restart_plan(WEBGROUP, MAIL) == ((MAIL,), (MAIL,))
    with pytest.raises(ValueError, match="not a resource of"):
        restart_plan(WEBGROUP, "nginx")


def test_a_resource_policy_is_its_groups_unless_it_overrides_on_fail() -> None:
    g = group(on_fail=OnFail.FAILOVER, threshold=2, overrides={WEB: OnFail.RESTART})
    assert ResourcePolicy.of(g, VIP) == ResourcePolicy(
        on_fail=OnFail.FAILOVER, migration_threshold=2, failure_timeout=600.0
    )
    assert ResourcePolicy.of(g, WEB).on_fail is OnFail.RESTART


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(600, "10m"), (3600, "1h"), (90, "90s"), (1.5, "1500ms"), (5400, "90m")],
)
def test_windows_read_in_the_largest_whole_unit(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


# --------------------------------------------------------------------------- property

events = st.lists(
    st.tuples(
        st.sampled_from(["fail", "ok", "cleanup", "maintenance-on", "maintenance-off"]),
        st.sampled_from([VIP, WEB, MAIL]),
        st.sampled_from(["prime", "calc"]),
        st.floats(min_value=0, max_value=400, allow_nan=False),  # time since the last event
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(
    events=events,
    on_fail=st.sampled_from(list(OnFail)),
    threshold=st.integers(min_value=1, max_value=5),
    window=st.one_of(st.none(), st.integers(min_value=1, max_value=900_000)),
)
def test_decisions_follow_the_counts_in_the_window_whatever_the_history(
    events: list[tuple[str, str, str, float]],
    on_fail: OnFail,
    threshold: int,
    window: int | None,
) -> None:
    g = group(on_fail=on_fail, threshold=threshold, failure_timeout=window)
    limit = None if window is None else window / 1000
    state = RecoveryState()
    history: dict[tuple[str, str], list[float]] = {}
    now = 0.0
    for kind, resource, node, gap in events:
        now += gap
        if kind == "cleanup":
            state = state.cleanup(g)
            history.clear()
            assert not any(state.refuses(g.key, n, now=now) for n in ("prime", "calc"))
            continue
        if kind.startswith("maintenance"):
            state = state.set_maintenance(kind == "maintenance-on")
            continue
        if kind == "ok":
            state, _ = state.succeeded(resource, node)
            continue
        before = state
        state, decision = state.failed(g, resource, node, now=now)
        if before.maintenance:
            assert state is before and decision.action is Action.NONE
            continue
        kept = [t for t in history.get((resource, node), []) if limit is None or now - t < limit]
        history[(resource, node)] = [*kept, now]
        # The count is exactly the failures inside the window, this one included.
        assert decision.count == len(kept) + 1
        assert state.fail_count(resource, node, now=now, failure_timeout=limit) == decision.count
        expected = {
            OnFail.IGNORE: Action.IGNORE,
            OnFail.FAILOVER: Action.MOVE,
            OnFail.RESTART: Action.MOVE if decision.count >= threshold else Action.RESTART,
        }[on_fail]
        assert decision.action is expected
        assert state.refuses(g.key, node, now=now, failure_timeout=limit) is (
            expected is Action.MOVE
        ) or before.refuses(g.key, node, now=now, failure_timeout=limit)
        if decision.action is Action.RESTART:
            # Stop right to left, start left to right: the failed resource and what follows.
            assert decision.start[0] == resource
            assert decision.stop == tuple(reversed(decision.start))
            names = [r.raw for r in g.resources]
            assert list(decision.start) == names[names.index(resource) :]
        else:
            assert decision.stop == decision.start == ()
        assert decision.reason.startswith(resource)
