"""The workflow engine with in-memory steps and a real local catalog."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from kasten_bp.catalog.base import backup_key
from kasten_bp.catalog.local import LocalCatalog
from kasten_bp.config import Config
from kasten_bp.errors import RollbackFailed, RunFailed, UsageError
from kasten_bp.platforms.base import Platform
from kasten_bp.workflow.engine import Engine, RunContext, Step
from kasten_bp.workflow.journal import JOURNAL, Journal, JournalStore, StepRecord
from kasten_bp.workflow.states import RunState, StepStatus

BACKUP_ID = "bk-test"


class Calls:
    """Every plan/do/undo call of every step, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, dict[str, Any] | None]] = []

    def names(self, kind: str) -> list[str]:
        return [name for k, name, _ in self.log if k == kind]

    def plans(self, kind: str) -> dict[str, dict[str, Any] | None]:
        return {name: plan for k, name, plan in self.log if k == kind}


class FakeStep:
    def __init__(
        self,
        name: str,
        calls: Calls,
        fail: BaseException | None = None,
        undo_fail: Exception | None = None,
        on_do: Any = None,
    ) -> None:
        self.name = name
        self.calls = calls
        self.fail = fail
        self.undo_fail = undo_fail
        self.on_do = on_do

    def plan(self, ctx: RunContext) -> dict[str, Any]:
        self.calls.log.append(("plan", self.name, None))
        # Something only the plan knows, so undo can prove it got the journaled one.
        return {"step": self.name, "token": f"{self.name}-{len(self.calls.log)}"}

    def do(self, ctx: RunContext, plan: dict[str, Any]) -> dict[str, Any]:
        self.calls.log.append(("do", self.name, plan))
        if self.on_do is not None:
            self.on_do(ctx, plan)
        if self.fail is not None:
            raise self.fail
        return {"did": self.name}

    def undo(self, ctx: RunContext, plan: dict[str, Any]) -> None:
        self.calls.log.append(("undo", self.name, plan))
        if self.undo_fail is not None:
            raise self.undo_fail


class RecordingListener:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def step_started(self, name: str) -> None:
        self.events.append(("started", name))

    def step_finished(self, record: StepRecord) -> None:
        self.events.append(("finished", f"{record.name}:{record.status}"))

    def run_state(self, journal: Journal) -> None:
        self.events.append(("state", str(journal.state)))


@pytest.fixture
def catalog(tmp_path: Path) -> LocalCatalog:
    return LocalCatalog(tmp_path / "catalog")


@pytest.fixture
def store(catalog: LocalCatalog) -> JournalStore:
    return JournalStore(catalog)


def make_ctx(
    catalog: LocalCatalog, store: JournalStore, journal: Journal | None = None
) -> RunContext:
    if journal is None:
        journal = Journal(backup_id=BACKUP_ID, command="backup", mode="consistent")
        store.save(journal)
    return RunContext(
        config=cast(Config, None),
        platform=cast(Platform, None),
        catalog=catalog,
        journal=journal,
        store=store,
    )


def journal_file(catalog: LocalCatalog) -> dict[str, Any]:
    path = catalog.path_of(backup_key(BACKUP_ID, JOURNAL))
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def steps_of(calls: Calls, names: str, **special: dict[str, Any]) -> list[Step]:
    return [FakeStep(n, calls, **special.get(n, {})) for n in names]


def test_success_path(catalog: LocalCatalog, store: JournalStore) -> None:
    calls = Calls()
    listener = RecordingListener()
    ctx = make_ctx(catalog, store)
    journal = Engine(ctx, steps_of(calls, "abc"), [listener]).run()

    assert journal.state == RunState.COMPLETED
    assert calls.names("do") == ["a", "b", "c"]
    assert calls.names("undo") == []
    saved = store.load(BACKUP_ID)
    assert saved is not None
    assert saved.state == RunState.COMPLETED
    assert [s.name for s in saved.steps] == ["a", "b", "c"]
    for record in saved.steps:
        assert record.status == StepStatus.DONE
        assert record.result == {"did": record.name}
        assert record.plan["step"] == record.name
        assert record.started is not None and record.ended is not None
        assert record.ended >= record.started
        assert record.seconds is not None and record.seconds >= 0
    assert [(e["from"], e["to"]) for e in saved.events] == [
        ("PENDING", "RUNNING"),
        ("RUNNING", "COMPLETED"),
    ]
    assert saved.owner.get("pid") is not None
    assert listener.events == [
        ("state", "RUNNING"),
        ("started", "a"),
        ("finished", "a:done"),
        ("started", "b"),
        ("finished", "b:done"),
        ("started", "c"),
        ("finished", "c:done"),
        ("state", "COMPLETED"),
    ]


