"""CSI snapshots of broker PVCs: one VolumeSnapshot per PVC or one VolumeGroupSnapshot,
their details for the manifest, and deleting a backup's snapshots."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kasten_bp.errors import KastenBpError, PermanentError, TemporaryError
from kasten_bp.platforms.kube.api import Kube
from kasten_bp.platforms.kube.resources import (
    GROUP_SNAPSHOT_CONTENTS,
    GROUP_SNAPSHOTS,
    PVS,
    SNAPSHOT_CONTENTS,
    SNAPSHOTS,
    dns_name,
    label_value,
    labels_selector,
    parse_quantity,
)
from kasten_bp.transience import temporary_status_error
from kasten_bp.waiting import announce, wait_for

BACKUP_LABEL = "kasten-bp.io/backup-id"
BACKUP_ANNOTATION = "kasten-bp.io/backup-id"


@dataclass
class Volume:
    """A broker PVC to snapshot, with where it belongs."""

    pvc: dict[str, Any]
    broker_id: int
    details: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.pvc["metadata"]["name"])


def pvc_template(pvc: dict[str, Any], keep_labels: Sequence[str] = ()) -> dict[str, Any]:
    """What a restored PVC needs of the original."""
    spec = pvc.get("spec") or {}
    labels = {
        k: v
        for k, v in ((pvc.get("metadata") or {}).get("labels") or {}).items()
        if k in keep_labels
    }
    return {
        "labels": labels,
        "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
        "storageClassName": spec.get("storageClassName"),
        "volumeMode": spec.get("volumeMode") or "Filesystem",
        "storage": ((spec.get("resources") or {}).get("requests") or {}).get("storage"),
    }


def snapshot_error(vs: dict[str, Any]) -> str | None:
    error = (vs.get("status") or {}).get("error") or {}
    return str(error["message"]) if error.get("message") else None


def standing_error(kube: Kube, snapshot: dict[str, Any]) -> str | None:
    """The error a VolumeSnapshot or VolumeGroupSnapshot reports, judged at its source.

    The snapshot controller copies its bound content's error up, and clears the copy only
    once it has finished with the snapshot (for a group: after it has made every member
    VolumeSnapshot, seconds later). An error the content no longer reports is over.
    """
    error = snapshot_error(snapshot)
    if error is None:
        return None
    status = snapshot.get("status") or {}
    if content_name := status.get("boundVolumeSnapshotContentName"):
        content = kube.get_optional(SNAPSHOT_CONTENTS, None, content_name)
    elif content_name := status.get("boundVolumeGroupSnapshotContentName"):
        content = kube.get_optional(GROUP_SNAPSHOT_CONTENTS, None, content_name)
    else:
        return error
    if content is None:
        return error
    return snapshot_error(content)


# The snapshot controllers retry a snapshot that reported an error and clear the error when
# it succeeds. An API conflict is always retried (`transience.temporary_status_error`) and
# ends a wait only at its timeout; any other error ends it once it has stood this long
# (a CSI driver that fails a snapshot keeps failing it).
SNAPSHOT_ERROR_GRACE_SECONDS = 10.0


class StandingErrors:
    """The errors snapshots report while a wait goes on. `check` records what one reports
    now and fails once an error other than an API conflict has stood without a break for
    `grace` seconds; `still_waiting` names the errors standing, so the wait goes on and its
    timeout says what it waited out."""

    def __init__(self, grace: float = SNAPSHOT_ERROR_GRACE_SECONDS) -> None:
        self.grace = grace
        self._standing: dict[str, tuple[float, str]] = {}  # what -> (since, message)

    def check(self, what: str, error: str | None) -> None:
        if error is None:
            self._standing.pop(what, None)
            return
        if what in self._standing:
            since = self._standing[what][0]
        else:
            since = time.monotonic()
            announce(self._retried(what, error))
        self._standing[what] = (since, error)
        if not temporary_status_error(error) and time.monotonic() - since >= self.grace:
            raise PermanentError(f"{what} failed: {error}")

    def still_waiting(self) -> None:
        if self._standing:
            raise TemporaryError(
                "; ".join(self._retried(w, error) for w, (_, error) in self._standing.items())
            )

    @staticmethod
    def _retried(what: str, error: str) -> str:
        return f"{what} reports an error the snapshot controller retries: {error}"


def ready_to_use(snapshot: dict[str, Any]) -> bool:
    return bool((snapshot.get("status") or {}).get("readyToUse"))


def wait_snapshots_ready(
    kube: Kube, namespace: str, names: dict[str, str], timeout: float
) -> dict[str, dict[str, Any]]:
    """PVC -> its VolumeSnapshot (`names`: PVC -> snapshot name) once all are readyToUse;
    a snapshot whose error stands (`StandingErrors`) ends the wait."""
    errors = StandingErrors()
    got: dict[str, dict[str, Any]] = {}  # a snapshot once ready stays ready: read no more

    def all_ready() -> dict[str, dict[str, Any]] | None:
        for pvc, name in names.items():
            if pvc in got:
                continue
            vs = kube.get(SNAPSHOTS, namespace, name)
            # Ready wins over an error not yet cleared: the snapshot is usable.
            ready = ready_to_use(vs)
            errors.check(
                f"volumesnapshot {namespace}/{name} of pvc {pvc}",
                None if ready else standing_error(kube, vs),
            )
            if ready:
                got[pvc] = vs
        if len(got) == len(names):
            return got
        errors.still_waiting()
        return None

    return wait_for(
        f"{len(names)} volumesnapshots in {namespace} to be readyToUse", all_ready, timeout
    )


def snapshot_volumes(
    kube: Kube,
    namespace: str,
    volumes: Sequence[Volume],
    backup_id: str,
    snapshot_class: str | None,
    timeout: float,
    extra_labels: dict[str, str],
) -> list[dict[str, Any]]:
    """One VolumeSnapshot per PVC; wait until all are readyToUse, failing on an error
    that stands. Returns, per volume, the details to record in the manifest."""
    labels = {BACKUP_LABEL: label_value(backup_id), **extra_labels}
    names = {}
    for vol in volumes:
        name = dns_name(backup_id, vol.name)
        spec: dict[str, Any] = {"source": {"persistentVolumeClaimName": vol.name}}
        if snapshot_class:
            spec["volumeSnapshotClassName"] = snapshot_class
        body = {
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {BACKUP_ANNOTATION: backup_id},
            },
            "spec": spec,
        }
        kube.create_or_get(SNAPSHOTS, namespace, body)
        announce(f"created volumesnapshot {namespace}/{name} of pvc {namespace}/{vol.name}")
        names[vol.name] = name

    ready = wait_snapshots_ready(kube, namespace, names, timeout)
    return [_snapshot_details(kube, namespace, vol, ready[vol.name]) for vol in volumes]


def _snapshot_details(
    kube: Kube, namespace: str, vol: Volume, vs: dict[str, Any]
) -> dict[str, Any]:
    status = vs.get("status") or {}
    content_name = status.get("boundVolumeSnapshotContentName")
    content = kube.get_optional(SNAPSHOT_CONTENTS, None, content_name) if content_name else None
    cstatus = (content or {}).get("status") or {}
    cspec = (content or {}).get("spec") or {}
    restore_size = status.get("restoreSize") or cstatus.get("restoreSize")
    return {
        **vol.details,
        "kind": "VolumeSnapshot",
        "namespace": namespace,
        "snapshot": vs["metadata"]["name"],
        "pvc": vol.name,
        "restoreSize": str(restore_size) if restore_size is not None else None,
        "restore_bytes": parse_quantity(restore_size),
        "boundVolumeSnapshotContentName": content_name,
        "snapshotHandle": cstatus.get("snapshotHandle"),
        "driver": cspec.get("driver"),
        "volumeSnapshotClassName": (vs.get("spec") or {}).get("volumeSnapshotClassName")
        or cspec.get("volumeSnapshotClassName"),
        "creationTime": status.get("creationTime"),
    }


def group_snapshot(
    kube: Kube,
    namespace: str,
    volumes: Sequence[Volume],
    selector: dict[str, str],
    backup_id: str,
    group_class: str,
    timeout: float,
    extra_labels: dict[str, str],
) -> list[dict[str, Any]]:
    """One VolumeGroupSnapshot over the PVCs matching `selector` (crash-consistent across
    them); member VolumeSnapshots are mapped back to PVCs through their contents' volume
    handles and the PVs (v1beta2 no longer lists PVC -> snapshot pairs in the status)."""
    name = dns_name(backup_id, "group")
    body = {
        "metadata": {
            "name": name,
            "labels": {BACKUP_LABEL: label_value(backup_id), **extra_labels},
            "annotations": {BACKUP_ANNOTATION: backup_id},
        },
        "spec": {
            "volumeGroupSnapshotClassName": group_class,
            "source": {"selector": {"matchLabels": selector}},
        },
    }
    kube.create_or_get(GROUP_SNAPSHOTS, namespace, body)
    announce(f"created volumegroupsnapshot {namespace}/{name} of pvcs {labels_selector(selector)}")

    errors = StandingErrors()

    def ready() -> dict[str, Any] | None:
        vgs = kube.get(GROUP_SNAPSHOTS, namespace, name)
        if ready_to_use(vgs):
            return vgs
        errors.check(f"volumegroupsnapshot {namespace}/{name}", standing_error(kube, vgs))
        errors.still_waiting()
        return None

    vgs = wait_for(f"volumegroupsnapshot {namespace}/{name} to be readyToUse", ready, timeout)
    uid = vgs["metadata"]["uid"]
    by_pvc: dict[str, dict[str, Any]] = {}
    for pair in (vgs.get("status") or {}).get("pvcVolumeSnapshotRefList") or []:  # v1beta1
        pvc = (pair.get("persistentVolumeClaimRef") or {}).get("name")
        snap = (pair.get("volumeSnapshotRef") or {}).get("name")
        if pvc and snap:
            by_pvc[pvc] = kube.get(SNAPSHOTS, namespace, snap)
    if not by_pvc:
        members = [
            vs
            for vs in kube.find(SNAPSHOTS, namespace)
            if any(o.get("uid") == uid for o in vs["metadata"].get("ownerReferences") or [])
        ]
        handle_to_pvc = {}
        for vol in volumes:
            pv_name = (vol.pvc.get("spec") or {}).get("volumeName")
            pv = kube.get_optional(PVS, None, pv_name) if pv_name else None
            handle = (((pv or {}).get("spec") or {}).get("csi") or {}).get("volumeHandle")
            if handle:
                handle_to_pvc[handle] = vol.name
        # v1beta2 lists (volumeHandle, snapshotHandle) per member on the group content;
        # v1beta1 called it volumeSnapshotHandlePairList.
        snap_to_volume: dict[str, str] = {}
        gcontent_name = (vgs.get("status") or {}).get("boundVolumeGroupSnapshotContentName")
        gcontent = (
            kube.get_optional(GROUP_SNAPSHOT_CONTENTS, None, gcontent_name)
            if gcontent_name
            else None
        )
        gstatus = (gcontent or {}).get("status") or {}
        for info in (gstatus.get("volumeSnapshotInfoList") or []) + (
            gstatus.get("volumeSnapshotHandlePairList") or []
        ):
            if info.get("snapshotHandle") and info.get("volumeHandle"):
                snap_to_volume[info["snapshotHandle"]] = info["volumeHandle"]
        for vs in members:
            content_name = (vs.get("status") or {}).get("boundVolumeSnapshotContentName")
            content = (
                kube.get_optional(SNAPSHOT_CONTENTS, None, content_name) if content_name else None
            )
            content = content or {}
            handle = ((content.get("spec") or {}).get("source") or {}).get("volumeHandle")
            if not handle:
                snap_handle = (content.get("status") or {}).get("snapshotHandle") or (
                    (content.get("spec") or {}).get("source") or {}
                ).get("snapshotHandle")
                handle = snap_to_volume.get(snap_handle or "")
            if handle in handle_to_pvc:
                by_pvc[handle_to_pvc[handle]] = vs
    missing = [v.name for v in volumes if v.name not in by_pvc]
    if missing:
        raise KastenBpError(
            f"volumegroupsnapshot {namespace}/{name} is ready but holds no snapshot of pvcs "
            f"{missing} (do their labels match {labels_selector(selector)}?)"
        )
    out = []
    for vol in volumes:
        details = _snapshot_details(kube, namespace, vol, by_pvc[vol.name])
        details["group_snapshot"] = name
        details["boundVolumeGroupSnapshotContentName"] = (vgs.get("status") or {}).get(
            "boundVolumeGroupSnapshotContentName"
        )
        out.append(details)
    return out


def delete_backup_snapshots(
    kube: Kube, namespace: str, backup_id: str
) -> tuple[list[str], list[str]]:
    """Delete the backup's VolumeGroupSnapshots and VolumeSnapshots (idempotent): what was
    deleted, and what could not be (listing them, or deleting one, was refused), with why."""
    labels = {BACKUP_LABEL: label_value(backup_id)}
    deleted: list[str] = []
    left: list[str] = []
    for resource in (GROUP_SNAPSHOTS, SNAPSHOTS):
        try:
            if resource is GROUP_SNAPSHOTS and not kube.served(resource):
                continue  # group snapshots not installed: there are none to delete
            items = kube.find(resource, namespace, labels)
        except KastenBpError as exc:
            left.append(f"{resource.plural} of backup {backup_id} in {namespace}: {exc}")
            continue
        for item in items:
            if (item["metadata"].get("annotations") or {}).get(BACKUP_ANNOTATION) not in (
                None,
                backup_id,
            ):
                continue
            what = f"{resource.kind.lower()} {namespace}/{item['metadata']['name']}"
            try:
                if kube.delete(resource, namespace, item["metadata"]["name"]):
                    deleted.append(what)
            except KastenBpError as exc:
                left.append(f"{what}: {exc}")
    return deleted, left
