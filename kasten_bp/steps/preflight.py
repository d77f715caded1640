"""Check every precondition before anything changes."""

from __future__ import annotations

import contextlib

from kasten_bp.config import ReplicationConfig
from kasten_bp.connect import PASSING
from kasten_bp.consistency.scope import is_internal
from kasten_bp.errors import UsageError, WaitTimeout
from kasten_bp.kafka import access
from kasten_bp.platforms.base import Platform
from kasten_bp.steps.models import PreflightGives, PreflightNeeds
from kasten_bp.waiting import wait_for
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.flow import Nothing, Step

# Long enough for a TLS + SASL login; a refused login or certificate ends the wait at once.
REACH_TIMEOUT = 5.0
# How long a Connect rebalance may keep a connector UNASSIGNED or RESTARTING.
SETTLE_TIMEOUT = 30.0


def preflight_problems(
    platform: Platform,
    primary: str,
    mirror: str,
    mode: str,
    replication: ReplicationConfig | None = None,
) -> list[str]:
    problems = list(platform.preflight())
    reached: dict[str, access.Reached] = {}
    for name, bootstrap in (("primary", primary), ("mirror", mirror)):
        try:
            reached[name] = access.reach(bootstrap, timeout=REACH_TIMEOUT)
        except UsageError as exc:  # the one-line cause: login, TLS, address
            problems.append(f"{name} cluster {bootstrap}: {exc}")
        except Exception as exc:  # noqa: BLE001 - reported as a problem
            problems.append(f"{name} cluster {bootstrap} unreachable: {exc}")
    if "primary" in reached:
        expected = _primary_names(reached.get("mirror"), replication)
        try:
            denied = access.permission_problems(primary, reached["primary"], expected)
        except Exception as exc:  # noqa: BLE001 - reported as a problem
            denied = [f"checking permissions: {exc}"]
        problems += [f"primary cluster {primary}: {p}" for p in denied]
    stopped = [b.id for b in platform.brokers() if not b.running]
    if stopped:
        problems.append(f"mirror brokers {stopped} are not running")
    if mode == "consistent":
        try:
            states = settled_states(platform)
            failed = [n for n, s in states.items() if s == "FAILED"]
            if failed:
                problems.append(f"MM2 connectors {failed} are FAILED")
            passing = {n: s for n, s in states.items() if s in PASSING}
            if passing:
                problems.append(
                    f"MM2 connectors did not settle within {SETTLE_TIMEOUT:.0f}s: {passing}"
                )
        except Exception as exc:  # noqa: BLE001 - reported as a problem
            problems.append(f"MM2 connectors unreachable: {exc}")
    return problems


def settled_states(platform: Platform) -> dict[str, str]:
    """MM2's connector states once none is UNASSIGNED or RESTARTING (a Connect rebalance
    passing), waited for up to SETTLE_TIMEOUT; then as they are."""
    seen: dict[str, str] = {}

    def settled() -> bool:
        seen.clear()
        seen.update(platform.mirrormaker.connector_states())
        return not any(s in PASSING for s in seen.values())

    with contextlib.suppress(WaitTimeout):
        wait_for(
            "MM2's connectors to settle (none UNASSIGNED or RESTARTING)", settled, SETTLE_TIMEOUT
        )
    return dict(seen)


def _primary_names(
    mirror: access.Reached | None, replication: ReplicationConfig | None
) -> list[str]:
    """The primary topics the mirror holds copies of: the backup reads each of them, even
    those the primary hides from a user who may not describe them."""
    if mirror is None or replication is None:
        return []
    names = (replication.primary_topic(t) for t in mirror.topics if not is_internal(t))
    return sorted(n for n in names if n is not None)


class Preflight(Step[PreflightNeeds, Nothing, PreflightGives]):
    name = "preflight"

    def do(self, ctx: RunContext, needs: PreflightNeeds, plan: Nothing) -> PreflightGives:
        config = ctx.config
        problems = preflight_problems(
            ctx.platform,
            config.primary.bootstrap,
            config.mirror.bootstrap,
            needs.mode,
            config.replication,
        )
        if problems:
            raise UsageError("preflight failed: " + "; ".join(problems))
        return PreflightGives(brokers=[b.id for b in ctx.platform.brokers()])
