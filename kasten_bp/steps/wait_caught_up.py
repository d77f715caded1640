"""Prove the stopped mirror holds exactly what MM2 read, or a clean continuation of it:
for every partition MM2 committed, the mirror's last record is the primary's record at that
offset or one of the primary's records after it with everything in between; and the
mirror's end offsets no longer move. The cut is what the mirror holds."""

from __future__ import annotations

import time

from kasten_bp.consistency.catch_up import catch_up
from kasten_bp.consistency.scope import replicated_partitions
from kasten_bp.errors import PermanentError, TemporaryError, WaitTimeout
from kasten_bp.kafka import admin
from kasten_bp.steps.models import SourceOffsets
from kasten_bp.waiting import wait_for
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.flow import Nothing, Step

Key = tuple[str, int]

# How long the mirror's end offsets must stay put to count as settled.
SETTLE_SECONDS = 0.5
# With MM2 stopped nothing changes the mirror: once its ends and MM2's committed offsets
# have stood still this long, a partition that is still no continuation never will be.
REFUSE_AFTER_SECONDS = 10.0


class Stillness:
    """How long a polled value has stood still."""

    def __init__(self) -> None:
        self.seen: object = None
        self.since = 0.0

    def for_seconds(self, value: object) -> float:
        now = time.monotonic()
        if value != self.seen:
            self.seen, self.since = value, now
        return now - self.since


class WaitCaughtUp(Step[Nothing, Nothing, SourceOffsets]):
    name = "wait_caught_up"

    def do(self, ctx: RunContext, needs: Nothing, plan: Nothing) -> SourceOffsets:
        config = ctx.config
        primary, mirror = config.primary.bootstrap, config.mirror.bootstrap
        mm2 = ctx.platform.mirrormaker
        settled = Stillness()

        def proven() -> SourceOffsets:
            scope = replicated_partitions(primary, mirror, config.replication)
            keys = [rp.mirror_key for rp in scope]
            first_look = time.monotonic()
            before = admin.watermarks(mirror, keys)
            offsets = mm2.source_offsets()
            verdicts = catch_up(primary, mirror, scope, offsets)
            problems = [v.problem for _, v in verdicts if v.problem is not None]
            if problems:
                if settled.for_seconds((before, offsets)) >= REFUSE_AFTER_SECONDS:
                    raise PermanentError(
                        "the stopped mirror settled and does not hold what MM2 read: "
                        + "; ".join(problems[:3])
                    )
                raise TemporaryError("; ".join(problems[:3]))
            # Settled: unmoved for SETTLE_SECONDS since the first look, the proof's own
            # reads included (this wait is MM2 downtime: no sleep on top of them).
            time.sleep(max(0.0, SETTLE_SECONDS - (time.monotonic() - first_look)))
            if admin.watermarks(mirror, keys) != before:
                raise TemporaryError("the mirror's end offsets still move")
            cut = {rp.primary_key: v.cut for rp, v in verdicts if v.cut is not None}
            return SourceOffsets.of(offsets, cut)

        what = "the mirror to hold everything MM2 read (catch-up proof)"
        try:
            return wait_for(what, proven, config.backup.catch_up_timeout_seconds)
        except WaitTimeout as exc:
            raise WaitTimeout(str(exc)) from None
