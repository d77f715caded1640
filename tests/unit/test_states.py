"""The run state machine: the allowed-transition table and its guard."""

from __future__ import annotations

import itertools

import pytest

from kasten_bp.errors import KastenBpError
from kasten_bp.workflow.states import (
    ALLOWED,
    FINAL,
    IllegalTransition,
    RunState,
    check_transition,
)

ALLOWED_PAIRS = [(a, b) for a, targets in ALLOWED.items() for b in sorted(targets)]
FORBIDDEN_PAIRS = [(a, b) for a, b in itertools.product(RunState, RunState) if b not in ALLOWED[a]]


def test_table_covers_every_state() -> None:
    assert set(ALLOWED) == set(RunState)
    for targets in ALLOWED.values():
        assert targets <= set(RunState)


def test_expected_table() -> None:
    # The table as the engine relies on it; a change here must be deliberate.
    assert set(ALLOWED_PAIRS) == {
        (RunState.PENDING, RunState.RUNNING),
        # A run whose process died before its first step is closed by its watchdog.
        (RunState.PENDING, RunState.ROLLING_BACK),
        (RunState.RUNNING, RunState.COMPLETED),
        (RunState.RUNNING, RunState.COMPLETED_WITH_WARNINGS),
        (RunState.RUNNING, RunState.HELD),
        (RunState.RUNNING, RunState.ROLLING_BACK),
        (RunState.HELD, RunState.RUNNING),
        (RunState.HELD, RunState.ROLLING_BACK),
        # An interrupted rollback is resumed.
        (RunState.ROLLING_BACK, RunState.ROLLING_BACK),
        (RunState.ROLLING_BACK, RunState.FAILED_ROLLED_BACK),
        (RunState.ROLLING_BACK, RunState.ROLLBACK_FAILED),
        (RunState.ROLLBACK_FAILED, RunState.ROLLING_BACK),
    }


@pytest.mark.parametrize(("current", "new"), ALLOWED_PAIRS)
def test_allowed_transition_passes(current: RunState, new: RunState) -> None:
    check_transition(current, new)


@pytest.mark.parametrize(("current", "new"), FORBIDDEN_PAIRS)
def test_other_transitions_raise(current: RunState, new: RunState) -> None:
    with pytest.raises(IllegalTransition) as info:
        check_transition(current, new)
    assert str(current) in str(info.value) and str(new) in str(info.value)
    assert isinstance(info.value, KastenBpError)


def test_only_rolling_back_repeats_itself() -> None:
    for state in set(RunState) - {RunState.ROLLING_BACK}:
        with pytest.raises(IllegalTransition):
            check_transition(state, state)
    check_transition(RunState.ROLLING_BACK, RunState.ROLLING_BACK)


def test_final_states_have_no_exits() -> None:
    assert {
        RunState.COMPLETED,
        RunState.COMPLETED_WITH_WARNINGS,
        RunState.FAILED_ROLLED_BACK,
    } == FINAL
    for state in FINAL:
        assert ALLOWED[state] == set()
        for new in RunState:
            with pytest.raises(IllegalTransition):
                check_transition(state, new)


def test_every_state_reachable_from_pending() -> None:
    seen = {RunState.PENDING}
    frontier = [RunState.PENDING]
    while frontier:
        for nxt in ALLOWED[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert seen == set(RunState)


def test_every_non_final_state_can_reach_a_final_state() -> None:
    for start in set(RunState) - FINAL:
        seen = {start}
        frontier = [start]
        while frontier:
            for nxt in ALLOWED[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert seen & FINAL, f"{start} can never finish"
