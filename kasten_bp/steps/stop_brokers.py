"""Flush and stop the mirror's brokers cleanly (clean-shutdown markers written); starting
them again is deferred, so it happens whatever fails later."""

from __future__ import annotations

from kasten_bp.steps.models import BrokerIds, RunningBrokers, StoppedBrokers
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.flow import Deferral, DeferredAction, Nothing, Step


class StopBrokers(Step[Nothing, RunningBrokers, StoppedBrokers]):
    name = "stop_brokers"
    defers = ("start_brokers",)

    def plan(self, ctx: RunContext, needs: Nothing) -> RunningBrokers:
        return RunningBrokers(running_brokers=[b.id for b in ctx.platform.brokers() if b.running])

    def defer(self, needs: Nothing, plan: RunningBrokers) -> list[Deferral]:
        return [Deferral(action=StartBrokers.name, args={"broker_ids": plan.running_brokers})]

    def do(self, ctx: RunContext, needs: Nothing, plan: RunningBrokers) -> StoppedBrokers:
        timeout = ctx.config.backup.broker_stop_timeout_seconds
        # Never quiet: a killed broker is a warning of the run (exit 5, the backup kept).
        ctx.journal.warnings += ctx.platform.stop_brokers(plan.running_brokers, timeout)
        return StoppedBrokers(stopped_brokers=plan.running_brokers)


class StartBrokers(DeferredAction[BrokerIds]):
    """Start the brokers that were running; waits for leaders and full ISRs (idempotent)."""

    name = "start_brokers"

    def run(self, ctx: RunContext, args: BrokerIds) -> None:
        timeout = ctx.config.backup.broker_start_timeout_seconds
        ctx.platform.start_brokers(args.broker_ids, timeout)
