"""`make bench`, consumer groups (issue 8): `groups plan` for many groups against the
head-window verify of the same partitions on the same restored cluster, and how many
groups and committed offsets a backup writes to the primary (must be 0).

Called by scripts/bench.py on its lab after the other measures; the groups are set up with
the admin API on a topic of their own, then one consistent backup records them at the cut.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from kasten_bp import groups
from kasten_bp.backup import Backups
from kasten_bp.config import Config
from kasten_bp.consistency.core.report import OK_STATUSES
from kasten_bp.consistency.verify import verify
from kasten_bp.kafka import admin, group_offsets, producing
from kasten_bp.kafka import groups as kafka_groups
from kasten_bp.manifest import Manifest
from kasten_bp.records import Record

TOPIC = "bench-groups"
Log = Callable[[str], None]


def _committed_everywhere(bootstrap: str) -> dict[tuple[str, str, int], int]:
    """Every group's committed offsets on a cluster: (group, topic, partition) -> offset."""
    everything = kafka_groups.topic_partitions(bootstrap)
    return {
        (g.group, c.topic, c.partition): c.offset
        for g in kafka_groups.consumer_groups(bootstrap, lambda _: True, everything)
        for c in g.offsets
    }


def setup(config: Config, groups_count: int, partitions: int, per_partition: int) -> None:
    """A topic of `partitions` with `per_partition` records each, and `groups_count` groups
    committed at spread positions on every partition."""
    primary = config.primary.bootstrap
    admin.create_topic(primary, TOPIC, partitions)
    producing.produce(
        primary,
        [
            Record(TOPIC, p, -1, 0, f"k{i}".encode(), f"g-{p}-{i}".encode(), ())
            for p in range(partitions)
            for i in range(per_partition)
        ],
    )
    for g in range(groups_count):
        offsets = {(TOPIC, p): (g * 7 + p * 3) % per_partition + 1 for p in range(partitions)}
        group_offsets.alter(primary, f"bench-group-{g:03d}", offsets)


def _timed(body: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = body()
    return result, time.perf_counter() - start


def run(
    config: Config,
    backups: Backups,
    take_backup: Callable[[Backups], tuple[dict[str, Any], Manifest, float]],
    restore: Callable[[Backups, Manifest], str],
    wait_mirrored: Callable[[int], None],
    repeats: int,
    log: Log,
    groups_count: int = 200,
    partitions: int = 30,
    per_partition: int = 200,
) -> dict[str, Any]:
    primary = config.primary.bootstrap
    log(f"consumer groups: {groups_count} groups x {partitions} partitions on {TOPIC}")
    setup(config, groups_count, partitions, per_partition)
    wait_mirrored(partitions * per_partition)
    before = _committed_everywhere(primary)
    summary, manifest, _ = take_backup(backups)
    after = _committed_everywhere(primary)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    new_groups = sorted({k[0] for k in after} - {k[0] for k in before})
    recorded = sum(len(g.partitions) for g in manifest.groups if g.group.startswith("bench-"))

    log(f"restoring {summary['backup_id']} for groups plan")
    restored = restore(backups, manifest)
    patterns = ["bench-group-.*"]
    ours = [h for h in manifest.partitions if h.primary_topic == TOPIC]
    only_ours = manifest.model_copy(update={"partitions": ours})
    plans, plan_times, verify_times, verdict = [], [], [], None
    # A warm-up round of each, not counted (the first read of a process makes its pooled
    # consumers), then plan and verify alternate, so neither gets the warmer machine.
    for i in range(repeats + 1):
        plan, seconds = _timed(lambda: groups.plan(primary, manifest, restored, patterns))
        plans.append(plan)
        if i:
            plan_times.append(seconds)
        report, seconds = _timed(lambda: verify(primary, only_ours, restored, deep=False))
        if i:
            verify_times.append(seconds)
        # Only this topic's partitions: the restored cluster's other topics are reported as
        # not in this cut-down manifest, which says nothing about these.
        ours_ok = all(p.status in OK_STATUSES for p in report.partitions if p.topic == TOPIC)
        verdict = "consistent" if ours_ok else "inconsistent"
    methods: dict[str, int] = {}
    for g in plans[-1].groups:
        for p in g.partitions:
            methods[p.method] = methods.get(p.method, 0) + 1
    plan_s, verify_s = statistics.median(plan_times), statistics.median(verify_times)
    return {
        "backup_id": summary["backup_id"],
        "groups": groups_count,
        "partitions": partitions,
        "group_partitions_recorded": recorded,
        "plan_median_seconds": round(plan_s, 4),
        "plan_runs": [round(t, 4) for t in plan_times],
        "methods": methods,
        "head_verify_median_seconds": round(verify_s, 4),
        "head_verify_runs": [round(t, 4) for t in verify_times],
        "head_verify_verdict": verdict,
        "plan_vs_head_verify": round(plan_s / verify_s, 2) if verify_s else None,
        "primary_group_offsets_changed": len(changed),
        "primary_groups_created": new_groups,
        "capture_groups_seconds": next(
            (s["seconds"] for s in summary["steps"] if s["name"] == "capture_groups"), None
        ),
    }


def render(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"groups plan, {r['groups']} groups x {r['partitions']} partitions "
            f"({r['group_partitions_recorded']:,} group partitions recorded): "
            f"{r['plan_median_seconds']}s median {r['plan_runs']}, methods {r['methods']}",
            f"head-window verify of the same {r['partitions']} partitions: "
            f"{r['head_verify_median_seconds']}s median {r['head_verify_runs']} "
            f"({r['head_verify_verdict']}); ratio plan/verify {r['plan_vs_head_verify']} "
            "(aim <= 2)",
            f"written to the primary by the backup: {r['primary_group_offsets_changed']} "
            f"committed offsets changed, groups created {r['primary_groups_created'] or 'none'} "
            f"(must be 0 and none); capture_groups step {r['capture_groups_seconds']}s",
        ]
    )
