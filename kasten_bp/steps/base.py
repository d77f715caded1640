"""What the steps share: the run's inputs and MM2's connector states."""

from __future__ import annotations

from kasten_bp.workflow.flow import Model


class RunInputs(Model):
    """What a backup run is asked for; the first inputs of its steps."""

    mode: str
    head_window: int | None = None


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
