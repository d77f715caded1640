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
    """MM2's committed source offsets at the proven cut, "topic/partition" -> offset."""

    source_offsets: dict[str, int]

    @classmethod
    def of(cls, offsets: dict[tuple[str, int], int]) -> SourceOffsets:
        return cls(source_offsets={f"{t}/{p}": o for (t, p), o in sorted(offsets.items())})

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


# --- capture_heads ------------------------------------------------------------
class CaptureNeeds(Model):
    mode: str
    head_window: int | None = None
    # Consistent mode: the proven cut. Hot mode has none: MM2's offsets as they are now.
    source_offsets: dict[str, int] | None = None
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


class Confirmed(Model):
    # Partitions whose new primary records MM2 had to replicate.
    confirmed_partitions: int
