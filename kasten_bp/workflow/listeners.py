"""Engine listeners: progress on stderr, and timing marks in the journal."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping

from kasten_bp.workflow.journal import DeferredRecord, Journal, StepRecord

Record = StepRecord | DeferredRecord


def record_name(record: Record) -> str:
    return record.name if isinstance(record, StepRecord) else record.action


class ProgressListener:
    def step_started(self, journal: Journal, record: Record) -> None:
        kind = "" if isinstance(record, StepRecord) else "deferred "
        print(f"▶ {kind}{record_name(record)}", file=sys.stderr, flush=True)

    def step_finished(self, journal: Journal, record: Record) -> None:
        took = f" ({record.seconds:.1f}s)" if record.seconds is not None else ""
        error = f": {record.error}" if record.error else ""
        line = f"  {record_name(record)} {record.status}{took}{error}"
        print(line, file=sys.stderr, flush=True)

    def run_state(self, journal: Journal) -> None:
        print(f"■ backup {journal.backup_id}: {journal.state}", file=sys.stderr, flush=True)


class TimingListener:
    """Notes when named steps start or finish successfully (MM2 stopped, brokers serving),
    from a table the flow provides: {("started"|"done", step or action name): mark}."""

    def __init__(self, marks: Mapping[tuple[str, str], str]) -> None:
        self.marks = marks

    def step_started(self, journal: Journal, record: Record) -> None:
        self._note(journal, "started", record)

    def step_finished(self, journal: Journal, record: Record) -> None:
        if record.error is None:
            self._note(journal, "done", record)

    def run_state(self, journal: Journal) -> None:
        return None

    def _note(self, journal: Journal, event: str, record: Record) -> None:
        mark = self.marks.get((event, record_name(record)))
        if mark is not None:
            journal.marks[mark] = time.time()
