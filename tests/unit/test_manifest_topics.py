"""`Manifest.only_topics`: the backup as `verify --topic` sees it."""

from __future__ import annotations

import re

from kasten_bp.manifest import (
    ClusterInfo,
    GroupCapture,
    GroupPartition,
    Manifest,
    PartitionHead,
)


def _head(topic: str, partition: int) -> PartitionHead:
    return PartitionHead(
        topic=f"primary.{topic}",
        primary_topic=topic,
        partition=partition,
        log_start_offset=0,
        end_offset=10,
        window_digest="d",
        head=[],
    )


def _manifest() -> Manifest:
    return Manifest(
        backup_id="bk-1",
        created_at="2026-12-03T00:00:00Z",
        mode="consistent",
        platform="local",
        head_window=64,
        primary=ClusterInfo(bootstrap="p:1"),
        mirror=ClusterInfo(bootstrap="m:1"),
        replication_policy="default",
        source_alias="primary",
        partitions=[_head("orders", 0), _head("orders", 1), _head("orders-dlq", 0)],
        groups=[
            GroupCapture(
                group="billing",
                state="EMPTY",
                partitions=[
                    GroupPartition(topic="orders", partition=1, committed_offset=5),
                    GroupPartition(topic="orders-dlq", partition=0, committed_offset=2),
                ],
            ),
            GroupCapture(
                group="dlq-reader",
                state="EMPTY",
                partitions=[GroupPartition(topic="orders-dlq", partition=0, committed_offset=1)],
            ),
        ],
    )


def test_only_topics_keeps_the_partitions_and_group_positions_of_matching_topics() -> None:
    narrowed = _manifest().only_topics(re.compile(r"primary\.orders"))
    assert [h.key for h in narrowed.partitions] == [("primary.orders", 0), ("primary.orders", 1)]
    # Matched on the restored name in full (not a prefix: orders-dlq is left out); groups
    # keep the positions on the kept topics' primary names, and go when none is left.
    assert [(g.group, [(p.topic, p.partition) for p in g.partitions]) for g in narrowed.groups] == [
        ("billing", [("orders", 1)])
    ]


def test_only_topics_matching_nothing_leaves_nothing_and_the_original_whole() -> None:
    original = _manifest()
    narrowed = original.only_topics(re.compile("orders"))  # primary names do not count
    assert narrowed.partitions == [] and narrowed.groups == []
    assert len(original.partitions) == 3 and len(original.groups) == 2
