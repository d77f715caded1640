"""Planning a replay: which source partitions, which offsets, into which target partitions.

Pure: it judges the spec against what the source has (no I/O), so every bad input is found
before anything is written, each as one line `topic T: check: detail`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from kasten_bp.consistency.scope import is_internal
from kasten_bp.replay.source import SourceTopic
from kasten_bp.replay.spec import PartitionRange, ReplaySpec, TopicSpec

Range = tuple[int, int]


@dataclass(frozen=True)
class PartitionPlan:
    source_topic: str
    target_topic: str
    partition: int
    # Selected source offsets: sorted, disjoint [from, until) ranges within the source's bound.
    ranges: tuple[Range, ...]
    skip_target_checks: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return (self.source_topic, self.partition)

    @property
    def target_key(self) -> tuple[str, int]:
        return (self.target_topic, self.partition)

    @property
    def start(self) -> int:
        return self.ranges[0][0] if self.ranges else 0

    @property
    def end(self) -> int:
        return self.ranges[-1][1] if self.ranges else 0

    @property
    def span(self) -> int:
        """Offsets selected: the record count's upper bound (control records, compaction
        holes and a time window make it less)."""
        return sum(b - a for a, b in self.ranges)

    def selects(self, offset: int) -> bool:
        return any(a <= offset < b for a, b in self.ranges)

    def from_offset(self, offset: int) -> PartitionPlan:
        """Only offsets >= offset (a resume point, a time window's first offset)."""
        kept = tuple((max(a, offset), b) for a, b in self.ranges if b > offset)
        return replace(self, ranges=kept)


@dataclass(frozen=True)
class Plan:
    partitions: list[PartitionPlan]
    problems: list[str]


def plan_replay(spec: ReplaySpec, topics: dict[str, SourceTopic]) -> Plan:
    problems: list[str] = []
    items: list[PartitionPlan] = []
    for entry in spec.topics:
        matches, problem = match_topics(entry, topics)
        if problem:
            problems.append(problem)
            continue
        for source, target in matches:
            got, bad = _partitions(entry, source, target)
            items += got
            problems += bad
    problems += _conflicts(items)
    return Plan(items, problems)


def match_topics(
    entry: TopicSpec, topics: dict[str, SourceTopic]
) -> tuple[list[tuple[SourceTopic, str]], str | None]:
    """(source topic, target name) pairs for one entry: by name (the source's or the
    primary's), else by regex (full match, internal topics left out)."""
    named = [t for t in topics.values() if entry.source in (t.name, t.original)]
    if named:
        return [(t, entry.target or t.original) for t in named], None
    try:
        pattern = re.compile(entry.source)
    except re.error as exc:
        return [], f"topic {entry.source}: unknown source topic: not a topic, nor a regex ({exc})"
    found: list[tuple[SourceTopic, str]] = []
    for name in sorted(topics):
        topic = topics[name]
        if is_internal(name):
            continue
        match = pattern.fullmatch(name) or pattern.fullmatch(topic.original)
        if match is None:
            continue
        try:
            target = match.expand(entry.target) if entry.target else topic.original
        except (re.error, IndexError) as exc:
            return [], f"topic {entry.source}: target: {entry.target!r} does not expand ({exc})"
        found.append((topic, target))
    if not found:
        return [], f"topic {entry.source}: unknown source topic: no topic of the source matches"
    return found, None


def _partitions(
    entry: TopicSpec, source: SourceTopic, target: str
) -> tuple[list[PartitionPlan], list[str]]:
    bounds = {p.number: (p.start, p.end) for p in source.partitions}
    wanted = entry.partitions or [PartitionRange(number=n) for n in sorted(bounds)]
    by_number: dict[int, list[Range]] = {}
    problems = []
    for r in wanted:
        if r.number not in bounds:
            problems.append(
                f"topic {source.name}: unknown partition: {r.number} "
                f"(the source has partitions 0-{len(bounds) - 1})"
            )
            continue
        low, high = bounds[r.number]
        if r.from_offset is not None and r.from_offset > high:
            problems.append(
                f"topic {source.name}: from_offset: partition {r.number} from {r.from_offset} "
                f"is past the source's end offset {high}"
            )
            continue
        start = max(low, r.from_offset or 0)
        end = min(high, r.until_offset if r.until_offset is not None else high)
        by_number.setdefault(r.number, []).append((start, max(start, end)))
    items = [
        PartitionPlan(
            source.name,
            target,
            number,
            tuple(sorted(ranges)),
            entry.disable_preflight_checks,
        )
        for number, ranges in sorted(by_number.items())
    ]
    return items, problems


def _conflicts(items: list[PartitionPlan]) -> list[str]:
    problems = []
    seen: dict[tuple[str, int], PartitionPlan] = {}
    into: dict[tuple[str, int], PartitionPlan] = {}
    for item in items:
        if item.key in seen:
            problems.append(
                f"topic {item.source_topic}: overlapping partition ranges: partition "
                f"{item.partition} is selected by two topic entries"
            )
        seen.setdefault(item.key, item)
        other = into.get(item.target_key)
        if other is not None and other.key != item.key:
            problems.append(
                f"topic {item.target_topic}: one target partition, two sources: partition "
                f"{item.partition} would receive {other.source_topic}[{other.partition}] and "
                f"{item.source_topic}[{item.partition}]"
            )
        into.setdefault(item.target_key, item)
    return problems
