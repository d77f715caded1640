"""`groups plan`, `groups apply` and verify's `groups` section (issue 8): the consumer
groups a backup recorded, translated onto a restored cluster by content."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from kasten_bp.config import GroupsConfig
from kasten_bp.consistency.core.groups import judge
from kasten_bp.consistency.group_positions import (
    Position,
    positions,
    recorded_commits,
    records_before,
)
from kasten_bp.errors import UsageError
from kasten_bp.kafka import group_offsets
from kasten_bp.kafka import groups as kafka_groups
from kasten_bp.manifest import Manifest, RecordedTranslation


class PartitionPlan(BaseModel):
    topic: str
    restored_topic: str
    partition: int
    primary_offset: int  # the group's committed offset on the primary (its next record)
    restored_offset: int | None  # the offset to commit on the restored cluster
    method: str
    reread: int | None
    # MM2's own answer for the same partition (its latest checkpoint's downstream offset),
    # reported next to ours; None where the mirror had no checkpoint at the cut.
    checkpoint_offset: int | None = None
    # The highest offset that skips nothing the group had not read (above restored_offset
    # only after an earlier_record fallback); verify judges `ahead` only past it.
    latest_safe_offset: int | None = None
    detail: str = ""
    written: bool = False  # apply: committed by this run (False: already there, or not)


class GroupPlan(BaseModel):
    group: str
    state: str
    partitions: list[PartitionPlan]


class GroupsPlan(BaseModel):
    backup_id: str
    restored_bootstrap: str
    dry_run: bool = False
    groups: list[GroupPlan] = Field(default_factory=list)


class PartitionStanding(BaseModel):
    topic: str
    partition: int
    status: str  # exact | behind | ahead | missing
    records: int


class GroupStanding(BaseModel):
    group: str
    status: str  # the worst of its partitions
    partitions: list[PartitionStanding]


Key = tuple[str, int]
WORST_FIRST = ("ahead", "missing", "behind", "exact")


def selected(manifest: Manifest, patterns: Sequence[str]) -> list[str]:
    """The recorded groups whose id fully matches one of `patterns` (all without any)."""
    names = [g.group for g in manifest.groups]
    if not patterns:
        return names
    selection = GroupsConfig.including(list(patterns))
    return [n for n in names if selection.selects(n)]


def plan(
    primary: str, manifest: Manifest, restored: str, patterns: Sequence[str] = ()
) -> GroupsPlan:
    names = set(selected(manifest, patterns))
    captured = [g for g in manifest.groups if g.group in names]
    found = positions(primary, restored, manifest.partitions, recorded_commits(captured))
    by_group: dict[str, list[Position]] = {}
    for position in found:
        by_group.setdefault(position.committed.group, []).append(position)
    return GroupsPlan(
        backup_id=manifest.backup_id,
        restored_bootstrap=restored,
        groups=[
            GroupPlan(
                group=g.group,
                state=g.state,
                partitions=[_partition_plan(p) for p in by_group.get(g.group, [])],
            )
            for g in captured
        ],
    )


def plan_by_manifest(manifest: Manifest, restored: str, patterns: Sequence[str] = ()) -> GroupsPlan:
    """The translations the backup recorded at its cut, the primary out of reach. Each
    partition's twin (the record the group read last) must be on the restored cluster at
    its recorded offset with its recorded content; where it is not, the partition has no
    offset to write and says why: it is never applied blind."""
    names = set(selected(manifest, patterns))
    captured = [g for g in manifest.groups if g.group in names]
    wanted = {
        (t.restored_topic, p.partition, t.twin_offset)
        for g in captured
        for p in g.partitions
        if (t := p.translation) is not None and t.twin_offset is not None
    }
    # The record at each twin's offset: the last one below the offset after it.
    found = {
        (topic, partition, offset - 1): (r.offset, r.digest())
        for (topic, partition, offset), r in records_before(
            restored, {(t, p, o + 1) for t, p, o in wanted}
        ).items()
    }
    plans = []
    for g in captured:
        parts = []
        for p in g.partitions:
            t = p.translation or RecordedTranslation(
                restored_topic=p.topic,
                restored_offset=None,
                method="not_recorded",
                detail="this backup recorded no translation: the primary is needed",
            )
            plan_ = PartitionPlan(
                topic=p.topic,
                restored_topic=t.restored_topic,
                partition=p.partition,
                primary_offset=p.committed_offset,
                restored_offset=t.restored_offset,
                method=t.method,
                reread=t.reread,
                checkpoint_offset=p.checkpoint.downstream_offset if p.checkpoint else None,
                latest_safe_offset=t.latest_safe_offset,
                detail=t.detail,
            )
            if t.twin_offset is not None and found.get(
                (t.restored_topic, p.partition, t.twin_offset)
            ) != (t.twin_offset, t.twin_digest):
                plan_.restored_offset = plan_.latest_safe_offset = None
                plan_.method = "twin_not_found"
                plan_.detail = (
                    f"the record the group read last ({t.restored_topic}[{p.partition}] offset "
                    f"{t.twin_offset}) is not on {restored} as recorded: not applied"
                )
            parts.append(plan_)
        plans.append(GroupPlan(group=g.group, state=g.state, partitions=parts))
    return GroupsPlan(backup_id=manifest.backup_id, restored_bootstrap=restored, groups=plans)


def _partition_plan(position: Position) -> PartitionPlan:
    c, t = position.committed, position.translation
    return PartitionPlan(
        topic=c.topic,
        restored_topic=position.restored_topic,
        partition=c.partition,
        primary_offset=c.offset,
        restored_offset=t.restored_offset,
        method=t.method,
        reread=t.reread,
        checkpoint_offset=c.checkpoint.downstream_offset if c.checkpoint is not None else None,
        latest_safe_offset=t.latest_safe,
        detail=t.detail,
    )


def apply(the_plan: GroupsPlan, dry_run: bool = False) -> GroupsPlan:
    """Commit each group's translated offsets on the restored cluster. Refuses, before
    writing anything, when a group has active members there; writes only what differs
    (so a second run writes nothing); never writes a partition without a translation."""
    restored = the_plan.restored_bootstrap
    states = kafka_groups.describe(restored, [g.group for g in the_plan.groups])
    for name, (state, members) in sorted(states.items()):
        if members > 0:
            raise UsageError(
                f"group {name} has {members} active member(s) on {restored} ({state}): "
                "stop its consumers first; no group offsets were changed"
            )
    out = the_plan.model_copy(deep=True, update={"dry_run": dry_run})
    for group in out.groups:
        wanted = {
            (p.restored_topic, p.partition): p.restored_offset
            for p in group.partitions
            if p.restored_offset is not None
        }
        current = committed(restored, group.group, sorted(wanted))
        changes = {key: o for key, o in wanted.items() if current.get(key) != o}
        if not dry_run:
            group_offsets.alter(restored, group.group, changes)
        for p in group.partitions:
            p.written = (p.restored_topic, p.partition) in changes and not dry_run
    return out


def committed(
    bootstrap: str, group: str, keys: list[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    return {
        (c.topic, c.partition): c.offset for c in kafka_groups.committed(bootstrap, group, keys)
    }


def standings(the_plan: GroupsPlan) -> list[GroupStanding]:
    """Each group's committed offsets on the restored cluster against the translation."""
    out = []
    for group in the_plan.groups:
        keys = [(p.restored_topic, p.partition) for p in group.partitions]
        current = committed(the_plan.restored_bootstrap, group.group, keys)
        parts = []
        for p in group.partitions:
            if p.restored_offset is None:
                continue  # nothing to compare with (past the cut, or untranslatable)
            j = judge(
                current.get((p.restored_topic, p.partition)),
                p.restored_offset,
                p.latest_safe_offset,
            )
            parts.append(
                PartitionStanding(
                    topic=p.topic, partition=p.partition, status=j.status, records=j.records
                )
            )
        worst = min((WORST_FIRST.index(s.status) for s in parts), default=len(WORST_FIRST) - 1)
        out.append(GroupStanding(group=group.group, status=WORST_FIRST[worst], partitions=parts))
    return out
