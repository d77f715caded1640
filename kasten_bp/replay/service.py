"""A replay from start to proof: plan, preflight, copy, prove; and resume.

Nothing is written to the target before every check has passed; a problem is a UsageError
(exit 2) with one line per problem. The report in the catalog follows every step.
"""

from __future__ import annotations

import time
from itertools import zip_longest
from typing import Any

from kasten_bp.catalog.base import Catalog
from kasten_bp.errors import KastenBpError, UsageError
from kasten_bp.kafka import admin, reading
from kasten_bp.replay import preflight
from kasten_bp.replay.copy import (
    Copier,
    remaining_plan,
    replayed_headers,
    selected,
    stop_on_signals,
)
from kasten_bp.replay.plan import PartitionPlan, plan_replay
from kasten_bp.replay.proof import OK, prove_partition
from kasten_bp.replay.report import (
    PartitionProgress,
    ReplayReport,
    ReportStore,
    new_replay_id,
)
from kasten_bp.replay.source import Source
from kasten_bp.replay.spec import ReplaySpec, with_flags
from kasten_bp.waiting import announce, wait_for

CREATE_TIMEOUT = 60.0


class Replays:
    def __init__(self, catalog: Catalog) -> None:
        self.store = ReportStore(catalog)

    # --- a new replay ----------------------------------------------------------------

    def run(
        self, source: Source, target: str, spec: ReplaySpec, allow_non_empty: bool = False
    ) -> dict[str, Any]:
        preflight.reach_target(target)
        topics = source.topics()
        plan = plan_replay(spec, topics)
        _refuse(plan.problems)
        wanted = {p.target_topic for p in plan.partitions}
        have = preflight.describe_target(target, wanted)
        configs = source.topic_configs(sorted({p.source_topic for p in plan.partitions}))
        target_configs = preflight.target_configs(target, sorted(have))
        missing = (
            preflight.new_topics(plan.partitions, topics, configs, set(have))
            if spec.create_topics
            else {}
        )
        _say_default_configs(missing, source)
        who = preflight.who(target)
        _refuse(
            preflight.target_problems(
                plan.partitions, topics, have, spec.create_topics, allow_non_empty
            )
            + preflight.timestamp_problems(plan.partitions, target_configs)
            + preflight.write_problems(
                plan.partitions, preflight.topic_operations(target, sorted(have)), who
            )
            + preflight.create_problems(preflight.create_refusals(target, missing), who)
        )
        items = [self._window(source, spec, item) for item in plan.partitions]
        _refuse(_size_problems(source, spec, items, configs, target_configs))
        if spec.dry_run:
            return _dry_run(items, have, source, target)
        created: list[str] = []
        if missing:
            created = preflight.create_targets(target, missing)
            have = _wait_created(target, wanted)
            # Now that they exist, may we write to them? (Empty if not: nothing written.)
            _refuse(
                preflight.write_problems(
                    items, preflight.topic_operations(target, sorted(created)), who
                )
            )
        report = ReplayReport(
            replay_id=new_replay_id(),
            backup_id=source.backup_id,
            source=source.description,
            source_bootstrap=getattr(source, "bootstrap", ""),
            source_url=getattr(source, "url", None),
            target_bootstrap=target,
            spec=spec.model_dump(mode="json"),
            created_topics=created,
            log_append_time=preflight.log_append_time_sources(items, configs),
            partitions=[_progress(item, have) for item in items],
        )
        self.store.save(report)
        announce(f"replay {report.replay_id}: {len(items)} partitions into {target}")
        return self._copy_and_prove(source, target, spec, report)

    def _window(self, source: Source, spec: ReplaySpec, item: PartitionPlan) -> PartitionPlan:
        """Skip ahead to the window's first record: earlier offsets all hold older records
        (Kafka's time index answers the earliest offset with a timestamp >= the start)."""
        if spec.from_ms is None or item.span == 0:
            return item
        first = source.first_offset_at(item.key, spec.from_ms)
        return item.from_offset(item.end if first is None else first)

    # --- resume ------------------------------------------------------------------------

    def origin(self, replay_id: str) -> tuple[str | None, str, str | None]:
        """The backup a replay reads (None: a bare cluster), the cluster it read from and
        the export it read from (None: a cluster)."""
        report = self.store.load(replay_id)
        return report.backup_id, report.source_bootstrap, report.source_url

    def resume(
        self,
        replay_id: str,
        source: Source,
        target: str,
        flags: dict[str, float | int | None] | None = None,
    ) -> dict[str, Any]:
        """Continue a replay; `flags` (parallelism, producers, rate limits) may differ from
        the first run's: they change how fast, not what is replayed."""
        report = self.store.load(replay_id)
        if report.backup_id != source.backup_id:
            theirs = f"backup {report.backup_id}" if report.backup_id else "no backup"
            raise UsageError(
                f"replay {replay_id}: resume: it replays {theirs}, not "
                f"{'backup ' + source.backup_id if source.backup_id else 'a bare cluster'}"
            )
        if report.target_bootstrap != target:
            raise UsageError(
                f"replay {replay_id}: resume: it writes into {report.target_bootstrap}, "
                f"not {target}"
            )
        if report.status in ("completed", "proof_failed"):
            return report.summary()
        preflight.reach_target(target)
        _refuse(_lacking(report, source))
        spec = with_flags(ReplaySpec.model_validate(report.spec), **(flags or {}))
        report.spec = spec.model_dump(mode="json")
        for progress in report.partitions:
            if not progress.done:
                _reconcile_tail(source, target, spec, progress)
        self.store.save(report)
        return self._copy_and_prove(source, target, spec, report)

    # --- copy and prove ------------------------------------------------------------------

    def _copy_and_prove(
        self, source: Source, target: str, spec: ReplaySpec, report: ReplayReport
    ) -> dict[str, Any]:
        report.status = "running"
        self.store.save(report)
        limits = _limits(target, report)
        started = time.monotonic()
        with stop_on_signals() as stop:
            try:
                copier = Copier(source, target, spec, report, self.store.save, stop, limits)
                finished = copier.run()
            except KastenBpError as exc:
                self._failed(report, exc)
                raise
            finally:
                report.copy_seconds += time.monotonic() - started
        if not finished:
            report.status = "interrupted"
            self.store.save(report)
            return report.summary()
        announce(f"replay {report.replay_id}: proving {len(report.partitions)} partitions")
        started = time.monotonic()
        try:
            for progress in report.partitions:
                progress.proof = prove_partition(source, target, progress, spec)
        except KastenBpError as exc:
            # The source failed under the proof (an export file changed since the copy).
            self._failed(report, exc)
            raise
        finally:
            report.proof_seconds += time.monotonic() - started
        ok = all(p.proof == OK for p in report.partitions)
        report.status = "completed" if ok else "proof_failed"
        self.store.save(report)
        return report.summary()

    def _failed(self, report: ReplayReport, exc: KastenBpError) -> None:
        """The report says why, never "running": `--resume` continues from it."""
        report.status, report.error = "failed", str(exc)
        self.store.save(report)


