"""`lab consume`: a real consumer group on the lab's primary, committing as it reads, so a
backup has groups to record (issue 8)."""

from __future__ import annotations

from typing import Any

from kasten_bp.errors import UsageError
from kasten_bp.kafka import admin, consuming

# Without --records: how long to wait for the end of every partition.
DEFAULT_TIMEOUT = 60.0


def run_consume(
    bootstrap: str, group: str, topic: str, records: int | None, timeout: float = DEFAULT_TIMEOUT
) -> dict[str, Any]:
    if records is not None and records < 0:
        raise UsageError(f"--records must be >= 0, got {records}")
    if not group:
        raise UsageError("--group must name a group")
    if topic not in admin.topics(bootstrap):
        raise UsageError(f"topic {topic} does not exist on the primary {bootstrap}")
    done = consuming.consume(bootstrap, group, topic, records, timeout)
    return {
        "group": done.group,
        "topic": done.topic,
        "records": done.records,
        "committed": {str(p): o for p, o in sorted(done.committed.items())},
        "reached_end": done.reached_end,
    }
