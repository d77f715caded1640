"""Connector states a backup journals (issue 27, point 8): one `resume` can always set."""

from __future__ import annotations

from kasten_bp.connect import restorable


def test_a_state_seen_mid_rebalance_is_journaled_as_the_running_it_settles_into() -> None:
    assert restorable("UNASSIGNED") == "RUNNING"
    assert restorable("RESTARTING") == "RUNNING"


def test_settled_states_and_anything_else_are_kept() -> None:
    for state in ("RUNNING", "PAUSED", "STOPPED", "FAILED", "3"):
        assert restorable(state) == state
