"""The workflow engine with in-memory steps and a real local catalog: typed wiring checked
when a flow is built, deferred actions that always run, rollback before the backup is kept
and warnings after it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import ClassVar, cast

import pytest
from pydantic import BaseModel

from kasten_bp.catalog.base import backup_key
from kasten_bp.catalog.local import LocalCatalog
from kasten_bp.config import Config
from kasten_bp.errors import RollbackFailed, RunFailed, UsageError
from kasten_bp.platforms.base import Platform
from kasten_bp.steps import backup_flow
from kasten_bp.workflow.engine import Engine, RunContext
from kasten_bp.workflow.flow import (
    Deferral,
    DeferredAction,
    Flow,
    FlowError,
    Model,
    Nothing,
    Step,
)
from kasten_bp.workflow.journal import JOURNAL, DeferredRecord, Journal, JournalStore, StepRecord
from kasten_bp.workflow.listeners import TimingListener
from kasten_bp.workflow.states import RunState, StepStatus

BACKUP_ID = "bk-test"


class Inputs(Model):
    mode: str = "consistent"


class Token(Model):
    token: str


class Counted(Model):
    count: int


class Args(Model):
    what: str


Log = list[tuple[str, str]]


class Recorder:
    """Every call of every step and deferred action, in order, with what it was given."""

    def __init__(self) -> None:
        self.log: Log = []
        self.failures: dict[str, BaseException | None] = {}

    def names(self, kind: str) -> list[str]:
        return [name for k, name in self.log if k == kind]


class Down(Step[Nothing, Token, Counted]):
    """Takes something down; putting it back is deferred."""

    defers = ("put_back",)

    def __init__(self, name: str, rec: Recorder, fail: BaseException | None = None) -> None:
        self.name = name  # type: ignore[misc]
        self.rec = rec
        self.fail = fail

    def plan(self, ctx: RunContext, needs: Nothing) -> Token:
        return Token(token=f"{self.name}-token")

    def defer(self, needs: Nothing, plan: Token) -> list[Deferral]:
        return [Deferral(action="put_back", args={"what": plan.token})]

    def do(self, ctx: RunContext, needs: Nothing, plan: Token) -> Counted:
        self.rec.log.append(("do", self.name))
        if self.fail is not None:
            raise self.fail
        return Counted(count=3)


class Generic(Step[BaseModel, Nothing, Nothing]):
    """A step with chosen needs; records what it received; may fail or keep the backup."""

    def __init__(
        self,
        name: str,
        rec: Recorder,
        needs: type[BaseModel] = Nothing,
        fail: BaseException | None = None,
        undo_fail: Exception | None = None,
        keeps: bool = False,
    ) -> None:
        self.name = name  # type: ignore[misc]
        self.needs = needs
        self.rec = rec
        self.fail = fail
        self.undo_fail = undo_fail
        self.keeps_backup = keeps  # type: ignore[misc]

    def do(self, ctx: RunContext, needs: BaseModel, plan: Nothing) -> Nothing:
        self.rec.log.append(("do", self.name))
        self.rec.log.append(("needs", json.dumps(needs.model_dump(), sort_keys=True)))
        if self.fail is not None:
            raise self.fail
        return Nothing()

    def undo(
        self, ctx: RunContext, needs: BaseModel, plan: Nothing, failure: BaseException | None
    ) -> None:
        self.rec.log.append(("undo", self.name))
        self.rec.failures[self.name] = failure
        if self.undo_fail is not None:
            raise self.undo_fail


class PutBack(DeferredAction[Args]):
    name: ClassVar[str] = "put_back"

    def __init__(self, rec: Recorder, fail: Exception | None = None) -> None:
        self.rec = rec
        self.fail = fail

    def run(self, ctx: RunContext, args: Args) -> None:
        self.rec.log.append(("deferred", args.what))
        if self.fail is not None:
            raise self.fail


class NeedsCount(Model):
    count: int
    token: str


@pytest.fixture
def catalog(tmp_path: Path) -> LocalCatalog:
    return LocalCatalog(tmp_path / "catalog")


@pytest.fixture
def store(catalog: LocalCatalog) -> JournalStore:
    return JournalStore(catalog)


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def new_journal(store: JournalStore) -> Journal:
    journal = Journal(
        backup_id=BACKUP_ID, command="backup", mode="consistent", inputs={"mode": "consistent"}
    )
    store.save(journal)
    return journal


def engine_for(
    catalog: LocalCatalog, store: JournalStore, flow: Flow, journal: Journal | None = None
) -> Engine:
    journal = journal or new_journal(store)
    ctx = RunContext(cast(Config, None), cast(Platform, None), catalog, journal, store)
    return Engine(ctx, flow, [TimingListener({("started", "a"): "a_started"})])


def standard_flow(
    rec: Recorder,
    fail_at: str = "",
    undo_fail: Exception | None = None,
    put_back_fail: Exception | None = None,
    check_fail: BaseException | None = None,
) -> Flow:
    """a (takes down) -> b (needs a's outputs) -> snap (keeps the backup) -> check."""
    fail = RuntimeError(f"boom in {fail_at}")
    return Flow(
        Inputs,
        steps=[
            Down("a", rec, fail if fail_at == "a" else None),
            Generic("b", rec, NeedsCount, fail if fail_at == "b" else None, undo_fail),
            Generic("snap", rec, fail=fail if fail_at == "snap" else None, keeps=True),
            Generic("after", rec, fail=fail if fail_at == "after" else None),
        ],
        checks=[Generic("check", rec, fail=check_fail)],
        deferred=[PutBack(rec, put_back_fail)],
    )


def journal_on_disk(catalog: LocalCatalog) -> Journal:
    data = json.loads((catalog.root / backup_key(BACKUP_ID, JOURNAL)).read_text())
    return Journal.model_validate(data)


def statuses(journal: Journal) -> dict[str, StepStatus]:
    return {s.name: s.status for s in journal.steps}


# --- building a flow ------------------------------------------------------------------


def test_a_missing_input_is_an_error_when_the_flow_is_built(rec: Recorder) -> None:
    with pytest.raises(FlowError, match="step b needs count, token, which no earlier step"):
        Flow(Inputs, steps=[Generic("b", rec, NeedsCount), Down("a", rec)], deferred=[PutBack(rec)])


def test_a_name_given_twice_is_an_error(rec: Recorder) -> None:
    with pytest.raises(FlowError, match="step a2 gives token, already given by step a"):
        Flow(Inputs, steps=[Down("a", rec), Down("a2", rec)], deferred=[PutBack(rec)])


def test_an_unknown_deferred_action_is_an_error(rec: Recorder) -> None:
    with pytest.raises(FlowError, match="step a defers unknown action put_back"):
        Flow(Inputs, steps=[Down("a", rec)])


@pytest.mark.parametrize("mode", ["consistent", "hot"])
def test_the_products_flows_are_wired(mode: str) -> None:
    flow = backup_flow(mode)
    assert [s.name for s in flow.steps][-1] == "snapshot_volumes"
    assert flow.step("snapshot_volumes").keeps_backup


# --- success ------------------------------------------------------------------------------


def test_success_runs_steps_then_deferred_then_checks(
    catalog: LocalCatalog, store: JournalStore, rec: Recorder
) -> None:
    journal = engine_for(catalog, store, standard_flow(rec)).run()
    assert journal.state == RunState.COMPLETED
    assert [e for e in rec.log if e[0] != "needs"] == [
        ("do", "a"),
        ("do", "b"),
        ("do", "snap"),
        ("do", "after"),
        ("deferred", "a-token"),
        ("do", "check"),
    ]
    # b received a's plan and result by name, typed.
    assert ("needs", json.dumps({"count": 3, "token": "a-token"}, sort_keys=True)) in rec.log
    on_disk = journal_on_disk(catalog)
    assert on_disk.state == RunState.COMPLETED
    assert set(statuses(on_disk).values()) == {StepStatus.DONE}
    assert [d.status for d in on_disk.deferred] == [StepStatus.DONE]
    assert "a_started" in on_disk.marks and on_disk.warnings == []


def test_plan_and_deferred_are_journaled_before_do(
    catalog: LocalCatalog, store: JournalStore, rec: Recorder
) -> None:
    seen: list[Journal] = []

    class Peeks(Down):
        def do(self, ctx: RunContext, needs: Nothing, plan: Token) -> Counted:
            seen.append(journal_on_disk(catalog))
            return super().do(ctx, needs, plan)

    flow = Flow(Inputs, steps=[Peeks("a", rec)], deferred=[PutBack(rec)])
    engine_for(catalog, store, flow).run()
    record = seen[0].step("a")
    assert record.status == StepStatus.RUNNING and record.plan == {"token": "a-token"}
    assert [(d.action, d.args, d.status) for d in seen[0].deferred] == [
        ("put_back", {"what": "a-token"}, StepStatus.PENDING)
    ]


def test_a_step_is_never_journaled_running_without_its_plan(
    catalog: LocalCatalog, store: JournalStore, rec: Recorder
) -> None:
    """A crash while planning must leave nothing an undo cannot read back."""
    seen: list[Journal] = []

    class PeeksWhilePlanning(Down):
        def plan(self, ctx: RunContext, needs: Nothing) -> Token:
            seen.append(journal_on_disk(catalog))
            return super().plan(ctx, needs)

    flow = Flow(Inputs, steps=[PeeksWhilePlanning("a", rec)], deferred=[PutBack(rec)])
    engine_for(catalog, store, flow).run()
    assert seen[0].step("a").status == StepStatus.PENDING
    assert seen[0].deferred == []


# --- before the backup is kept: rollback ---------------------------------------------------


def test_failure_before_the_snapshot_undoes_and_runs_deferred(
    catalog: LocalCatalog, store: JournalStore, rec: Recorder
) -> None:
    with pytest.raises(RunFailed, match="boom in b"):
        engine_for(catalog, store, standard_flow(rec, fail_at="b")).run()
    journal = journal_on_disk(catalog)
    assert journal.state == RunState.FAILED_ROLLED_BACK
    assert statuses(journal) == {
        "a": StepStatus.UNDONE,
        "b": StepStatus.UNDONE,
        "snap": StepStatus.PENDING,
        "after": StepStatus.PENDING,
        "check": StepStatus.PENDING,
    }
    assert rec.names("undo") == ["b"]
    assert rec.names("deferred") == ["a-token"]
    assert isinstance(rec.failures["b"], RuntimeError)  # undo receives the failure
    assert journal.step("b").error == "RuntimeError: boom in b"


def test_a_failing_snapshot_is_undone(
    catalog: LocalCatalog, store: JournalStore, rec: Recorder
) -> None:
    with pytest.raises(RunFailed):
        engine_for(catalog, store, standard_flow(rec, fail_at="snap")).run()
    assert rec.names("undo") == ["snap", "b"]
    assert journal_on_disk(catalog).state == RunState.FAILED_ROLLED_BACK


def test_usage_error_stays_a_usage_error(
    catalog: LocalCatalog, store: JournalStore, rec: Recorder
) -> None:
    flow = Flow(Inputs, steps=[Generic("pre", rec, fail=UsageError("preflight failed: x"))])
    with pytest.raises(UsageError, match="preflight failed"):
        engine_for(catalog, store, flow).run()
    assert journal_on_disk(catalog).state == RunState.FAILED_ROLLED_BACK


def test_undo_failure_leaves_rollback_failed_and_a_retry_finishes(
    catalog: LocalCatalog, store: JournalStore, rec: Recorder
) -> None:
    flow = standard_flow(rec, fail_at="snap", undo_fail=OSError("disk gone"))
    with pytest.raises(RollbackFailed, match="b: OSError: disk gone"):
        engine_for(catalog, store, flow).run()
    journal = journal_on_disk(catalog)
    assert journal.state == RunState.ROLLBACK_FAILED
    assert journal.step("b").status == StepStatus.UNDO_FAILED
    assert [d.status for d in journal.deferred] == [StepStatus.DONE]  # ran regardless
    # The cause is fixed; a retry undoes only what is left.
    rec.log.clear()
    retry = engine_for(catalog, store, standard_flow(rec), journal)
    with pytest.raises(RunFailed):
        retry.rollback(None, note="retried")
    assert rec.names("undo") == ["b"] and rec.names("deferred") == []
    assert journal_on_disk(catalog).state == RunState.FAILED_ROLLED_BACK


def test_deferred_failure_during_rollback_is_a_rollback_failure(
    catalog: LocalCatalog, store: JournalStore, rec: Recorder
) -> None:
    flow = standard_flow(rec, fail_at="b", put_back_fail=TimeoutError("brokers slow"))
    with pytest.raises(RollbackFailed, match="put_back: TimeoutError: brokers slow"):
        engine_for(catalog, store, flow).run()
    journal = journal_on_disk(catalog)
    assert journal.state == RunState.ROLLBACK_FAILED
    assert journal.deferred[0].status == StepStatus.FAILED


def test_keyboard_interrupt_before_the_snapshot_rolls_back_and_reraises(
    catalog: LocalCatalog, store: JournalStore, rec: Recorder
) -> None:
    flow = standard_flow(rec)
    flow.steps[1].fail = KeyboardInterrupt()  # type: ignore[attr-defined]
    with pytest.raises(KeyboardInterrupt):
        engine_for(catalog, store, flow).run()
    assert journal_on_disk(catalog).state == RunState.FAILED_ROLLED_BACK
    assert rec.names("deferred") == ["a-token"]


# --- after the backup is kept: warnings ----------------------------------------------------


def test_failure_after_the_snapshot_keeps_the_backup(
    catalog: LocalCatalog, store: JournalStore, rec: Recorder
) -> None:
    journal = engine_for(catalog, store, standard_flow(rec, fail_at="after")).run()
    assert journal.state == RunState.COMPLETED_WITH_WARNINGS
    assert journal.warnings == [
        "after failed after the backup was kept: RuntimeError: boom in after"
    ]
    assert rec.names("undo") == []
    assert statuses(journal)["snap"] == StepStatus.DONE
    assert rec.names("deferred") == ["a-token"]


def test_a_failing_deferred_action_is_a_warning_and_a_retry_finishes_it(
    catalog: LocalCatalog, store: JournalStore, rec: Recorder
) -> None:
    flow = standard_flow(rec, put_back_fail=TimeoutError("MM2 slow"))
    journal = engine_for(catalog, store, flow).run()
    assert journal.state == RunState.COMPLETED_WITH_WARNINGS
    assert "put_back: TimeoutError: MM2 slow" in journal.warnings[0]
    assert journal.outstanding_deferred() and store.unfinished() != []
    retry = engine_for(catalog, store, standard_flow(rec), journal_on_disk(catalog))
    assert retry.run_deferred() == []
    assert not journal_on_disk(catalog).outstanding_deferred()
    assert store.unfinished() == []


def test_a_failing_check_is_a_warning(
    catalog: LocalCatalog, store: JournalStore, rec: Recorder
) -> None:
    flow = standard_flow(rec, check_fail=TimeoutError("MM2 did not move"))
    journal = engine_for(catalog, store, flow).run()
    assert journal.state == RunState.COMPLETED_WITH_WARNINGS
    assert journal.warnings == ["check failed: TimeoutError: MM2 did not move"]


def test_keyboard_interrupt_after_the_snapshot_keeps_it_and_reraises(
    catalog: LocalCatalog, store: JournalStore, rec: Recorder
) -> None:
    flow = standard_flow(rec)
    flow.steps[3].fail = KeyboardInterrupt()  # type: ignore[attr-defined]
    with pytest.raises(KeyboardInterrupt):
        engine_for(catalog, store, flow).run()
    journal = journal_on_disk(catalog)
    assert journal.state == RunState.COMPLETED_WITH_WARNINGS
    assert rec.names("deferred") == ["a-token"] and rec.names("undo") == []
    assert journal.step("check").status == StepStatus.PENDING


# --- holds and crashes -------------------------------------------------------------------


def test_a_held_run_runs_no_deferred_action_until_it_continues(
    catalog: LocalCatalog, store: JournalStore, rec: Recorder
) -> None:
    journal = engine_for(catalog, store, standard_flow(rec)).run(stop_after="b")
    assert journal.state == RunState.HELD and rec.names("deferred") == []
    later = engine_for(catalog, store, standard_flow(rec), journal_on_disk(catalog))
    assert later.run().state == RunState.COMPLETED
    assert rec.names("do") == ["a", "b", "snap", "after", "check"]
    assert rec.names("deferred") == ["a-token"]


class SavesSeen(JournalStore):
    """A journal store that keeps a copy of every journal as it was saved."""

    def __init__(self, catalog: LocalCatalog) -> None:
        super().__init__(catalog)
        self.saved: list[Journal] = []

    def save(self, journal: Journal) -> None:
        super().save(journal)
        self.saved.append(journal.model_copy(deep=True))


def test_a_hold_is_never_saved_without_its_deadline(catalog: LocalCatalog, rec: Recorder) -> None:
    """The hold's watchdog polls the journal: a HELD run without a deadline reads as a run
    already out of its hold, and the watchdog would leave with the mirror still down."""
    store = SavesSeen(catalog)
    before = time.time()
    journal = engine_for(catalog, store, standard_flow(rec)).run(stop_after="b", hold_seconds=60)
    held = [j for j in store.saved if j.state == RunState.HELD]
    assert held and journal.state == RunState.HELD
    assert all(j.hold_deadline is not None and j.hold_deadline >= before + 60 for j in held)
    assert journal_on_disk(catalog).hold_deadline == journal.hold_deadline


def crashed_journal(store: JournalStore, done: list[str], running: str) -> Journal:
    journal = new_journal(store)
    journal.state = RunState.RUNNING
    for name in done:
        journal.steps.append(StepRecord(name=name, status=StepStatus.DONE))
    journal.steps.append(StepRecord(name=running, status=StepStatus.RUNNING))
    journal.step("a").plan = {"token": "a-token"}
    journal.step("a").result = {"count": 3} if "a" in done else {}
    journal.deferred.append(
        DeferredRecord(action="put_back", args={"what": "a-token"}, registered_by="a")
    )
    store.save(journal)
    return journal


def test_a_run_that_crashed_before_the_snapshot_is_rolled_back(
    catalog: LocalCatalog, store: JournalStore, rec: Recorder
) -> None:
    journal = crashed_journal(store, ["a"], running="b")
    engine = engine_for(catalog, store, standard_flow(rec), journal)
    with pytest.raises(RunFailed, match="crashed"):
        engine.recover("crashed run found")
    assert journal_on_disk(catalog).state == RunState.FAILED_ROLLED_BACK
    assert rec.names("undo") == ["b"] and rec.names("deferred") == ["a-token"]
    assert rec.failures["b"] is None  # no exception object survives a crash


def test_a_run_that_crashed_after_the_snapshot_is_kept(
    catalog: LocalCatalog, store: JournalStore, rec: Recorder
) -> None:
    journal = crashed_journal(store, ["a", "b", "snap"], running="after")
    engine_for(catalog, store, standard_flow(rec), journal).recover("crashed run found")
    on_disk = journal_on_disk(catalog)
    assert on_disk.state == RunState.COMPLETED_WITH_WARNINGS
    assert "interrupted after the backup was kept" in on_disk.warnings[0]
    assert rec.names("undo") == [] and rec.names("deferred") == ["a-token"]


def test_an_interrupted_rollback_is_resumed(
    catalog: LocalCatalog, store: JournalStore, rec: Recorder
) -> None:
    journal = crashed_journal(store, ["a"], running="b")
    journal.state = RunState.ROLLING_BACK
    journal.step("b").status = StepStatus.UNDONE  # undone before the crash
    store.save(journal)
    with pytest.raises(RunFailed):
        engine_for(catalog, store, standard_flow(rec), journal).recover("crashed")
    on_disk = journal_on_disk(catalog)
    assert on_disk.state == RunState.FAILED_ROLLED_BACK
    assert [(e["from"], e["to"]) for e in on_disk.events][-2:] == [
        ("ROLLING_BACK", "ROLLING_BACK"),
        ("ROLLING_BACK", "FAILED_ROLLED_BACK"),
    ]
    assert rec.names("undo") == [] and rec.names("deferred") == ["a-token"]


def test_skipped_steps_are_neither_run_nor_undone(
    catalog: LocalCatalog, store: JournalStore, rec: Recorder
) -> None:
    journal = new_journal(store)
    journal.steps.append(StepRecord(name="snap", status=StepStatus.SKIPPED))
    engine = engine_for(catalog, store, standard_flow(rec, fail_at="after"), journal)
    # A skipped keeping step (taken by K10 between hooks) keeps the backup too.
    assert engine.run().state == RunState.COMPLETED_WITH_WARNINGS
    assert "snap" not in rec.names("do") and rec.names("undo") == []


def test_engine_adds_step_records_once(catalog: LocalCatalog, store: JournalStore) -> None:
    rec = Recorder()
    journal = new_journal(store)
    engine_for(catalog, store, standard_flow(rec), journal)
    engine_for(catalog, store, standard_flow(rec), journal)
    assert [s.name for s in journal.steps] == ["a", "b", "snap", "after", "check"]


def test_listener_marks_come_from_the_table(
    catalog: LocalCatalog, store: JournalStore, rec: Recorder
) -> None:
    journal = engine_for(catalog, store, standard_flow(rec, fail_at="b")).journal
    with pytest.raises(RunFailed):
        engine_for(catalog, store, standard_flow(rec, fail_at="b"), journal).run()
    assert set(journal.marks) == {"a_started"}
