"""Two mirrors sharing one catalog (issue 27, point 4): each journal names the mirror it
belongs to, and recovery, resume and status act only on the configured mirror's runs;
another mirror's unfinished run is shown, read-only, and blocks nothing here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kasten_bp.backup import Backups
from kasten_bp.catalog.base import backup_key
from kasten_bp.workflow.journal import Journal, StepRecord
from kasten_bp.workflow.states import RunState, StepStatus

from .helpers import LabHandle, assert_mirror_running, cli_json, seed

pytestmark = pytest.mark.integration
OTHER_MIRROR = "strimzi:kafka-dr/other-mirror"


@pytest.fixture
def foreign_run(lab: LabHandle) -> Iterator[Journal]:
    """A crashed run of another mirror: RUNNING, its owner gone, its brokers stopped."""
    backups = Backups(lab.config)
    journal = Journal(
        backup_id="bk-20261208T000000Z-0ther",
        command="backup",
        mode="consistent",
        state=RunState.RUNNING,
        cluster=OTHER_MIRROR,
        owner={"pid": 4_000_000, "host": "kanister-job-elsewhere"},
        steps=[StepRecord(name="stop_brokers", status=StepStatus.DONE)],
    )
    backups.store.save(journal)
    try:
        yield journal
    finally:
        backups.catalog.delete_prefix(backup_key(journal.backup_id, ""))


def test_another_mirrors_run_is_shown_never_recovered_and_blocks_nothing(
    lab: LabHandle, topic: str, foreign_run: Journal
) -> None:
    status = cli_json(lab, "status")
    assert status["cluster"].startswith("local:")
    assert status["recovered"] == []
    assert status["elsewhere"] == [
        {"backup_id": foreign_run.backup_id, "status": "RUNNING", "cluster": OTHER_MIRROR}
    ]
    assert foreign_run.backup_id not in [c["backup_id"] for c in status["current"]]
    assert cli_json(lab, "resume")["status"] == "nothing to resume"
    seed(lab, topic)
    done = cli_json(lab, "backup")
    assert done["status"] == RunState.COMPLETED and done["cluster"] == status["cluster"]
    assert done["recovered"] == []
    left = Backups(lab.config).store.load(foreign_run.backup_id)
    assert left is not None and left.state == RunState.RUNNING  # untouched
    assert left.step("stop_brokers").status == StepStatus.DONE
    assert_mirror_running(lab)
