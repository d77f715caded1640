"""Preflight of the target, before any record is written: one line per problem, naming the
topic and the check. `target_problems` judges (pure); `describe_target` reads."""

from __future__ import annotations

from dataclasses import dataclass

from kasten_bp.errors import UsageError
from kasten_bp.kafka import access, admin
from kasten_bp.kafka.configs import topic_configs
from kasten_bp.replay.plan import PartitionPlan
from kasten_bp.replay.source import SourceTopic

REACH_TIMEOUT = 10.0
MAX_MESSAGE_BYTES = "max.message.bytes"
TIMESTAMP_TYPE = "message.timestamp.type"


@dataclass(frozen=True)
class TargetTopic:
    name: str
    # partition -> (log start offset, end offset)
    partitions: dict[int, tuple[int, int]]


def target_problems(
    plan: list[PartitionPlan],
    sources: dict[str, SourceTopic],
    target: dict[str, TargetTopic],
    create_topics: bool,
    allow_non_empty: bool,
) -> list[str]:
    problems: list[str] = []
    done: set[str] = set()
    for item in plan:
        name = item.target_topic
        if name in done:
            continue
        done.add(name)
        source_count = len(sources[item.source_topic].partitions)
        have = target.get(name)
        if have is None:
            if not create_topics:
                problems.append(
                    f"topic {name}: target missing: no such topic on the target "
                    "(create it, or set create_topics: true)"
                )
            continue
        if item.skip_target_checks:
            continue
        if len(have.partitions) < source_count:
            problems.append(
                f"topic {name}: partition count: the target has {len(have.partitions)} "
                f"partitions, the source {item.source_topic} has {source_count}"
            )
        if not allow_non_empty:
            full = [p for p, (low, high) in sorted(have.partitions.items()) if high > low]
            if full:
                problems.append(
                    f"topic {name}: target not empty: partitions {', '.join(map(str, full))} "
                    "hold records (pass --allow-non-empty to append)"
                )
    # A partition the target lacks (a checked topic already said so; this catches the rest).
    for item in plan:
        have = target.get(item.target_topic)
        if have is not None and item.skip_target_checks and item.partition not in have.partitions:
            problems.append(
                f"topic {item.target_topic}: partition count: the target has no partition "
                f"{item.partition}"
            )
    return problems


def size_problems(
    plan: list[PartitionPlan],
    source_configs: dict[str, dict[str, str]],
    target_configs: dict[str, dict[str, str]],
) -> list[str]:
    """A target topic must accept records as large as its source topic does: reading the
    largest record of a range would cost a pass over the data, so the topics' limits are
    compared (`disable_preflight_checks` skips it when the records are known to be small)."""
    problems = []
    done: set[str] = set()
    for item in plan:
        name = item.target_topic
        if name in done or item.skip_target_checks or name not in target_configs:
            continue
        done.add(name)
        source_limit = source_configs.get(item.source_topic, {}).get(MAX_MESSAGE_BYTES)
        target_limit = target_configs[name].get(MAX_MESSAGE_BYTES)
        if source_limit is None or target_limit is None:
            continue
        if int(target_limit) < int(source_limit):
            problems.append(
                f"topic {name}: {MAX_MESSAGE_BYTES}: the target accepts batches up to "
                f"{target_limit} bytes, the source {item.source_topic} up to {source_limit}"
            )
    return problems


def timestamp_problems(
    plan: list[PartitionPlan], target_configs: dict[str, dict[str, str]]
) -> list[str]:
    """A target that stamps its own time would replace every replayed timestamp."""
    return [
        f"topic {name}: {TIMESTAMP_TYPE}: the target stamps LogAppendTime, which would "
        "replace the replayed records' timestamps"
        for name in sorted({p.target_topic for p in plan})
        if target_configs.get(name, {}).get(TIMESTAMP_TYPE) == "LogAppendTime"
    ]


def log_append_time_sources(
    plan: list[PartitionPlan], source_configs: dict[str, dict[str, str]]
) -> list[str]:
    """Source topics whose timestamps are the broker's append times (their producers' own
    times are gone): the replay keeps them as CreateTime, and the report says so."""
    return sorted(
        {
            p.source_topic
            for p in plan
            if source_configs.get(p.source_topic, {}).get(TIMESTAMP_TYPE) == "LogAppendTime"
        }
    )


def reach_target(bootstrap: str) -> None:
    """UsageError (exit 2), one line, when no broker of the target answers."""
    try:
        access.reach(bootstrap, REACH_TIMEOUT)
    except UsageError as exc:
        raise UsageError(f"target {bootstrap}: unreachable: {exc}") from None


def describe_target(bootstrap: str, topics: set[str]) -> dict[str, TargetTopic]:
    """The named topics the target has, with each partition's offsets."""
    counts = admin.topics(bootstrap)
    present = sorted(t for t in topics if t in counts)
    keys = [(t, p) for t in present for p in range(counts[t])]
    marks = admin.watermarks(bootstrap, keys)
    out: dict[str, TargetTopic] = {}
    for t in present:
        out[t] = TargetTopic(t, {p: marks[(t, p)] for p in range(counts[t])})
    return out


# Topic configs a created target copies from its source: how records are kept and sized.
# (Not message.timestamp.type: LogAppendTime would overwrite the records' timestamps.)
COPIED_CONFIGS = (
    "cleanup.policy",
    "compression.type",
    "max.message.bytes",
    "retention.bytes",
    "retention.ms",
)


def target_configs(bootstrap: str, topics: list[str]) -> dict[str, dict[str, str]]:
    return topic_configs(bootstrap, topics)


def create_targets(
    bootstrap: str,
    plan: list[PartitionPlan],
    sources: dict[str, SourceTopic],
    configs: dict[str, dict[str, str]],
) -> list[str]:
    """Create the missing target topics with their source's partition count and configs."""
    have = set(admin.topics(bootstrap))
    created = []
    for item in plan:
        name = item.target_topic
        if name in have or name in created:
            continue
        source_configs = configs.get(item.source_topic, {})
        config = {k: source_configs[k] for k in COPIED_CONFIGS if k in source_configs}
        partitions = len(sources[item.source_topic].partitions)
        admin.create_topic(bootstrap, name, partitions, config=config)
        created.append(name)
    return created
