"""Confirm MM2 replicates again: where the primary gained records past the cut while MM2
was stopped, MM2's committed source offset must move past the cut."""

from __future__ import annotations

from kasten_bp.consistency.scope import replicated_partitions
from kasten_bp.kafka import admin, reading
from kasten_bp.steps.models import Confirmed, ConfirmNeeds, by_partition
from kasten_bp.waiting import wait_for
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.flow import Nothing, Step


def has_data(bootstrap: str, key: tuple[str, int], start: int, end: int) -> bool:
    records = reading.stream_range(bootstrap, key[0], key[1], start, end)
    try:
        return next(records, None) is not None
    finally:
        records.close()


class ConfirmReplication(Step[ConfirmNeeds, Nothing, Confirmed]):
    name = "confirm_replication"

    def do(self, ctx: RunContext, needs: ConfirmNeeds, plan: Nothing) -> Confirmed:
        if not any(s == "RUNNING" for s in needs.connector_states.values()):
            return Confirmed(confirmed_partitions=0)  # MM2 was not running before the backup
        at_quiesce = by_partition({**needs.source_offsets, **(needs.cut_offsets or {})})
        config = ctx.config
        primary = config.primary.bootstrap
        scope = replicated_partitions(primary, config.mirror.bootstrap, config.replication)
        primary_marks = admin.watermarks(primary, [rp.primary_key for rp in scope])
        # Partitions with committed data records MM2 had not read at quiesce (offsets alone
        # mislead: transaction markers occupy offsets too).
        pending = {
            key: at_quiesce.get(key, -1)
            for key, (_, high) in primary_marks.items()
            if high - 1 > at_quiesce.get(key, -1)
            and has_data(primary, key, at_quiesce.get(key, -1) + 1, high)
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
        return Confirmed(confirmed_partitions=len(pending))
