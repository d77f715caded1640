"""Check every precondition before anything changes."""

from __future__ import annotations

from typing import Any

from kasten_bp.errors import UsageError
from kasten_bp.kafka import admin
from kasten_bp.steps.base import BaseStep
from kasten_bp.workflow.engine import RunContext


def preflight_problems(ctx: RunContext, mode: str) -> list[str]:
    problems = list(ctx.platform.preflight())
    for name, bootstrap in (
        ("primary", ctx.config.primary.bootstrap),
        ("mirror", ctx.config.mirror.bootstrap),
    ):
        try:
            admin.broker_ids(bootstrap, timeout=5)
        except Exception as exc:  # noqa: BLE001 - reported as a problem
            problems.append(f"{name} cluster {bootstrap} unreachable: {exc}")
    stopped = [b.id for b in ctx.platform.brokers() if not b.running]
    if stopped:
        problems.append(f"mirror brokers {stopped} are not running")
    if mode == "consistent":
        try:
            states = ctx.platform.mirrormaker.connector_states()
            failed = [n for n, s in states.items() if s == "FAILED"]
            if failed:
                problems.append(f"MM2 connectors {failed} are FAILED")
        except Exception as exc:  # noqa: BLE001 - reported as a problem
            problems.append(f"MM2 connectors unreachable: {exc}")
    return problems


class Preflight(BaseStep):
    name = "preflight"

    def do(self, ctx: RunContext, plan: dict[str, Any]) -> dict[str, Any]:
        problems = preflight_problems(ctx, ctx.options.get("mode", "consistent"))
        if problems:
            raise UsageError("preflight failed: " + "; ".join(problems))
        return {"brokers": [b.id for b in ctx.platform.brokers()]}
