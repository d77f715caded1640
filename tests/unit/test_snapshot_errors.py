"""Which errors a snapshot's status may show while a wait for it goes on: an API conflict
the snapshot controllers retry never ends the wait before its timeout; any other error ends
it once it has stood for the grace."""

from __future__ import annotations

import pytest

from kasten_bp.errors import PermanentError, TemporaryError, WaitTimeout
from kasten_bp.platforms.kube.snapshots import StandingErrors
from kasten_bp.transience import temporary_status_error
from kasten_bp.waiting import wait_for

# What the CSI snapshotter wrote into a VolumeGroupSnapshot in a CI run (names shortened).
CONFLICT = (
    "Failed to create group snapshot: error updating status for volume group snapshot "
    "content groupsnapcontent-df67: snapshot controller failed to update groupsnapcontent-df67 "
    "on API server: Operation cannot be fulfilled on volumegroupsnapshotcontents.groupsnapshot"
    '.storage.k8s.io "groupsnapcontent-df67": the object has been modified; please apply your '
    "changes to the latest version and try again"
)
DRIVER_FAILURE = "Failed to create snapshot: rpc error: code = Internal desc = disk gone"
WHAT = "volumegroupsnapshot ns/bk-group"


def test_an_api_conflict_is_passing_and_a_driver_failure_is_not() -> None:
    assert temporary_status_error(CONFLICT)
    assert not temporary_status_error(DRIVER_FAILURE)


def test_a_conflict_never_ends_the_wait_however_long_it_stands() -> None:
    errors = StandingErrors(grace=0)
    errors.check(WHAT, CONFLICT)
    errors.check(WHAT, CONFLICT)
    with pytest.raises(TemporaryError, match="object has been modified"):
        errors.still_waiting()


def test_another_error_ends_the_wait_once_it_has_stood_for_the_grace() -> None:
    errors = StandingErrors(grace=0)
    with pytest.raises(PermanentError, match=f"^{WHAT} failed: {DRIVER_FAILURE}$"):
        errors.check(WHAT, DRIVER_FAILURE)


def test_an_error_that_clears_within_the_grace_is_forgotten() -> None:
    errors = StandingErrors(grace=3600)
    errors.check(WHAT, DRIVER_FAILURE)
    with pytest.raises(TemporaryError, match="disk gone"):
        errors.still_waiting()
    errors.check(WHAT, None)
    errors.still_waiting()  # nothing stands: raises nothing


def test_a_wait_outlasted_by_a_conflict_names_it_in_its_timeout() -> None:
    errors = StandingErrors(grace=0)

    def probe() -> None:
        errors.check(WHAT, CONFLICT)
        errors.still_waiting()

    with pytest.raises(WaitTimeout, match=f"waiting for {WHAT}.*object has been modified"):
        wait_for(WHAT, probe, timeout=0.3, interval=0.05)
