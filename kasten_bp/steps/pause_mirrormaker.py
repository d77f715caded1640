"""Stop the MM2 connectors, recording their previous states first."""

from __future__ import annotations

from typing import Any

from kasten_bp.steps.base import BaseStep
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.journal import mark

TIMEOUT = 120.0


class PauseMirrorMaker(BaseStep):
    name = "pause_mirrormaker"

    def plan(self, ctx: RunContext) -> dict[str, Any]:
        return {"states": ctx.platform.mirrormaker.connector_states()}

    def do(self, ctx: RunContext, plan: dict[str, Any]) -> dict[str, Any]:
        mark(ctx.journal, "mm2_stopped")
        ctx.platform.mirrormaker.stop(list(plan["states"]), TIMEOUT)
        return {"stopped": list(plan["states"])}

    def undo(self, ctx: RunContext, plan: dict[str, Any]) -> None:
        if plan.get("states"):
            ctx.platform.mirrormaker.restore(plan["states"], TIMEOUT)
            mark(ctx.journal, "mm2_resumed")
