"""Move MM2's committed source offsets up to the cut, while its connectors are stopped.

Where the mirror holds records MM2 had not committed (its producer delivered them as the
source task stopped), MM2 would otherwise send them again when it resumes: the mirror would
hold them twice. With the offsets at the cut, MM2 resumes after the mirror's last record.
Done now, while the mirror's brokers serve: Connect keeps its offsets in a topic there.
The cut is right whatever happens to the run (the mirror keeps those records on rollback
too), so there is nothing to undo. Where Connect cannot alter them, MM2 resumes anyway and
the run says that it will deliver those records twice."""

from __future__ import annotations

from kasten_bp.errors import KastenBpError
from kasten_bp.steps.models import Advanced, AdvanceNeeds, by_partition
from kasten_bp.waiting import announce
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.flow import Nothing, Step


class AdvanceMirrorMakerOffsets(Step[AdvanceNeeds, Nothing, Advanced]):
    name = "advance_mm2_offsets"

    def do(self, ctx: RunContext, needs: AdvanceNeeds, plan: Nothing) -> Advanced:
        committed = by_partition(needs.source_offsets)
        cut = by_partition(needs.cut_offsets or {})
        behind = {key: offset for key, offset in cut.items() if offset > committed.get(key, offset)}
        if not behind:
            return Advanced(mm2_offsets_advanced={})
        moves = {key: [committed[key], offset] for key, offset in behind.items()}
        try:
            ctx.platform.mirrormaker.alter_source_offsets(behind)
        except KastenBpError as exc:
            records = sum(after - before for before, after in moves.values())
            ctx.journal.warnings.append(
                f"MM2's committed offsets could not be moved to the cut ({exc}): MM2 will "
                f"deliver up to {records} records of {len(moves)} partitions to the mirror twice"
            )
            return Advanced(mm2_offsets_advanced={})
        announce(f"MM2 resumes after the cut: offsets of {len(moves)} partitions moved up")
        return Advanced(
            mm2_offsets_advanced={f"{t}/{p}": move for (t, p), move in sorted(moves.items())}
        )
