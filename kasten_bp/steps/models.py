"""What steps need and give, in one place: each field a later step may name."""

from __future__ import annotations

from kasten_bp.workflow.flow import Model


class RunInputs(Model):
    """What a backup run is asked for; the first inputs of its steps."""

    mode: str
    head_window: int | None = None
    # `--group` regexes: the consumer groups to record instead of the config's
    # groups.include (None: the config decides).
    groups_include: list[str] | None = None


class ConnectorStates(Model):
    """MM2's connectors as they were before the backup touched them."""

    connector_states: dict[str, str]


class SourceOffsets(Model):
    """MM2's committed source offsets as the catch-up proof found them, and the proven cut:
    the primary offset of the mirror's last record, which is past the committed offset
    where MM2's producer delivered records in flight as it stopped. "topic/partition" ->
    offset."""

    source_offsets: dict[str, int]
    # None in journals written before the cut was told apart from the committed offsets.
    cut_offsets: dict[str, int] | None = None

    @classmethod
    def of(
        cls, offsets: dict[tuple[str, int], int], cut: dict[tuple[str, int], int] | None = None
    ) -> SourceOffsets:
        return cls(source_offsets=keyed(offsets), cut_offsets=None if cut is None else keyed(cut))


def keyed(offsets: dict[tuple[str, int], int]) -> dict[str, int]:
    return {f"{t}/{p}": o for (t, p), o in sorted(offsets.items())}

    def by_partition(self) -> dict[tuple[str, int], int]:
        return by_partition(self.source_offsets)


def by_partition(offsets: dict[str, int]) -> dict[tuple[str, int], int]:
    out = {}
    for key, offset in offsets.items():
        topic, _, partition = key.rpartition("/")
        out[(topic, int(partition))] = int(offset)
    return out


# --- preflight ----------------------------------------------------------------
class PreflightNeeds(Model):
    mode: str


class PreflightGives(Model):
    brokers: list[int]


# --- discover_topics ----------------------------------------------------------
class Discovered(Model):
    # Primary topics MM2 never created on the mirror (excluded by MM2's own filters).
    unmirrored_topics: list[str]


# --- pause_mirrormaker --------------------------------------------------------
class Stopped(Model):
    stopped_connectors: list[str]


# --- stop_brokers -------------------------------------------------------------
class RunningBrokers(Model):
    running_brokers: list[int]


class StoppedBrokers(Model):
    stopped_brokers: list[int]


class BrokerIds(Model):
    broker_ids: list[int]


# --- snapshot_volumes ---------------------------------------------------------
class SnapshotPlan(Model):
    snapshot_brokers: list[int]


class Snapshots(Model):
    snapshots: int
    snapshot_bytes: int


class Sealed(Model):
    sealed_snapshots: int


class ContentSealed(Model):
    content_sealed: int
    content_unsealed: int


# --- capture_heads ------------------------------------------------------------
class CaptureNeeds(Model):
    mode: str
    head_window: int | None = None
    # From discover_topics (consistent mode): primary topics the mirror does not have.
    unmirrored_topics: list[str] | None = None
    # Consistent mode: MM2's committed offsets and the proven cut. Hot mode has neither:
    # MM2's offsets as they are now.
    source_offsets: dict[str, int] | None = None
    cut_offsets: dict[str, int] | None = None
    connector_states: dict[str, str] | None = None


class Captured(Model):
    partitions: int
    records_in_heads: int


# --- capture_groups -----------------------------------------------------------
class GroupsNeeds(Model):
    groups_include: list[str] | None = None


class GroupsCaptured(Model):
    groups_captured: int
    group_offsets: int
    # Group partitions for which MM2 had emitted a checkpoint.
    group_checkpoints: int
    # Records of MM2's checkpoints topic this kasten-bp could not read (skipped).
    checkpoints_unreadable: int = 0


# --- confirm_replication ------------------------------------------------------
class ConfirmNeeds(Model):
    connector_states: dict[str, str]
    source_offsets: dict[str, int]
    cut_offsets: dict[str, int] | None = None


# --- advance_mm2_offsets ------------------------------------------------------
class AdvanceNeeds(Model):
    source_offsets: dict[str, int]
    cut_offsets: dict[str, int] | None = None


class Advanced(Model):
    # "topic/partition" -> [MM2's committed offset before, after]: where the mirror held
    # records past it, MM2 resumes after the mirror's last record, not before it.
    mm2_offsets_advanced: dict[str, list[int]]


class Confirmed(Model):
    # Partitions whose new primary records MM2 had to replicate.
    confirmed_partitions: int