@pytest.mark.parametrize("failing", [0, 1, 2, 3])
def test_failure_undoes_in_reverse_with_journaled_plans(
    catalog: LocalCatalog, store: JournalStore, failing: int
) -> None:
    names = "abcd"
    calls = Calls()
    bad = names[failing]
    steps = steps_of(calls, names, **{bad: {"fail": RuntimeError("disk on fire")}})
    engine = Engine(make_ctx(catalog, store), steps)

    with pytest.raises(RunFailed) as info:
        engine.run()

    assert info.value.exit_code == 3
    assert "disk on fire" in str(info.value)
    assert BACKUP_ID in str(info.value)
    ran = list(names[: failing + 1])
    assert calls.names("do") == ran
    # The failed step is undone too; newest first.
    assert calls.names("undo") == list(reversed(ran))
    saved = store.load(BACKUP_ID)
    assert saved is not None
    assert saved.state == RunState.FAILED_ROLLED_BACK
    assert saved.error == "RuntimeError: disk on fire"
    by_name = {s.name: s for s in saved.steps}
    # Each undo received exactly the plan that was journaled for its step.
    for name, plan in calls.plans("undo").items():
        assert plan == by_name[name].plan
        assert plan is not None and plan["step"] == name
    for name in ran:
        assert by_name[name].status == StepStatus.UNDONE
    for name in names[failing + 1 :]:
        assert by_name[name].status == StepStatus.PENDING
        assert by_name[name].plan == {}
    assert [e["to"] for e in saved.events] == ["RUNNING", "ROLLING_BACK", "FAILED_ROLLED_BACK"]


def test_failed_step_records_its_error(catalog: LocalCatalog, store: JournalStore) -> None:
    calls = Calls()
    listener = RecordingListener()
    steps = steps_of(calls, "ab", b={"fail": ValueError("bad value")})
    with pytest.raises(RunFailed):
        Engine(make_ctx(catalog, store), steps, [listener]).run()
    # The listener saw the step fail before the rollback started.
    assert ("finished", "b:failed") in listener.events
    assert listener.events.index(("finished", "b:failed")) < listener.events.index(
        ("state", "ROLLING_BACK")
    )
    saved = store.load(BACKUP_ID)
    assert saved is not None
    assert saved.step("b").error == "ValueError: bad value"
    assert saved.step("b").ended is not None


def test_usage_error_in_first_step_stays_a_usage_error(
    catalog: LocalCatalog, store: JournalStore
) -> None:
    calls = Calls()
    steps = steps_of(calls, "abc", a={"fail": UsageError("no lab in /nowhere")})
    with pytest.raises(UsageError) as info:
        Engine(make_ctx(catalog, store), steps).run()
    assert info.value.exit_code == 2
    assert str(info.value) == "no lab in /nowhere"
    assert calls.names("do") == ["a"]
    assert calls.names("undo") == ["a"]
    saved = store.load(BACKUP_ID)
    assert saved is not None
    assert saved.state == RunState.FAILED_ROLLED_BACK
    # A UsageError is shown as is, without the exception type.
    assert saved.error == "no lab in /nowhere"


def test_undo_failure_leaves_rollback_failed(catalog: LocalCatalog, store: JournalStore) -> None:
    calls = Calls()
    steps = steps_of(
        calls,
        "abcd",
        b={"undo_fail": RuntimeError("broker 2 will not start")},
        d={"fail": RuntimeError("snapshot refused")},
    )
    with pytest.raises(RollbackFailed) as info:
        Engine(make_ctx(catalog, store), steps).run()

    assert info.value.exit_code == 4
    message = str(info.value)
    assert "snapshot refused" in message
    assert "b: RuntimeError: broker 2 will not start" in message
    assert "kasten-bp resume" in message
    # The other undos still ran, b's failure did not stop a's.
    assert calls.names("undo") == ["d", "c", "b", "a"]
    saved = store.load(BACKUP_ID)
    assert saved is not None
    assert saved.state == RunState.ROLLBACK_FAILED
    statuses = {s.name: s.status for s in saved.steps}
    assert statuses == {
        "a": StepStatus.UNDONE,
        "b": StepStatus.UNDO_FAILED,
        "c": StepStatus.UNDONE,
        "d": StepStatus.UNDONE,
    }
    assert saved.step("b").undo_error == "RuntimeError: broker 2 will not start"


