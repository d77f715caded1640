"""Confirm MM2 replicates again: where the primary gained records while MM2 was stopped,
MM2's committed source offset must move past the one recorded at quiesce."""

from __future__ import annotations

from typing import Any

from kasten_bp.heads import replicated_partitions
from kasten_bp.kafka import admin, reading
from kasten_bp.steps.base import BaseStep
from kasten_bp.steps.common import offsets_from_json
from kasten_bp.waiting import wait_for
from kasten_bp.workflow.engine import RunContext


def has_data(ctx: RunContext, key: tuple[str, int], start: int, end: int) -> bool:
    records = reading.stream_range(ctx.config.primary.bootstrap, key[0], key[1], start, end)
    try:
        return next(records, None) is not None
    finally:
        records.close()


class ConfirmReplication(BaseStep):
    name = "confirm_replication"

    def do(self, ctx: RunContext, plan: dict[str, Any]) -> dict[str, Any]:
        states = ctx.journal.step("pause_mirrormaker").plan.get("states", {})
        if not any(s == "RUNNING" for s in states.values()):
            return {"checked": 0, "note": "MM2 was not running before the backup"}
        at_quiesce = offsets_from_json(
            ctx.journal.step("wait_caught_up").result.get("source_offsets", {})
        )
        scope = replicated_partitions(ctx.config)
        primary_marks = admin.watermarks(
            ctx.config.primary.bootstrap, [(r.primary_topic, r.partition) for r in scope]
        )
        # Partitions with committed data records MM2 had not read at quiesce (offsets alone
        # mislead: transaction markers occupy offsets too).
        pending = {
            key: at_quiesce.get(key, -1)
            for key, (_, high) in primary_marks.items()
            if high - 1 > at_quiesce.get(key, -1)
            and has_data(ctx, key, at_quiesce.get(key, -1) + 1, high)
        }
        mm2 = ctx.platform.mirrormaker

        def moved() -> bool:
            now = mm2.source_offsets()
            return all(now.get(key, -1) > before for key, before in pending.items())

        if pending:
            wait_for(
                f"MM2 to replicate new records of {len(pending)} partitions",
                moved,
                ctx.config.backup.replication_confirm_timeout_seconds,
            )
        return {"checked": len(pending)}
