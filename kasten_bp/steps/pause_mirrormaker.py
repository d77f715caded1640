"""Stop the MM2 connectors, recording their previous states first."""

from __future__ import annotations

import contextlib
from typing import Any

from kasten_bp.errors import WaitTimeout
from kasten_bp.heads import is_internal
from kasten_bp.kafka import admin
from kasten_bp.steps.base import BaseStep
from kasten_bp.waiting import wait_for
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.journal import mark

TIMEOUT = 120.0
# MM2 finds new primary topics on its refresh interval; give it a few rounds.
DISCOVERY_TIMEOUT = 30.0


def wait_topics_discovered(ctx: RunContext) -> list[str]:
    """Primary topics MM2 has not created on the mirror yet, after a bounded wait. Topics
    excluded by MM2's own filters never appear: they are reported, not waited for forever."""
    config = ctx.config

    def missing() -> list[str]:
        primary = [t for t in admin.topics(config.primary.bootstrap) if not is_internal(t)]
        mirror = set(admin.topics(config.mirror.bootstrap))
        return sorted(t for t in primary if config.replication.mirror_topic(t) not in mirror)

    with contextlib.suppress(WaitTimeout):
        what = "MM2 to create every primary topic on the mirror"
        wait_for(what, lambda: not missing(), DISCOVERY_TIMEOUT)
    return missing()


class PauseMirrorMaker(BaseStep):
    name = "pause_mirrormaker"

    def plan(self, ctx: RunContext) -> dict[str, Any]:
        return {"states": ctx.platform.mirrormaker.connector_states()}

    def do(self, ctx: RunContext, plan: dict[str, Any]) -> dict[str, Any]:
        unmirrored = wait_topics_discovered(ctx)
        mark(ctx.journal, "mm2_stopped")
        ctx.platform.mirrormaker.stop(list(plan["states"]), TIMEOUT)
        return {"stopped": list(plan["states"]), "unmirrored_topics": unmirrored}

    def undo(self, ctx: RunContext, plan: dict[str, Any]) -> None:
        if plan.get("states"):
            ctx.platform.mirrormaker.restore(plan["states"], TIMEOUT)
            mark(ctx.journal, "mm2_resumed")
