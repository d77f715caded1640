"""Put the MM2 connectors back into the states recorded before the stop."""

from __future__ import annotations

from typing import Any

from kasten_bp.steps.base import BaseStep
from kasten_bp.steps.pause_mirrormaker import TIMEOUT
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.journal import mark


class ResumeMirrorMaker(BaseStep):
    name = "resume_mirrormaker"

    def do(self, ctx: RunContext, plan: dict[str, Any]) -> dict[str, Any]:
        states = ctx.journal.step("pause_mirrormaker").plan.get("states", {})
        ctx.platform.mirrormaker.restore(states, TIMEOUT)
        mark(ctx.journal, "mm2_resumed")
        return {"restored": states}
