"""Check every precondition before anything changes."""

from __future__ import annotations

from kasten_bp.errors import UsageError
from kasten_bp.kafka import admin
from kasten_bp.platforms.base import Platform
from kasten_bp.steps.models import PreflightGives, PreflightNeeds
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.flow import Nothing, Step


def preflight_problems(platform: Platform, primary: str, mirror: str, mode: str) -> list[str]:
    problems = list(platform.preflight())
    for name, bootstrap in (("primary", primary), ("mirror", mirror)):
        try:
            admin.broker_ids(bootstrap, timeout=5)
        except Exception as exc:  # noqa: BLE001 - reported as a problem
            problems.append(f"{name} cluster {bootstrap} unreachable: {exc}")
    stopped = [b.id for b in platform.brokers() if not b.running]
    if stopped:
        problems.append(f"mirror brokers {stopped} are not running")
    if mode == "consistent":
        try:
            states = platform.mirrormaker.connector_states()
            failed = [n for n, s in states.items() if s == "FAILED"]
            if failed:
                problems.append(f"MM2 connectors {failed} are FAILED")
        except Exception as exc:  # noqa: BLE001 - reported as a problem
            problems.append(f"MM2 connectors unreachable: {exc}")
    return problems


class Preflight(Step[PreflightNeeds, Nothing, PreflightGives]):
    name = "preflight"

    def do(self, ctx: RunContext, needs: PreflightNeeds, plan: Nothing) -> PreflightGives:
        config = ctx.config
        problems = preflight_problems(
            ctx.platform, config.primary.bootstrap, config.mirror.bootstrap, needs.mode
        )
        if problems:
            raise UsageError("preflight failed: " + "; ".join(problems))
        return PreflightGives(brokers=[b.id for b in ctx.platform.brokers()])
