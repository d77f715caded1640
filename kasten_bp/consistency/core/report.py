"""The verification report model. Pure: no I/O."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class Status(StrEnum):
    # Restored head equals the manifest and is the primary's head, record for record.
    CONSISTENT = "consistent"
    # A strict prefix of the primary: the primary moved on since the backup (the RPO).
    BEHIND = "behind"
    # Content differs: from the manifest, or from the primary's run of records.
    DIVERGENT = "divergent"
    # In the manifest, not on the restored cluster.
    MISSING = "missing"
    # On the restored cluster, not in the manifest.
    UNEXPECTED = "unexpected"


OK_STATUSES = {Status.CONSISTENT, Status.BEHIND}


class PartitionReport(BaseModel):
    topic: str
    partition: int
    primary_topic: str | None = None
    status: Status
    detail: str = ""
    manifest_end_offset: int | None = None
    restored_end_offset: int | None = None
    restored_log_start_offset: int | None = None
    heads_match_manifest: bool | None = None
    restored_head_primary_offset: int | None = None
    primary_end_offset: int | None = None
    # Offsets on the primary past the restored head (transaction markers count too).
    records_behind: int | None = None
    seconds_behind: float | None = None
    records_compared: int = 0


class PrimaryReach(BaseModel):
    reachable: bool
    error: str | None = None


class VerifyReport(BaseModel):
    backup_id: str
    restored_bootstrap: str
    primary_bootstrap: str
    # How the primary was read: with read_committed, aborted records are not records, so a
    # restored run may step over them (MM2 mirrors with the same isolation).
    primary_isolation_level: str
    deep: bool
    # The `--topic` regex the verify was limited to; None: every topic of the backup.
    topic_filter: str | None = None
    verdict: str
    partitions: list[PartitionReport] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    rpo_records: int = 0
    rpo_seconds: float = 0.0
    # What the restore was compared with: the live primary, or (the primary out of reach)
    # what the backup recorded at its cut; the RPO is then the backup's own, as of the cut.
    compared_with: str = "primary"
    primary: PrimaryReach | None = None


def build_report(
    backup_id: str,
    restored: str,
    primary: str,
    isolation_level: str,
    deep: bool,
    partitions: list[PartitionReport],
) -> VerifyReport:
    counts = {s.value: 0 for s in Status}
    for p in partitions:
        counts[p.status.value] += 1
    consistent = bool(partitions) and all(p.status in OK_STATUSES for p in partitions)
    return VerifyReport(
        backup_id=backup_id,
        restored_bootstrap=restored,
        primary_bootstrap=primary,
        primary_isolation_level=isolation_level,
        deep=deep,
        verdict="consistent" if consistent else "inconsistent",
        partitions=partitions,
        counts=counts,
        rpo_records=sum(p.records_behind or 0 for p in partitions),
        rpo_seconds=max((p.seconds_behind or 0.0 for p in partitions), default=0.0),
    )
