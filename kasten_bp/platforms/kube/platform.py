"""What the Kubernetes platforms (strimzi, statefulset) share: the cluster they act on, the
Lease lock, the `sync` before brokers stop, the healthy-partition wait, CSI snapshots and
their deletion, the restore namespace, and the access all of it needs.

A platform adds its own access (`cluster_access`, `cluster_restore_access`) and CRDs; the
lists are what preflight checks and what blueprints/rbac.yaml must grant, no more.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kasten_bp.config import Config, KubernetesConfig
from kasten_bp.errors import KastenBpError, UsageError
from kasten_bp.manifest import SnapshotRef
from kasten_bp.platforms.base import MirrorMakerControl
from kasten_bp.platforms.kube import resources as r
from kasten_bp.platforms.kube.api import Kube
from kasten_bp.platforms.kube.hold_job import (
    HOLD_JOB_ACCESS,
    own_pod,
    start_hold_job,
    stop_hold_job,
)
from kasten_bp.platforms.kube.lease import lease_lock
from kasten_bp.platforms.kube.podexec import sync_pods
from kasten_bp.platforms.kube.secrets import secret_access
from kasten_bp.platforms.kube.snapshots import (
    Volume,
    delete_backup_snapshots,
    group_snapshot,
    snapshot_volumes,
)
from kasten_bp.platforms.mm2_rest import ConnectRestMirrorMaker
from kasten_bp.platforms.watchdog_process import start_watchdog, stop_watchdog
from kasten_bp.waiting import announce, wait_for

LOCK_ACCESS = r.access(r.LEASES, "get", "create", "update")
FLUSH_ACCESS = r.access(r.PODS, "create", sub="exec")
# create_or_get reads the object back when a retried run finds it made already.
SNAPSHOT_ACCESS = r.access(r.SNAPSHOTS, "create", "get", "list", "delete") + r.access(
    r.SNAPSHOT_CONTENTS, "get"
)
GROUP_SNAPSHOT_ACCESS = (
    r.access(r.GROUP_SNAPSHOTS, "create", "get", "list", "delete")
    + r.access(r.PVS, "get")
    + r.access(r.GROUP_SNAPSHOT_CONTENTS, "get")
)
RESTORE_ACCESS = (
    r.access(r.NAMESPACES, "get")
    + r.access(r.SNAPSHOT_CONTENTS, "create", "get")
    + r.access(r.SNAPSHOTS, "create", "get")
    + r.access(r.PVCS, "get", "create")
)


def kube_config(config: Config) -> KubernetesConfig:
    if config.kubernetes is None:
        raise UsageError(f"config has platform {config.platform} but no `kubernetes:` section")
    return config.kubernetes


class KubePlatform(ABC):
    name: str
    cluster_kind: str  # how messages name the cluster's resource: `kafka`, `statefulset`

    def __init__(self, config: Config) -> None:
        self.config = config
        self.k8s = kube_config(config)
        self.namespace = self.k8s.namespace
        self.cluster = self.k8s.cluster
        self.kube = Kube.from_config(self.k8s)
        self.rest = ConnectRestMirrorMaker(config.connect)
        # Without `kubernetes.mirrormaker`, MM2 is controlled through Connect REST alone.
        mm2 = self.k8s.mirrormaker
        self.mirrormaker: MirrorMakerControl = self.managed_mirrormaker(mm2) if mm2 else self.rest

    def scope(self) -> str:
        return f"{self.name}:{self.namespace}/{self.cluster}"

    @property
    def label(self) -> str:
        return f"{self.cluster_kind} {self.namespace}/{self.cluster}"

    @abstractmethod
    def managed_mirrormaker(self, name: str) -> MirrorMakerControl:
        """MM2 as the platform runs it: `kubernetes.mirrormaker` names its resource."""

    @abstractmethod
    def cluster_access(self) -> list[r.Access]:
        """What the platform itself does in the mirror namespace during a backup."""

    @abstractmethod
    def cluster_restore_access(self) -> list[r.Access]:
        """What the platform itself does in the restore namespace."""

    def cluster_crds(self) -> list[r.Resource]:
        return []

    # --- lock / preflight -----------------------------------------------------------------

    @contextmanager
    def lock(self, owner: str) -> Iterator[None]:
        with lease_lock(self.kube, self.namespace, r.dns_name("kasten-bp", self.cluster), owner):
            yield

    def required_access(self) -> list[r.Access]:
        """Everything a backup does in the mirror namespace (and cluster-wide)."""
        needs = LOCK_ACCESS + self.cluster_access() + FLUSH_ACCESS + SNAPSHOT_ACCESS
        # `quiesce` from a hook pod: its hold's watchdog Job (the blueprints run hook pods
        # in the mirror namespace).
        needs += HOLD_JOB_ACCESS
        # The Kafka credentials the config names as secrets in this namespace.
        needs += secret_access(self.config, self.namespace)
        if self.k8s.group_snapshot_class:
            needs += GROUP_SNAPSHOT_ACCESS
        elif self.k8s.snapshot_class:
            needs += r.access(r.SNAPSHOT_CLASSES, "get")  # see snapshot_class_problems
        return list(dict.fromkeys(needs))

    def restore_access(self) -> list[r.Access]:
        """Everything a restore does in the restore namespace (and cluster-wide)."""
        return list(dict.fromkeys(RESTORE_ACCESS + self.cluster_restore_access()))

    def required_crds(self) -> list[r.Resource]:
        crds = [r.SNAPSHOTS, r.SNAPSHOT_CONTENTS]
        if self.k8s.group_snapshot_class:
            crds.append(r.GROUP_SNAPSHOTS)
        return self.cluster_crds() + crds

    def check_access(self) -> list[str]:
        return self.kube.check(self.required_access(), self.namespace, self.required_crds())

    def snapshot_class_problems(self) -> list[str]:
        """A named VolumeSnapshotClass that does not exist fails every snapshot: say so
        before anything is stopped."""
        name = self.k8s.snapshot_class
        if self.k8s.group_snapshot_class or not name:
            return []
        if self.kube.get_optional(r.SNAPSHOT_CLASSES, None, name) is None:
            return [f"volumesnapshotclass {name} not found (kubernetes.snapshot_class)"]
        return []

    # --- brokers ----------------------------------------------------------------------------

    def flush(self, pods: list[str], container: str | None, timeout: float) -> None:
        sync_pods(self.kube, self.namespace, pods, container, timeout)

    def wait_partitions_healthy(self, brokers: int, timeout: float) -> None:
        from kasten_bp.kafka import admin  # confluent_kafka loads only when brokers start

        bootstrap = self.config.mirror.bootstrap
        wait_for(
            f"every partition of the mirror {bootstrap} to have a leader and a full ISR "
            f"({brokers} brokers)",
            lambda: admin.all_partitions_healthy(bootstrap, brokers),
            timeout,
        )

    # --- snapshots --------------------------------------------------------------------------

    def snapshot(
        self,
        backup_id: str,
        vols: list[Volume],
        selector: dict[str, str],
        labels: dict[str, str],
        timeout: float,
        extra: dict[str, Any] | None = None,
    ) -> list[SnapshotRef]:
        """One VolumeSnapshot per volume, or one VolumeGroupSnapshot over the PVCs matching
        `selector` when `kubernetes.group_snapshot_class` is set; `extra` goes into every
        snapshot's details."""
        if not vols:
            raise KastenBpError(f"{self.label}: no PVCs to snapshot")
        timeout = min(timeout, self.k8s.timeout_seconds)
        group_class = self.k8s.group_snapshot_class
        if group_class:
            details = group_snapshot(
                self.kube, self.namespace, vols, selector, backup_id, group_class, timeout, labels
            )
        else:
            details = snapshot_volumes(
                self.kube, self.namespace, vols, backup_id, self.k8s.snapshot_class, timeout, labels
            )
        return [
            SnapshotRef(
                broker_id=vol.broker_id,
                volume=f"{self.namespace}/{vol.name}",
                location=f"volumesnapshot/{self.namespace}/{d['snapshot']}",
                size_bytes=int(d.get("restore_bytes") or 0),
                details={**d, **(extra or {})},
            )
            for vol, d in zip(vols, details, strict=True)
        ]

    def delete_snapshots(self, backup_id: str) -> list[str]:
        deleted, left = delete_backup_snapshots(self.kube, self.namespace, backup_id)
        for item in deleted:
            announce(f"deleted {item}")
        return left

    # --- the hold's watchdog -----------------------------------------------------------------

    def arm_hold(self, backup_id: str, command: list[str]) -> dict[str, Any]:
        """A Job like the hook pod when kasten-bp runs in one; else a local process."""
        pod = own_pod()
        if pod is None:
            log = Path.home() / ".cache" / "kasten-bp" / "holds" / f"{backup_id}.log"
            return start_watchdog(command, log)
        return start_hold_job(self.kube, pod, backup_id, command)

    def disarm_hold(self, backup_id: str, handle: dict[str, Any]) -> None:
        if handle.get("kind") == "job":
            stop_hold_job(self.kube, handle)
        else:
            stop_watchdog(backup_id, handle)

    # --- restore ----------------------------------------------------------------------------

    def restore_target(self, why_elsewhere: str) -> str:
        """`kubernetes.restore_namespace`, once it is known to be another namespace in
        which the restore may do all it needs; nothing is changed before."""
        target = self.k8s.restore_namespace
        if not target or target == self.namespace:
            raise UsageError(
                "set kubernetes.restore_namespace to a namespace other than "
                f"{self.namespace}: {why_elsewhere}"
            )
        problems = self.kube.check(self.restore_access(), target, [])
        if problems:
            raise UsageError(f"restore into {target} is not possible: " + "; ".join(problems))
        return target
