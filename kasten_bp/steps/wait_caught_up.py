"""Prove the stopped mirror holds exactly what MM2 read: for every partition MM2 committed,
the mirror's last record is the primary's record at that offset, and the mirror's end
offsets no longer move."""

from __future__ import annotations

import time
from typing import Any

from kasten_bp.errors import WaitTimeout
from kasten_bp.heads import replicated_partitions
from kasten_bp.kafka import admin, reading
from kasten_bp.steps.base import BaseStep
from kasten_bp.steps.common import offsets_to_json
from kasten_bp.waiting import wait_for
from kasten_bp.workflow.engine import RunContext


def lagging_partitions(ctx: RunContext, source_offsets: dict[tuple[str, int], int]) -> list[str]:
    config = ctx.config
    scope = replicated_partitions(config)
    marks = admin.watermarks(
        config.mirror.bootstrap, [(r.mirror_topic, r.partition) for r in scope]
    )
    keys = {(r.mirror_topic, r.partition): r for r in scope}
    tails = reading.read_tails(
        config.mirror.bootstrap,
        {key: (marks[key][0], marks[key][1], 1) for key in keys},
    )
    committed_at = {
        (r.primary_topic, r.partition): source_offsets[(r.primary_topic, r.partition)]
        for r in scope
        if (r.primary_topic, r.partition) in source_offsets
    }
    primary_marks = admin.watermarks(config.primary.bootstrap, sorted(committed_at))
    sources = reading.read_ranges(
        config.primary.bootstrap, {key: (o, o + 1) for key, o in committed_at.items()}
    )
    lagging = []
    for key, rp in keys.items():
        low, high = marks[key]
        name = f"{rp.mirror_topic}[{rp.partition}]"
        committed = committed_at.get((rp.primary_topic, rp.partition))
        if committed is None:
            if high > low:
                lagging.append(f"{name}: has records but MM2 committed no source offset")
            continue
        tail = tails[key]
        source = sources[(rp.primary_topic, rp.partition)]
        if (
            not source
            and not tail
            and primary_marks[(rp.primary_topic, rp.partition)][0] > committed
        ):
            continue  # retention removed those records on both sides: nothing left to differ
        if not tail or not source or tail[0].content() != source[0].content():
            lagging.append(f"{name}: last record differs from primary offset {committed}")
    return lagging


class WaitCaughtUp(BaseStep):
    name = "wait_caught_up"

    def do(self, ctx: RunContext, plan: dict[str, Any]) -> dict[str, Any]:
        timeout = ctx.config.backup.catch_up_timeout_seconds
        mm2 = ctx.platform.mirrormaker
        last_problem: list[str] = []

        def proven() -> dict[tuple[str, int], int] | None:
            before = _mirror_ends(ctx)
            offsets = mm2.source_offsets()
            last_problem[:] = lagging_partitions(ctx, offsets)
            time.sleep(0.5)
            if last_problem or _mirror_ends(ctx) != before:
                return None
            return offsets

        try:
            offsets = wait_for(
                "the mirror to hold everything MM2 read (catch-up proof)", proven, timeout
            )
        except WaitTimeout as exc:
            detail = f" ({'; '.join(last_problem[:3])})" if last_problem else ""
            raise WaitTimeout(f"{exc}{detail}") from None
        return {"source_offsets": offsets_to_json(offsets)}


def _mirror_ends(ctx: RunContext) -> dict[tuple[str, int], tuple[int, int]]:
    scope = replicated_partitions(ctx.config)
    return admin.watermarks(
        ctx.config.mirror.bootstrap, [(r.mirror_topic, r.partition) for r in scope]
    )
