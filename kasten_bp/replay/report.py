"""The replay report, `replays/<replay_id>/report.json` in the catalog, rewritten as the
replay goes: per partition, the last source offset the target acknowledged, so `--resume`
continues with no duplicate and no gap. It also carries the offset map (source offset
ranges to target offsets) for carrying consumer positions through a topic mapping."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from kasten_bp.catalog.base import Catalog
from kasten_bp.errors import UsageError
from kasten_bp.replay.plan import PartitionPlan

SCHEMA_VERSION = 1


def new_replay_id() -> str:
    return datetime.now(UTC).strftime("rp-%Y%m%dT%H%M%SZ-") + secrets.token_hex(2)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def report_key(replay_id: str) -> str:
    return f"replays/{replay_id}/report.json"


class OffsetRun(BaseModel):
    """Source offsets [source_from, source_until) went to target offsets from target_from,
    one for one."""

    source_from: int
    source_until: int
    target_from: int


class PartitionProgress(BaseModel):
    source_topic: str
    target_topic: str
    partition: int
    ranges: list[tuple[int, int]]
    # The target's end offset before this replay wrote: where its records begin.
    target_start_offset: int
    # Where the target's end offset is once every acknowledged record is counted.
    next_target_offset: int
    records: int = 0
    first_source_offset: int | None = None
    last_source_offset: int | None = None  # the last one the target acknowledged
    done: bool = False
    offset_map: list[OffsetRun] = Field(default_factory=list)
    proof: str | None = None  # "ok", or what differs

    @property
    def key(self) -> tuple[str, int]:
        return (self.source_topic, self.partition)

    def plan(self) -> PartitionPlan:
        return PartitionPlan(
            self.source_topic, self.target_topic, self.partition, tuple(self.ranges)
        )

    def acked(self, source_offset: int, target_offset: int) -> None:
        """The target acknowledged a record (in order per partition: idempotent producer)."""
        self.acked_run(source_offset, source_offset + 1, target_offset)

    def acked_run(self, source_from: int, source_until: int, target_from: int) -> None:
        """The target acknowledged source offsets [source_from, source_until) at target
        offsets from target_from, one for one, in order."""
        count = source_until - source_from
        if self.first_source_offset is None:
            self.first_source_offset = source_from
        self.last_source_offset = source_until - 1
        self.records += count
        self.next_target_offset = target_from + count
        last = self.offset_map[-1] if self.offset_map else None
        if (
            last is not None
            and last.source_until == source_from
            and last.target_from + (last.source_until - last.source_from) == target_from
        ):
            last.source_until = source_until
        else:
            self.offset_map.append(
                OffsetRun(
                    source_from=source_from, source_until=source_until, target_from=target_from
                )
            )

    def summary(self) -> dict[str, Any]:
        return {
            "source_topic": self.source_topic,
            "target_topic": self.target_topic,
            "partition": self.partition,
            "records": self.records,
            "first_source_offset": self.first_source_offset,
            "last_source_offset": self.last_source_offset,
            "source_ranges": [list(r) for r in self.ranges],
            "target_start_offset": self.target_start_offset,
            "proof": self.proof,
        }


class ReplayReport(BaseModel):
    schema_version: int = SCHEMA_VERSION
    replay_id: str
    backup_id: str | None
    source: str  # a description: backup and cluster, or cluster
    source_bootstrap: str
    # The export it reads (`replay --from`), None for a cluster: where --resume reads.
    source_url: str | None = None
    target_bootstrap: str
    spec: dict[str, Any]
    # running | interrupted | completed | proof_failed | failed
    status: str = "running"
    started_at: str = Field(default_factory=now)
    updated_at: str = Field(default_factory=now)
    error: str | None = None
    created_topics: list[str] = Field(default_factory=list)
    # Source topics stamped by their broker (LogAppendTime): replayed as CreateTime.
    log_append_time: list[str] = Field(default_factory=list)
    partitions: list[PartitionProgress] = Field(default_factory=list)
    # Producer instances this replay created (over every run of it), and most at once.
    producers_created: int = 0
    producers_peak: int = 0
    # Seconds spent copying and proving (over every run of it).
    copy_seconds: float = 0.0
    proof_seconds: float = 0.0

    @property
    def proof(self) -> str | None:
        """ "ok" when every partition was proven, "failed" when one was not, else None."""
        return _proof(self.partitions)

    def summary(self) -> dict[str, Any]:
        return {
            "replay_id": self.replay_id,
            "status": self.status,
            "backup_id": self.backup_id,
            "source": self.source,
            "target": self.target_bootstrap,
            "records": sum(p.records for p in self.partitions),
            "proof": self.proof,
            "created_topics": self.created_topics,
            "log_append_time": self.log_append_time,
            "producers": {"created": self.producers_created, "peak": self.producers_peak},
            "seconds": {"copy": round(self.copy_seconds, 3), "proof": round(self.proof_seconds, 3)},
            "partitions": [p.summary() for p in self.partitions],
        } | ({"error": self.error} if self.error else {})


def _proof(partitions: list[PartitionProgress]) -> str | None:
    proofs = [p.proof for p in partitions]
    if not proofs or any(p is None for p in proofs):
        return None  # not proven (yet)
    return "ok" if all(p == "ok" for p in proofs) else "failed"


class ReportStore:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def save(self, report: ReplayReport) -> None:
        report.updated_at = now()
        self.catalog.write_json(report_key(report.replay_id), report.model_dump(mode="json"))

    def load(self, replay_id: str) -> ReplayReport:
        data = self.catalog.read_json(report_key(replay_id))
        if data is None:
            raise UsageError(f"replay {replay_id} not found in catalog {self.catalog.url}")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise UsageError(
                f"replay {replay_id} has report schema_version {data.get('schema_version')}; "
                f"this kasten-bp reads {SCHEMA_VERSION}"
            )
        return ReplayReport.model_validate(data)