def _lacking(report: ReplayReport, source: Source) -> list[str]:
    """Partitions left to replay that this source does not have (an export of other
    topics, say): refused before the resume writes anything."""
    topics = source.topics()
    problems = []
    for p in report.partitions:
        have = topics.get(p.source_topic)
        if not p.done and (have is None or p.partition not in {x.number for x in have.partitions}):
            problems.append(
                f"topic {p.source_topic}: resume: {source.description} has no partition "
                f"{p.partition}"
            )
    return problems


def _size_problems(
    source: Source,
    spec: ReplaySpec,
    items: list[PartitionPlan],
    configs: dict[str, dict[str, str]],
    target_configs: dict[str, dict[str, str]],
) -> list[str]:
    """Targets accepting smaller records than their source: their largest record in range,
    read once, must fit."""
    reads = preflight.size_reads(items, configs, target_configs)
    if not reads:
        return []
    announce(f"measuring the largest record in range for {', '.join(sorted(reads))}")
    return preflight.size_problems(
        reads, preflight.largest_records(source, items, spec, set(reads))
    )


def _say_default_configs(missing: dict[str, tuple[int, dict[str, str]]], source: Source) -> None:
    """A created topic whose source names no configs (an export indexed before configs
    were kept) gets the target's defaults: said, not hidden."""
    bare = sorted(name for name, (_, config) in missing.items() if not config)
    if bare:
        announce(
            f"topics {', '.join(bare)}: created with the target's default configs "
            f"({source.description} holds none of their source topics')"
        )


