"""Record the primary's consumer groups at the cut, with MM2's latest checkpoints (issue 8).

Runs after the catch-up is proven and the heads captured, while MM2 is still stopped (its
checkpoints cannot move) and the mirror's brokers still serve its checkpoints topic. Only
reads: the primary gains no group and no commit.
"""

from __future__ import annotations

from kasten_bp.catalog.manifests import load_manifest, save_manifest
from kasten_bp.config import GroupsConfig, ReplicationConfig
from kasten_bp.consistency.group_positions import (
    Position,
    positions,
    recorded_commits,
    records_before,
)
from kasten_bp.consistency.scope import is_internal
from kasten_bp.kafka import admin, groups
from kasten_bp.manifest import (
    GroupCapture,
    GroupCheckpoint,
    GroupPartition,
    Manifest,
    RecordedTranslation,
)
from kasten_bp.steps.models import GroupsCaptured, GroupsNeeds
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.flow import Nothing, Step


class CaptureGroups(Step[GroupsNeeds, Nothing, GroupsCaptured]):
    name = "capture_groups"

    def do(self, ctx: RunContext, needs: GroupsNeeds, plan: Nothing) -> GroupsCaptured:
        config = ctx.config
        selection = selected_groups(config.groups, needs.groups_include)
        primary, mirror = config.primary.bootstrap, config.mirror.bootstrap
        partitions = [k for k in groups.topic_partitions(primary) if not is_internal(k[0])]
        found = groups.consumer_groups(primary, selection.selects, partitions)
        checkpoints = groups.Checkpoints({}, 0)
        replication = config.replication
        wanted = checkpoint_keys(found, replication, set(admin.topics(mirror)))
        if wanted:
            topic = groups.checkpoints_topic(replication.source_alias, replication.separator)
            checkpoints = groups.latest_checkpoints(mirror, topic, wanted)
        captures = [capture(g, checkpoints, replication) for g in found]
        manifest = load_manifest(ctx.catalog, ctx.backup_id)
        manifest.groups = captures
        # The translation a restore will need, made now on the mirror, whose offsets are
        # the snapshot's while MM2 is stopped: the day the primary is gone, nothing else
        # can make it.
        commits = recorded_commits(captures)
        record_translations(
            manifest, mirror, positions(primary, mirror, manifest.partitions, commits)
        )
        save_manifest(ctx.catalog, manifest)
        offsets = [p for g in captures for p in g.partitions]
        return GroupsCaptured(
            groups_captured=len(captures),
            group_offsets=len(offsets),
            group_checkpoints=sum(p.checkpoint is not None for p in offsets),
            checkpoints_unreadable=checkpoints.unreadable,
        )


def selected_groups(configured: GroupsConfig, include: list[str] | None) -> GroupsConfig:
    """The config's selection, its include list replaced by `--group` when given."""
    if include is None:
        return configured
    return GroupsConfig(include=include, exclude=configured.exclude)


def checkpoint_keys(
    found: list[groups.GroupOffsets], replication: ReplicationConfig, mirror_topics: set[str]
) -> set[groups.CheckpointKey]:
    """The checkpoints MM2 may have for these group partitions: it keys them by the mirror's
    name of the topic, and has none for a topic it does not mirror."""
    out = set()
    for g in found:
        for c in g.offsets:
            mirror_topic = replication.mirror_topic(c.topic)
            if mirror_topic in mirror_topics:
                out.add((g.group, mirror_topic, c.partition))
    return out


def capture(
    found: groups.GroupOffsets, checkpoints: groups.Checkpoints, replication: ReplicationConfig
) -> GroupCapture:
    partitions = []
    for c in found.offsets:
        # MM2 keys a checkpoint by the mirror's name of the topic.
        cp = checkpoints.latest.get((found.group, replication.mirror_topic(c.topic), c.partition))
        partitions.append(
            GroupPartition(
                topic=c.topic,
                partition=c.partition,
                committed_offset=c.offset,
                metadata=c.metadata,
                leader_epoch=c.leader_epoch,
                checkpoint=GroupCheckpoint(
                    upstream_offset=cp.upstream_offset, downstream_offset=cp.downstream_offset
                )
                if cp is not None
                else None,
            )
        )
    return GroupCapture(
        group=found.group, state=found.state, members=found.members, partitions=partitions
    )


def record_translations(manifest: Manifest, mirror: str, found: list[Position]) -> None:
    """Each group partition's translation onto the mirror, with the record the group read
    last (its twin on the mirror)."""
    planned = {(f.committed.group, f.committed.topic, f.committed.partition): f for f in found}
    twins = records_before(
        mirror,
        {
            (f.restored_topic, f.committed.partition, f.translation.restored_offset)
            for f in found
            if f.translation.restored_offset is not None
        },
    )
    for group in manifest.groups:
        for gp in group.partitions:
            f = planned.get((group.group, gp.topic, gp.partition))
            if f is None:
                continue
            t = f.translation
            twin = None
            if t.restored_offset is not None:
                twin = twins.get((f.restored_topic, gp.partition, t.restored_offset))
            gp.translation = RecordedTranslation(
                restored_topic=f.restored_topic,
                restored_offset=t.restored_offset,
                method=t.method,
                reread=t.reread,
                latest_safe_offset=t.latest_safe,
                detail=t.detail,
                twin_offset=twin.offset if twin else None,
                twin_digest=twin.digest() if twin else None,
            )
