"""Stop the MM2 connectors, recording their previous states first; putting them back is
deferred, so it happens whatever fails later."""

from __future__ import annotations

from kasten_bp.steps.models import ConnectorStates, Stopped
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.flow import Deferral, DeferredAction, Nothing, Step

TIMEOUT = 120.0


class PauseMirrorMaker(Step[Nothing, ConnectorStates, Stopped]):
    name = "pause_mirrormaker"
    defers = ("resume_mirrormaker",)

    def plan(self, ctx: RunContext, needs: Nothing) -> ConnectorStates:
        return ConnectorStates(connector_states=ctx.platform.mirrormaker.connector_states())

    def defer(self, needs: Nothing, plan: ConnectorStates) -> list[Deferral]:
        return [Deferral(action=ResumeMirrorMaker.name, args=plan.model_dump())]

    def do(self, ctx: RunContext, needs: Nothing, plan: ConnectorStates) -> Stopped:
        ctx.platform.mirrormaker.stop(list(plan.connector_states), TIMEOUT)
        return Stopped(stopped_connectors=list(plan.connector_states))


class ResumeMirrorMaker(DeferredAction[ConnectorStates]):
    """Put the connectors back into the states recorded before the stop (idempotent)."""

    name = "resume_mirrormaker"

    def run(self, ctx: RunContext, args: ConnectorStates) -> None:
        if args.connector_states:
            ctx.platform.mirrormaker.restore(args.connector_states, TIMEOUT)