def _limits(target: str, report: ReplayReport) -> dict[str, int | None]:
    """Each target topic's max.message.bytes: what its producer's batches must fit."""
    names = sorted({p.target_topic for p in report.partitions})
    configs = preflight.target_configs(target, names)
    out: dict[str, int | None] = {}
    for name in names:
        value = configs.get(name, {}).get(preflight.MAX_MESSAGE_BYTES)
        out[name] = int(value) if value is not None else None
    return out


def _refuse(problems: list[str]) -> None:
    if problems:
        raise UsageError("\n".join(problems))


def _progress(item: PartitionPlan, have: dict[str, preflight.TargetTopic]) -> PartitionProgress:
    topic = have.get(item.target_topic)
    end = topic.partitions.get(item.partition, (0, 0))[1] if topic is not None else 0
    return PartitionProgress(
        source_topic=item.source_topic,
        target_topic=item.target_topic,
        partition=item.partition,
        ranges=list(item.ranges),
        target_start_offset=end,
        next_target_offset=end,
    )


def _wait_created(target: str, wanted: set[str]) -> dict[str, preflight.TargetTopic]:
    def visible() -> dict[str, preflight.TargetTopic] | None:
        have = preflight.describe_target(target, wanted)
        return have if set(have) == wanted else None

    return wait_for(f"created topics on target {target}", visible, CREATE_TIMEOUT)


def _dry_run(
    items: list[PartitionPlan],
    have: dict[str, preflight.TargetTopic],
    source: Source,
    target: str,
) -> dict[str, Any]:
    counts = [source.estimate(p.key, p.ranges) for p in items]
    return {
        "replay_id": None,
        "status": "dry_run",
        "backup_id": source.backup_id,
        "source": source.description,
        "target": target,
        "records": sum(counts),
        "partitions": [
            {
                "source_topic": p.source_topic,
                "target_topic": p.target_topic,
                "partition": p.partition,
                "records": count,  # an estimate (the source says how good)
                "first_source_offset": p.start if p.span else None,
                "last_source_offset": p.end - 1 if p.span else None,
                "source_ranges": [list(r) for r in p.ranges],
                "target": "exists" if p.target_topic in have else "created",
            }
            for p, count in zip(items, counts, strict=True)
        ],
    }


def _reconcile_tail(
    source: Source, target: str, spec: ReplaySpec, progress: PartitionProgress
) -> None:
    """A replay killed before its report caught up left acknowledged records the report
    does not know. They are the next selected source records, or someone else wrote: the
    first case advances the report past them (no duplicate), the second is refused."""
    where = f"{progress.target_topic}[{progress.partition}]"
    key = (progress.target_topic, progress.partition)
    (_, end), *_ = admin.watermarks(target, [key]).values()
    expected = progress.next_target_offset
    if end == expected:
        return
    if end < expected:
        raise UsageError(
            f"topic {progress.target_topic}: resume: {where} ends at {end}, before offset "
            f"{expected} the report says the target acknowledged (truncated or recreated?)"
        )
    plan = remaining_plan(progress)
    wanted = (
        (r for r in source.stream({plan.key: (plan.start, plan.end)}) if selected(plan, spec, r))
        if plan.span
        else iter(())
    )
    extra = reading.stream_range(target, key[0], key[1], expected, end)
    for got, want in zip_longest(extra, wanted):
        if got is None:
            break
        same = want is not None and (
            want.key,
            want.value,
            replayed_headers(want, spec),
            want.timestamp,
        ) == (got.key, got.value, got.headers, got.timestamp)
        if not same:
            raise UsageError(
                f"topic {progress.target_topic}: resume: {where} holds records past what the "
                f"report recorded that are not the next source records (offset {got.offset})"
            )
        progress.acked(want.offset, got.offset)
    announce(f"resume: {where}: {end - expected} records written before the stop, kept")
