"""A base for steps: nothing to plan, nothing to undo unless a step says otherwise."""

from __future__ import annotations

from typing import Any

from kasten_bp.workflow.engine import RunContext


class BaseStep:
    name = "step"

    def plan(self, ctx: RunContext) -> dict[str, Any]:
        return {}

    def do(self, ctx: RunContext, plan: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def undo(self, ctx: RunContext, plan: dict[str, Any]) -> None:
        return None