def test_retried_rollback_only_undoes_what_is_left(
    catalog: LocalCatalog, store: JournalStore
) -> None:
    calls = Calls()
    flaky = FakeStep("b", calls, undo_fail=RuntimeError("still down"))
    steps: list[Step] = [FakeStep("a", calls), flaky, FakeStep("c", calls, fail=OSError("x"))]
    with pytest.raises(RollbackFailed):
        Engine(make_ctx(catalog, store), steps).run()
    # A person fixed the cause; `resume` retries the rollback with a fresh engine.
    flaky.undo_fail = None
    calls.log.clear()
    journal = store.load(BACKUP_ID)
    assert journal is not None
    with pytest.raises(RunFailed):
        Engine(make_ctx(catalog, store, journal), steps).rollback(None, note="retry")
    assert calls.names("undo") == ["b"]
    saved = store.load(BACKUP_ID)
    assert saved is not None
    assert saved.state == RunState.FAILED_ROLLED_BACK
    assert saved.step("b").status == StepStatus.UNDONE
    assert saved.step("b").undo_error is None


def test_stop_after_holds_and_a_second_engine_continues(
    catalog: LocalCatalog, store: JournalStore
) -> None:
    calls = Calls()
    first = Engine(make_ctx(catalog, store), steps_of(calls, "abcd"))
    journal = first.run(stop_after="b")
    assert journal.state == RunState.HELD
    assert calls.names("do") == ["a", "b"]

    held = store.load(BACKUP_ID)
    assert held is not None
    assert held.state == RunState.HELD
    assert [s.status for s in held.steps] == [
        StepStatus.DONE,
        StepStatus.DONE,
        StepStatus.PENDING,
        StepStatus.PENDING,
    ]

    calls2 = Calls()
    second = Engine(make_ctx(catalog, store, held), steps_of(calls2, "abcd"))
    done = second.run()
    assert done.state == RunState.COMPLETED
    assert calls2.names("do") == ["c", "d"]
    assert calls2.names("plan") == ["c", "d"]
    saved = store.load(BACKUP_ID)
    assert saved is not None
    assert [e["to"] for e in saved.events] == ["RUNNING", "HELD", "RUNNING", "COMPLETED"]
    assert all(s.status == StepStatus.DONE for s in saved.steps)


def test_failure_after_hold_undoes_steps_of_both_invocations(
    catalog: LocalCatalog, store: JournalStore
) -> None:
    calls = Calls()
    Engine(make_ctx(catalog, store), steps_of(calls, "abc")).run(stop_after="a")
    held = store.load(BACKUP_ID)
    assert held is not None
    calls2 = Calls()
    with pytest.raises(RunFailed):
        Engine(
            make_ctx(catalog, store, held), steps_of(calls2, "abc", c={"fail": OSError("no")})
        ).run()
    assert calls2.names("undo") == ["c", "b", "a"]
    # a's plan came from the first invocation's journal.
    a_plan = calls2.plans("undo")["a"]
    assert a_plan is not None and a_plan == held.step("a").plan


def test_skipped_steps_are_not_run(catalog: LocalCatalog, store: JournalStore) -> None:
    calls = Calls()
    Engine(make_ctx(catalog, store), steps_of(calls, "abcd")).run(stop_after="b")
    held = store.load(BACKUP_ID)
    assert held is not None
    # The snapshot was taken outside (K10 between hooks): the step is marked skipped.
    held.step("c").status = StepStatus.SKIPPED
    store.save(held)

    calls2 = Calls()
    done = Engine(make_ctx(catalog, store, held), steps_of(calls2, "abcd")).run()
    assert done.state == RunState.COMPLETED
    assert calls2.names("do") == ["d"]
    assert "c" not in calls2.names("plan")
    assert done.step("c").status == StepStatus.SKIPPED


