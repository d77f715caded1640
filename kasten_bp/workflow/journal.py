"""The run journal: written to the catalog before every transition, so a crashed run can
be found and rolled back by the next invocation."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from kasten_bp.catalog.base import Catalog, backup_key
from kasten_bp.workflow.states import FINAL, RunState, StepStatus, check_transition

JOURNAL = "journal.json"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class ActionRecord(BaseModel):
    """What the journal keeps of anything the engine runs: status, error, timing."""

    status: StepStatus = StepStatus.PENDING
    error: str | None = None
    started: float | None = None
    ended: float | None = None

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return round(self.ended - self.started, 3)


class StepRecord(ActionRecord):
    name: str
    plan: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] = Field(default_factory=dict)
    undo_error: str | None = None


class DeferredRecord(ActionRecord):
    """A deferred action registered by a step: journaled before that step acts."""

    action: str
    args: dict[str, Any] = Field(default_factory=dict)
    registered_by: str

    @property
    def outstanding(self) -> bool:
        return self.status != StepStatus.DONE


class Journal(BaseModel):
    backup_id: str
    command: str
    mode: str
    state: RunState = RunState.PENDING
    created_at: str = Field(default_factory=now_iso)
    updated_at: str = Field(default_factory=now_iso)
    owner: dict[str, Any] = Field(default_factory=dict)
    # The mirror the run acts on (Platform.scope()): recovery, resume, hold expiry and the
    # watchdog act only on the runs of the configured mirror. Empty in older journals.
    cluster: str = ""
    # What the run was asked for (mode, head window): the first inputs of its steps.
    inputs: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepRecord] = Field(default_factory=list)
    deferred: list[DeferredRecord] = Field(default_factory=list)
    error: str | None = None
    # Failures after the backup was kept (COMPLETED_WITH_WARNINGS).
    warnings: list[str] = Field(default_factory=list)
    # A held run (quiesce): when its watchdog puts the mirror back, and how to cancel it.
    hold_deadline: float | None = None
    hold_watchdog: dict[str, Any] = Field(default_factory=dict)
    hold_expired: bool = False
    events: list[dict[str, Any]] = Field(default_factory=list)
    # Times a listener noted (MM2 stopped/resumed, brokers stopped/serving).
    marks: dict[str, float] = Field(default_factory=dict)

    def step(self, name: str) -> StepRecord:
        for record in self.steps:
            if record.name == name:
                return record
        raise KeyError(name)

    def outstanding_deferred(self) -> list[DeferredRecord]:
        return [d for d in self.deferred if d.outstanding]

    def claim(self) -> None:
        self.owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": now_iso(),
            "started": process_start(os.getpid()),
        }


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22): with
    the pid, it names one process, though pids are reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def owner_alive(owner: dict[str, Any]) -> bool | None:
    """Whether the process that owns a run is alive: None when it cannot be told from here
    (another host, or an owner recorded without its pid)."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or owner.get("host") != socket.gethostname():
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    started = owner.get("started")
    return state not in ("Z", "X") and (started is None or process_start(pid) == started)


class JournalStore:
    """Reads and writes journals in a catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def save(self, journal: Journal) -> None:
        journal.updated_at = now_iso()
        self.catalog.write_json(
            backup_key(journal.backup_id, JOURNAL), journal.model_dump(mode="json")
        )

    def transition(self, journal: Journal, state: RunState, note: str = "") -> None:
        check_transition(journal.state, state)
        journal.events.append({"at": now_iso(), "from": journal.state, "to": state, "note": note})
        journal.state = state
        self.save(journal)

    def note(self, journal: Journal, note: str) -> None:
        """An event that changes no state (a deferred clean-up finished by `resume`)."""
        journal.events.append(
            {"at": now_iso(), "from": journal.state, "to": journal.state, "note": note}
        )
        self.save(journal)

    def load(self, backup_id: str) -> Journal | None:
        data = self.catalog.read_json(backup_key(backup_id, JOURNAL))
        return Journal.model_validate(data) if data else None

    def all(self) -> list[Journal]:
        out = []
        for key in self.catalog.list_keys("backups/"):
            if key.endswith(f"/{JOURNAL}"):
                data = self.catalog.read_json(key)
                if data:
                    out.append(Journal.model_validate(data))
        return sorted(out, key=lambda j: j.created_at)

    def unfinished(self) -> list[Journal]:
        """Runs not final, or final with a deferred clean-up still to do."""
        return [j for j in self.all() if j.state not in FINAL or j.outstanding_deferred()]
