"""Engine listeners: progress on stderr. Timing lives in the journal's step records."""

from __future__ import annotations

import sys

from kasten_bp.workflow.journal import Journal, StepRecord


class ProgressListener:
    def step_started(self, name: str) -> None:
        print(f"▶ {name}", file=sys.stderr, flush=True)

    def step_finished(self, record: StepRecord) -> None:
        took = f" ({record.seconds:.1f}s)" if record.seconds is not None else ""
        error = f": {record.error}" if record.error else ""
        print(f"  {record.name} {record.status}{took}{error}", file=sys.stderr, flush=True)

    def run_state(self, journal: Journal) -> None:
        print(f"■ backup {journal.backup_id}: {journal.state}", file=sys.stderr, flush=True)
