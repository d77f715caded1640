"""Capturing and translating partition heads: the mirror's last K records and where they
live on the primary."""

from __future__ import annotations

from dataclasses import dataclass

from kasten_bp.config import Config
from kasten_bp.kafka import admin, reading
from kasten_bp.manifest import HeadRecord, PartitionHead
from kasten_bp.records import Record, window_digest
from kasten_bp.verify.matching import align

# Topics that belong to Connect, MM2 or Kafka itself, never to the user.
INTERNAL_SUFFIXES = (".internal", ".replica")
INTERNAL_NAMES = {"heartbeats"}
INTERNAL_PREFIXES = ("__", "mirrormaker2-cluster-", "connect-", "mm2-")


def is_internal(topic: str) -> bool:
    return (
        topic in INTERNAL_NAMES
        or topic.startswith(INTERNAL_PREFIXES)
        or topic.endswith(INTERNAL_SUFFIXES)
        or topic.endswith(".heartbeats")
    )


@dataclass(frozen=True)
class ReplicatedPartition:
    mirror_topic: str
    primary_topic: str
    partition: int


def replicated_partitions(config: Config) -> list[ReplicatedPartition]:
    """Mirror partitions that replicate a primary topic (the backup's scope)."""
    mirror_topics = admin.topics(config.mirror.bootstrap)
    primary_topics = admin.topics(config.primary.bootstrap)
    out = []
    for mirror_topic, count in sorted(mirror_topics.items()):
        if is_internal(mirror_topic):
            continue
        primary_topic = config.replication.primary_topic(mirror_topic)
        if primary_topic is None or primary_topic not in primary_topics:
            continue
        out += [ReplicatedPartition(mirror_topic, primary_topic, p) for p in range(count)]
    return out


def compacted_topics(bootstrap: str, topic_names: list[str]) -> set[str]:
    from kasten_bp.kafka.configs import topic_configs

    configs = topic_configs(bootstrap, topic_names)
    return {t for t, c in configs.items() if "compact" in c.get("cleanup.policy", "")}


def translate_to_primary(
    config: Config,
    primary_topic: str,
    partition: int,
    window: list[Record],
    hint_last_offset: int | None,
    compacted: bool,
) -> list[int | None]:
    """Primary offsets of `window`'s records, by content. `hint_last_offset` (MM2's committed
    source offset) narrows the search; a timestamp lookup is the fallback."""
    if not window:
        return []
    primary = config.primary.bootstrap
    ((low, high),) = admin.watermarks(primary, [(primary_topic, partition)]).values()
    if hint_last_offset is not None and low <= hint_last_offset < high:
        # Look back far enough for control records and compaction holes.
        start = max(low, hint_last_offset + 1 - 4 * len(window) - 16)
        candidates = reading.read_range(
            primary, primary_topic, partition, start, hint_last_offset + 1
        )
        aligned = align(window, candidates, allow_gaps=compacted)
        if all(o is not None for o in aligned):
            return aligned
    start = admin.offsets_for_times(primary, (primary_topic, partition), window[0].timestamp)
    if start < 0:
        return [None] * len(window)
    end = min(high, start + 4 * len(window) + 10_000)
    candidates = reading.read_range(primary, primary_topic, partition, start, end)
    return align(window, candidates, allow_gaps=compacted)


@dataclass(frozen=True)
class TranslationRequest:
    primary_topic: str
    partition: int
    window: list[Record]
    hint_last_offset: int | None
    compacted: bool


def translate_many(config: Config, requests: list[TranslationRequest]) -> list[list[int | None]]:
    """`translate_to_primary` for many partitions, with the hinted reads batched into one."""
    primary = config.primary.bootstrap
    keys = [(r.primary_topic, r.partition) for r in requests]
    marks = admin.watermarks(primary, sorted(set(keys)))
    ranges = {}
    for r, key in zip(requests, keys, strict=True):
        low, high = marks[key]
        hint = r.hint_last_offset
        if r.window and hint is not None and low <= hint < high:
            ranges[key] = (max(low, hint + 1 - 4 * len(r.window) - 16), hint + 1)
    candidates = reading.read_ranges(primary, ranges)
    results: list[list[int | None]] = []
    for r, key in zip(requests, keys, strict=True):
        aligned: list[int | None] = [None] * len(r.window)
        if key in candidates:
            aligned = align(r.window, candidates[key], allow_gaps=r.compacted)
        if r.window and not all(o is not None for o in aligned):
            aligned = translate_to_primary(
                config, r.primary_topic, r.partition, r.window, None, r.compacted
            )
        results.append(aligned)
    return results


def capture_heads(
    config: Config, window_size: int, source_offsets: dict[tuple[str, int], int]
) -> list[PartitionHead]:
    scope = replicated_partitions(config)
    mirror = config.mirror.bootstrap
    marks = admin.watermarks(mirror, [(r.mirror_topic, r.partition) for r in scope])
    compacted = compacted_topics(mirror, sorted({r.mirror_topic for r in scope}))
    windows = reading.read_tails(
        mirror, {key: (low, high, window_size) for key, (low, high) in marks.items()}
    )
    requests = [
        TranslationRequest(
            rp.primary_topic,
            rp.partition,
            windows[(rp.mirror_topic, rp.partition)],
            source_offsets.get((rp.primary_topic, rp.partition)),
            rp.mirror_topic in compacted,
        )
        for rp in scope
    ]
    heads = []
    for rp, request, primary_offsets in zip(
        scope, requests, translate_many(config, requests), strict=True
    ):
        low, high = marks[(rp.mirror_topic, rp.partition)]
        heads.append(
            PartitionHead(
                topic=rp.mirror_topic,
                primary_topic=rp.primary_topic,
                partition=rp.partition,
                log_start_offset=low,
                end_offset=high,
                compacted=request.compacted,
                window_digest=window_digest(request.window),
                head=[
                    HeadRecord(
                        offset=r.offset, timestamp=r.timestamp, digest=r.digest(), primary_offset=po
                    )
                    for r, po in zip(request.window, primary_offsets, strict=True)
                ],
                mm2_source_offset=request.hint_last_offset,
            )
        )
    return heads
