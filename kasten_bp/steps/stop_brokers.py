"""Flush and stop the mirror's brokers cleanly (clean-shutdown markers written)."""

from __future__ import annotations

from typing import Any

from kasten_bp.steps.base import BaseStep
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.journal import mark


class StopBrokers(BaseStep):
    name = "stop_brokers"

    def plan(self, ctx: RunContext) -> dict[str, Any]:
        return {"running": [b.id for b in ctx.platform.brokers() if b.running]}

    def do(self, ctx: RunContext, plan: dict[str, Any]) -> dict[str, Any]:
        mark(ctx.journal, "brokers_stopped")
        ctx.platform.stop_brokers(plan["running"], ctx.config.backup.broker_stop_timeout_seconds)
        return {"stopped": plan["running"]}

    def undo(self, ctx: RunContext, plan: dict[str, Any]) -> None:
        ctx.platform.start_brokers(
            plan.get("running", []), ctx.config.backup.broker_start_timeout_seconds
        )
        mark(ctx.journal, "brokers_serving")


class StartBrokers(BaseStep):
    name = "start_brokers"

    def do(self, ctx: RunContext, plan: dict[str, Any]) -> dict[str, Any]:
        ids = ctx.journal.step("stop_brokers").plan.get("running", [])
        ctx.platform.start_brokers(ids, ctx.config.backup.broker_start_timeout_seconds)
        mark(ctx.journal, "brokers_serving")
        return {"started": ids}
