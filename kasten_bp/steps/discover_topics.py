"""Wait (bounded) until MM2 has created every primary topic on the mirror."""

from __future__ import annotations

import contextlib

from kasten_bp.consistency.scope import is_internal
from kasten_bp.errors import WaitTimeout
from kasten_bp.kafka import admin
from kasten_bp.steps.models import Discovered
from kasten_bp.waiting import wait_for
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.flow import Nothing, Step

# MM2 finds new primary topics on its refresh interval; give it a few rounds.
DISCOVERY_TIMEOUT = 30.0


class DiscoverTopics(Step[Nothing, Nothing, Discovered]):
    name = "discover_topics"

    def do(self, ctx: RunContext, needs: Nothing, plan: Nothing) -> Discovered:
        config = ctx.config

        def missing() -> list[str]:
            primary = [t for t in admin.topics(config.primary.bootstrap) if not is_internal(t)]
            mirror = set(admin.topics(config.mirror.bootstrap))
            return sorted(t for t in primary if config.replication.mirror_topic(t) not in mirror)

        # Topics MM2's filters exclude never appear: reported, not waited for forever.
        with contextlib.suppress(WaitTimeout):
            what = "MM2 to create every primary topic on the mirror"
            wait_for(what, lambda: not missing(), DISCOVERY_TIMEOUT)
        return Discovered(unmirrored_topics=missing())
