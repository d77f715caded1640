"""Prove the stopped mirror holds exactly what MM2 read: for every partition MM2 committed,
the mirror's last record is the primary's record at that offset, and the mirror's end
offsets no longer move."""

from __future__ import annotations

import time

from kasten_bp.consistency.catch_up import lagging_partitions
from kasten_bp.consistency.scope import replicated_partitions
from kasten_bp.errors import TemporaryError, WaitTimeout
from kasten_bp.kafka import admin
from kasten_bp.steps.models import SourceOffsets
from kasten_bp.waiting import wait_for
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.flow import Nothing, Step

# How long the mirror's end offsets must stay put to count as settled.
SETTLE_SECONDS = 0.5


class WaitCaughtUp(Step[Nothing, Nothing, SourceOffsets]):
    name = "wait_caught_up"

    def do(self, ctx: RunContext, needs: Nothing, plan: Nothing) -> SourceOffsets:
        config = ctx.config
        primary, mirror = config.primary.bootstrap, config.mirror.bootstrap
        mm2 = ctx.platform.mirrormaker

        def proven() -> dict[tuple[str, int], int]:
            scope = replicated_partitions(primary, mirror, config.replication)
            keys = [rp.mirror_key for rp in scope]
            first_look = time.monotonic()
            before = admin.watermarks(mirror, keys)
            offsets = mm2.source_offsets()
            problems = lagging_partitions(primary, mirror, scope, offsets)
            if problems:
                raise TemporaryError("; ".join(problems[:3]))
            # Settled: unmoved for SETTLE_SECONDS since the first look, the proof's own
            # reads included (this wait is MM2 downtime: no sleep on top of them).
            time.sleep(max(0.0, SETTLE_SECONDS - (time.monotonic() - first_look)))
            if admin.watermarks(mirror, keys) != before:
                raise TemporaryError("the mirror's end offsets still move")
            return offsets

        what = "the mirror to hold everything MM2 read (catch-up proof)"
        try:
            offsets = wait_for(what, proven, config.backup.catch_up_timeout_seconds)
        except WaitTimeout as exc:
            raise WaitTimeout(str(exc)) from None
        return SourceOffsets.of(offsets)
