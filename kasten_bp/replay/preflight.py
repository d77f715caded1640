"""Preflight of the target, before any record is written: one line per problem, naming the
topic and the check. `target_problems` judges (pure); `describe_target` reads."""

from __future__ import annotations

from dataclasses import dataclass

from kasten_bp.errors import UsageError
from kasten_bp.kafka import access, admin, writable
from kasten_bp.kafka.configs import topic_configs
from kasten_bp.records import Header, Record
from kasten_bp.replay.copy import replayed_headers, selected
from kasten_bp.replay.plan import PartitionPlan
from kasten_bp.replay.source import Source, SourceTopic
from kasten_bp.replay.spec import ReplaySpec

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


def size_reads(
    plan: list[PartitionPlan],
    source_configs: dict[str, dict[str, str]],
    target_configs: dict[str, dict[str, str]],
) -> dict[str, int]:
    """Target topics whose records must be measured, with their limit: those accepting
    less than their source does (or whose source does not say). Where the target accepts
    at least what the source accepts, every record fits without reading one."""
    reads: dict[str, int] = {}
    for item in plan:
        name = item.target_topic
        target_limit = target_configs.get(name, {}).get(MAX_MESSAGE_BYTES)
        if item.skip_target_checks or target_limit is None:
            continue
        source_limit = source_configs.get(item.source_topic, {}).get(MAX_MESSAGE_BYTES)
        if source_limit is None or int(target_limit) < int(source_limit):
            reads[name] = int(target_limit)
    return reads


# A v2 record batch holding one record: the batch header, then the record's length,
# attributes, timestamp and offset deltas, key and value lengths and header count as
# varints (their largest sizes), then each header's name and value lengths.
BATCH_OVERHEAD = 61
RECORD_OVERHEAD = 36
HEADER_OVERHEAD = 10


def batch_bytes(record: Record, headers: tuple[Header, ...]) -> int:
    """An upper bound of the bytes a batch of this one record takes, uncompressed."""
    size = BATCH_OVERHEAD + RECORD_OVERHEAD + len(record.key or b"") + len(record.value or b"")
    for name, value in headers:
        size += HEADER_OVERHEAD + len(name.encode()) + len(value or b"")
    return size


@dataclass(frozen=True)
class Largest:
    size: int
    source_topic: str
    partition: int
    offset: int


def largest_records(
    source: Source, plan: list[PartitionPlan], spec: ReplaySpec, topics: set[str]
) -> dict[str, Largest]:
    """Per target topic in `topics`, its largest selected record (one pass over them)."""
    items = {p.key: p for p in plan if p.target_topic in topics and p.span > 0}
    if not items:
        return {}
    largest: dict[str, Largest] = {}
    ranges = {key: (p.start, p.end) for key, p in items.items()}
    for record in source.stream(ranges):
        item = items[(record.topic, record.partition)]
        if not selected(item, spec, record):
            continue
        size = batch_bytes(record, replayed_headers(record, spec))
        best = largest.get(item.target_topic)
        if best is None or size > best.size:
            largest[item.target_topic] = Largest(
                size, record.topic, record.partition, record.offset
            )
    return largest


def size_problems(reads: dict[str, int], largest: dict[str, Largest]) -> list[str]:
    """A target topic must accept its largest record in range."""
    problems = []
    for name, limit in sorted(reads.items()):
        big = largest.get(name)
        if big is not None and big.size > limit:
            problems.append(
                f"topic {name}: {MAX_MESSAGE_BYTES}: the target accepts up to {limit} bytes, "
                f"the largest record in range ({big.source_topic}[{big.partition}] at offset "
                f"{big.offset}) needs {big.size}"
            )
    return problems


# What a client needs to replay into an existing topic (KIP-430's names).
WRITE = "WRITE"


def write_problems(
    plan: list[PartitionPlan], operations: dict[str, frozenset[str] | None], who: str
) -> list[str]:
    """Target topics this client may not write to (`operations`: the authorized operations
    of each existing target topic; None when the broker does not say)."""
    problems = []
    for name in sorted({p.target_topic for p in plan if p.target_topic in operations}):
        allowed = operations[name]
        if allowed is None or WRITE in allowed:
            continue
        problems.append(
            f"topic {name}: writable: {who} may not write to it: grant WRITE on topic {name}"
        )
    return problems


def create_problems(refusals: dict[str, str], who: str) -> list[str]:
    """Target topics the broker would refuse to create for this client (validate_only)."""
    problems = []
    for name, why in sorted(refusals.items()):
        if why.startswith("TOPIC_AUTHORIZATION_FAILED"):
            problems.append(
                f"topic {name}: writable: {who} may not create it: grant CREATE on topic "
                f"{name} (or the cluster)"
            )
        else:
            problems.append(f"topic {name}: create: the target would refuse it: {why}")
    return problems


def who(bootstrap: str) -> str:
    return f"user {writable.user_of(bootstrap) or '(anonymous)'}"


def topic_operations(bootstrap: str, topics: list[str]) -> dict[str, frozenset[str] | None]:
    return writable.topic_operations(bootstrap, topics, REACH_TIMEOUT)


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


def new_topics(
    plan: list[PartitionPlan],
    sources: dict[str, SourceTopic],
    configs: dict[str, dict[str, str]],
    have: set[str],
) -> dict[str, tuple[int, dict[str, str]]]:
    """Target topics to create: name -> (the source's partition count, copied configs)."""
    out: dict[str, tuple[int, dict[str, str]]] = {}
    for item in plan:
        name = item.target_topic
        if name in have or name in out:
            continue
        source_configs = configs.get(item.source_topic, {})
        config = {k: source_configs[k] for k in COPIED_CONFIGS if k in source_configs}
        out[name] = (len(sources[item.source_topic].partitions), config)
    return out


def create_refusals(
    bootstrap: str, topics: dict[str, tuple[int, dict[str, str]]]
) -> dict[str, str]:
    return writable.create_refusals(bootstrap, topics, REACH_TIMEOUT)


def create_targets(bootstrap: str, topics: dict[str, tuple[int, dict[str, str]]]) -> list[str]:
    """Create the missing target topics with their source's partition count and configs."""
    have = set(admin.topics(bootstrap))
    created = []
    for name, (partitions, config) in topics.items():
        if name not in have:
            admin.create_topic(bootstrap, name, partitions, config=config)
            created.append(name)
    return created
