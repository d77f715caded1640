"""Where the mirror runs: the small protocol every platform implements."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from kasten_bp.manifest import Manifest, SnapshotRef


@dataclass(frozen=True)
class BrokerInfo:
    id: int
    running: bool
    volumes: list[str] = field(default_factory=list)


class MirrorMakerControl(Protocol):
    """Stop and restore MM2's connectors; read what MM2 has committed."""

    def connector_states(self) -> dict[str, str]: ...

    def stop(self, names: list[str], timeout: float) -> None:
        """Stop the connectors (tasks shut down, source offsets committed) and wait."""
        ...

    def restore(self, states: dict[str, str], timeout: float) -> None:
        """Put connectors back into recorded states and wait until they are there."""
        ...

    def source_offsets(self) -> dict[tuple[str, int], int]:
        """(primary topic, partition) -> last primary offset MM2 has committed as mirrored."""
        ...

    def alter_source_offsets(self, offsets: dict[tuple[str, int], int]) -> None:
        """Set MM2's committed source offsets of these partitions, its connectors stopped:
        MM2 resumes after each. KastenBpError when they cannot be altered."""
        ...


class Platform(Protocol):
    name: str
    mirrormaker: MirrorMakerControl

    def lock(self, owner: str) -> AbstractContextManager[None]:
        """Refuse (UsageError) a second concurrent run against the same mirror."""
        ...

    def preflight(self) -> list[str]:
        """Problems that make a backup impossible; empty when all is well."""
        ...

    def scope(self) -> str:
        """The mirror this platform acts on, as journals record it (no I/O)."""
        ...

    def mirror_cluster_id(self) -> str: ...

    def brokers(self) -> list[BrokerInfo]: ...

    def stop_brokers(self, broker_ids: list[int], timeout: float) -> list[str]:
        """Flush and stop cleanly, waiting until they are gone. Returns a warning for each
        broker that did not stop cleanly in time and was killed (its volume then needs log
        recovery when restored; the backup is kept, never quietly)."""
        ...

    def start_brokers(self, broker_ids: list[int], timeout: float) -> None:
        """Start and wait until every partition has a leader and a full ISR."""
        ...

    def snapshot_volumes(
        self, backup_id: str, broker_ids: list[int], timeout: float
    ) -> list[SnapshotRef]: ...

    def seal_snapshots(self, backup_id: str, refs: list[SnapshotRef]) -> list[SnapshotRef]:
        """Add what proves a snapshot intact later (a checksum), work done after the
        brokers serve again; refs unchanged where the storage vouches for itself."""
        ...

    def delete_snapshots(self, backup_id: str) -> list[str]:
        """Delete the backup's snapshots; returns each one that could not be deleted, named
        with why. Idempotent: deleting what does not exist is fine."""
        ...

    def arm_hold(self, backup_id: str, command: list[str]) -> dict[str, Any]:
        """Start a watchdog running `command` (it waits for the hold's deadline itself);
        returns what `disarm_hold` needs to cancel it."""
        ...

    def disarm_hold(self, backup_id: str, handle: dict[str, Any]) -> None:
        """Cancel the watchdog; idempotent (a watchdog already gone is fine)."""
        ...

    def restore(self, manifest: Manifest, timeout: float) -> dict[str, Any]:
        """Bring up a new cluster from the snapshots; returns at least {"bootstrap": ...}."""
        ...
