"""Stop the MM2 connectors that carry data into the backup, recording their previous
states first; putting them back is deferred, so it happens whatever fails later."""

from __future__ import annotations

from kasten_bp.connect import restorable
from kasten_bp.steps.models import ConnectorStates, Stopped
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.flow import Deferral, DeferredAction, Nothing, Step

TIMEOUT = 120.0
# MirrorHeartbeatConnector writes only the mirror's `heartbeats` topic, which no backup
# covers (scope.INTERNAL_NAMES), so it keeps running: its task is the slowest of the three
# to stop and to start again, and stopping it would only lengthen MM2's downtime.
LEFT_RUNNING = ("MirrorHeartbeatConnector",)


def to_stop(states: dict[str, str]) -> dict[str, str]:
    """The connectors a backup stops, with the states to put them back into."""
    return {name: state for name, state in states.items() if not name.endswith(LEFT_RUNNING)}


class PauseMirrorMaker(Step[Nothing, ConnectorStates, Stopped]):
    name = "pause_mirrormaker"
    defers = ("resume_mirrormaker",)

    def plan(self, ctx: RunContext, needs: Nothing) -> ConnectorStates:
        # Every connector's state: the manifest records them all, each one `resume` can set.
        states = ctx.platform.mirrormaker.connector_states()
        return ConnectorStates(connector_states={n: restorable(s) for n, s in states.items()})

    def defer(self, needs: Nothing, plan: ConnectorStates) -> list[Deferral]:
        stopped = ConnectorStates(connector_states=to_stop(plan.connector_states))
        return [Deferral(action=ResumeMirrorMaker.name, args=stopped.model_dump())]

    def do(self, ctx: RunContext, needs: Nothing, plan: ConnectorStates) -> Stopped:
        names = list(to_stop(plan.connector_states))
        ctx.platform.mirrormaker.stop(names, TIMEOUT)
        return Stopped(stopped_connectors=names)


class ResumeMirrorMaker(DeferredAction[ConnectorStates]):
    """Put the stopped connectors back into their recorded states (idempotent)."""

    name = "resume_mirrormaker"

    def run(self, ctx: RunContext, args: ConnectorStates) -> None:
        if args.connector_states:
            ctx.platform.mirrormaker.restore(args.connector_states, TIMEOUT)