def test_skipped_steps_are_not_undone(catalog: LocalCatalog, store: JournalStore) -> None:
    calls = Calls()
    Engine(make_ctx(catalog, store), steps_of(calls, "abcd")).run(stop_after="b")
    held = store.load(BACKUP_ID)
    assert held is not None
    held.step("c").status = StepStatus.SKIPPED
    calls2 = Calls()
    with pytest.raises(RunFailed):
        Engine(
            make_ctx(catalog, store, held), steps_of(calls2, "abcd", d={"fail": OSError("x")})
        ).run()
    assert calls2.names("undo") == ["d", "b", "a"]


def test_plan_is_journaled_before_do_runs(catalog: LocalCatalog, store: JournalStore) -> None:
    seen: dict[str, dict[str, Any]] = {}

    def check_journal(ctx: RunContext, plan: dict[str, Any]) -> None:
        on_disk = journal_file(catalog)
        record = next(s for s in on_disk["steps"] if s["name"] == plan["step"])
        seen[plan["step"]] = record
        assert on_disk["state"] == "RUNNING"

    calls = Calls()
    steps: list[Step] = [FakeStep(n, calls, on_do=check_journal) for n in "ab"]
    Engine(make_ctx(catalog, store), steps).run()
    assert set(seen) == {"a", "b"}
    for name, record in seen.items():
        plan = calls.plans("do")[name]
        assert record["status"] == "running"
        assert record["plan"] == plan
        assert record["started"] is not None
        assert record["ended"] is None
    # While b ran, a was already journaled as done.
    assert seen["b"]["plan"]["token"] != seen["a"]["plan"]["token"]


def test_crashed_run_is_rolled_back_from_its_journal(
    catalog: LocalCatalog, store: JournalStore
) -> None:
    # A process dies while b runs: the journal on disk then says RUNNING, b's plan saved.
    # Capture that file from inside b's do (what a SIGKILL would leave behind).
    snapshots: list[dict[str, Any]] = []

    def snap(ctx: RunContext, plan: dict[str, Any]) -> None:
        snapshots.append(journal_file(catalog))
        raise KeyboardInterrupt

    calls = Calls()
    engine = Engine(
        make_ctx(catalog, store), [FakeStep("a", calls), FakeStep("b", calls, on_do=snap)]
    )
    with pytest.raises(KeyboardInterrupt):
        engine.run()
    crashed = Journal.model_validate(snapshots[0])
    assert crashed.step("b").status == StepStatus.RUNNING
    assert crashed.state == RunState.RUNNING
    store.save(crashed)

    calls2 = Calls()
    recovery = Engine(make_ctx(catalog, store, crashed), steps_of(calls2, "ab"))
    with pytest.raises(RunFailed, match="crashed run found"):
        recovery.rollback(None, note="crashed run found")
    assert calls2.names("undo") == ["b", "a"]
    assert calls2.plans("undo")["b"] == crashed.step("b").plan
    saved = store.load(BACKUP_ID)
    assert saved is not None and saved.state == RunState.FAILED_ROLLED_BACK


def test_keyboard_interrupt_rolls_back_and_reraises(
    catalog: LocalCatalog, store: JournalStore
) -> None:
    calls = Calls()
    steps = steps_of(calls, "abc", b={"fail": KeyboardInterrupt()})
    with pytest.raises(KeyboardInterrupt):
        Engine(make_ctx(catalog, store), steps).run()
    assert calls.names("do") == ["a", "b"]
    assert calls.names("undo") == ["b", "a"]
    saved = store.load(BACKUP_ID)
    assert saved is not None
    assert saved.state == RunState.FAILED_ROLLED_BACK
    assert saved.error == "interrupted"
    assert saved.step("c").status == StepStatus.PENDING


def test_engine_adds_step_records_once(catalog: LocalCatalog, store: JournalStore) -> None:
    calls = Calls()
    ctx = make_ctx(catalog, store)
    Engine(ctx, steps_of(calls, "ab"))
    Engine(ctx, steps_of(calls, "ab"))
    assert [s.name for s in ctx.journal.steps] == ["a", "b"]
