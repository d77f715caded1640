"""The manifest: what a backup captured, per partition, and where its snapshots are.

Versioned: readers refuse a schema_version they do not know.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

SCHEMA_VERSION = 1


class HeadRecord(BaseModel):
    offset: int
    timestamp: int
    digest: str
    # Where this record lives on the primary (None when it could not be translated).
    primary_offset: int | None = None


class ContentSeal(BaseModel):
    """A digest of a partition's records below the cut, in order (key, value, headers,
    timestamp of each), sealed from the mirror once it served again; or why not."""

    sealed: bool
    # The offsets the digest covers: [start_offset, end_offset), data records only.
    start_offset: int
    end_offset: int
    records: int = 0
    digest: str | None = None
    # Why the partition could not be sealed (compacted, aged out): checked by its heads.
    reason: str | None = None


class PartitionHead(BaseModel):
    topic: str
    primary_topic: str
    partition: int
    log_start_offset: int
    end_offset: int
    compacted: bool = False
    window_digest: str
    head: list[HeadRecord]
    # The last primary offset MM2 had committed for this partition at quiesce.
    mm2_source_offset: int | None = None
    # The primary offset of the mirror's last record at the cut (consistent backups since
    # the backlog fix): past mm2_source_offset where MM2's producer delivered records in
    # flight as it stopped. None in older manifests and hot backups.
    cut_primary_offset: int | None = None
    # None: the backup sealed no content (hot, seal_content off, or an older backup).
    content_seal: ContentSeal | None = None

    @property
    def last_primary_offset(self) -> int | None:
        """The primary offset of the newest record in the backup as the cut recorded it."""
        return (
            self.cut_primary_offset
            if self.cut_primary_offset is not None
            else self.mm2_source_offset
        )

    @property
    def key(self) -> tuple[str, int]:
        return (self.topic, self.partition)


class SnapshotRef(BaseModel):
    broker_id: int
    volume: str
    location: str
    size_bytes: int = 0
    checksum: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


class ClusterInfo(BaseModel):
    bootstrap: str
    cluster_id: str = ""
    broker_ids: list[int] = Field(default_factory=list)


class GroupCheckpoint(BaseModel):
    """MM2's latest checkpoint for a group partition when the backup was taken."""

    upstream_offset: int  # the group's offset on the primary MM2 translated
    downstream_offset: int  # where MM2 put it on the mirror's topic


class RecordedTranslation(BaseModel):
    """A group partition translated onto the mirror at the cut (MM2 quiesced, so the
    mirror's offsets are the snapshot's): what `groups plan --against manifest` uses when
    the primary is gone."""

    restored_topic: str
    restored_offset: int | None
    method: str
    reread: int | None = None
    latest_safe_offset: int | None = None
    detail: str = ""
    # The record the group read last, as the mirror held it: a restore must hold the same
    # record at the same offset before the translated offset is written there. None when
    # nothing lies before the translated offset.
    twin_offset: int | None = None
    twin_digest: str | None = None


class GroupPartition(BaseModel):
    topic: str  # the primary topic
    partition: int
    committed_offset: int  # the next record the group reads
    metadata: str = ""
    leader_epoch: int | None = None
    checkpoint: GroupCheckpoint | None = None
    # None in backups taken before translations were recorded at the cut.
    translation: RecordedTranslation | None = None


class GroupCapture(BaseModel):
    """A consumer group of the primary at the cut: its state and committed offsets."""

    group: str
    state: str  # as Kafka names it: EMPTY, STABLE, ...
    members: int = 0
    partitions: list[GroupPartition] = Field(default_factory=list)


class Manifest(BaseModel):
    schema_version: int = SCHEMA_VERSION
    backup_id: str
    created_at: str
    mode: str
    platform: str
    head_window: int
    primary: ClusterInfo
    mirror: ClusterInfo
    replication_policy: str
    source_alias: str
    connectors: dict[str, str] = Field(default_factory=dict)
    partitions: list[PartitionHead] = Field(default_factory=list)
    snapshots: list[SnapshotRef] = Field(default_factory=list)
    # Consumer groups of the primary at the cut (consistent backups; older manifests: none).
    groups: list[GroupCapture] = Field(default_factory=list)
    # Primary topics MM2 had not created on the mirror when the backup ran (its filters
    # exclude them, or it had not found them yet): not in the backup, and the run says so.
    not_in_backup: list[str] = Field(default_factory=list)

    def only_topics(self, pattern: re.Pattern[str]) -> Manifest:
        """The backup as if it held only the topics whose restored (mirror) names
        `pattern` fully matches; its groups keep their positions on those topics."""
        heads = [h for h in self.partitions if pattern.fullmatch(h.topic)]
        kept = {h.primary_topic for h in heads}
        groups = [
            g.model_copy(update={"partitions": [p for p in g.partitions if p.topic in kept]})
            for g in self.groups
        ]
        return self.model_copy(
            update={"partitions": heads, "groups": [g for g in groups if g.partitions]}
        )


def parse_manifest(data: dict[str, Any], where: str) -> Manifest:
    from kasten_bp.errors import UsageError

    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UsageError(
            f"manifest {where} has schema_version {version}; this kasten-bp reads {SCHEMA_VERSION}"
        )
    return Manifest.model_validate(data)
