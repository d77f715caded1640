"""PVCs restored from a backup's snapshots, in the namespace a restored cluster runs in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kasten_bp.errors import UsageError
from kasten_bp.platforms.kube.api import Kube
from kasten_bp.platforms.kube.resources import (
    NAMESPACES,
    PVCS,
    SNAPSHOT_CONTENTS,
    SNAPSHOTS,
    dns_name,
    label_value,
    parse_quantity,
)
from kasten_bp.platforms.kube.snapshots import (
    BACKUP_ANNOTATION,
    BACKUP_LABEL,
    wait_snapshots_ready,
)


def restore_pvcs(
    kube: Kube,
    target_namespace: str,
    backup_id: str,
    refs: Sequence[dict[str, Any]],
    timeout: float,
) -> list[str]:
    """PVCs named as the originals, in `target_namespace`, each with a VolumeSnapshot
    `dataSource`. A snapshot in another namespace is made available there the way CSI
    supports it: a pre-provisioned VolumeSnapshotContent (same snapshotHandle, Retain)
    bound to a new VolumeSnapshot in the target namespace."""
    if kube.get_optional(NAMESPACES, None, target_namespace) is None:
        raise UsageError(f"namespace {target_namespace} does not exist: create it first")
    labels = {BACKUP_LABEL: label_value(backup_id)}
    snapshots: dict[str, str] = {}
    for d in refs:
        if d.get("namespace") == target_namespace:
            snapshots[d["pvc"]] = d["snapshot"]
            continue
        if not d.get("snapshotHandle") or not d.get("driver"):
            raise UsageError(
                f"snapshot {d.get('namespace')}/{d.get('snapshot')} of pvc {d.get('pvc')} has no "
                f"recorded snapshotHandle/driver: cannot restore it into {target_namespace}"
            )
        vs_name = dns_name("restore", backup_id, d["pvc"])
        content_name = dns_name("kasten-bp", target_namespace, vs_name)
        content_spec: dict[str, Any] = {
            "deletionPolicy": "Retain",
            "driver": d["driver"],
            "source": {"snapshotHandle": d["snapshotHandle"]},
            "volumeSnapshotRef": {"name": vs_name, "namespace": target_namespace},
        }
        if d.get("volumeSnapshotClassName"):
            content_spec["volumeSnapshotClassName"] = d["volumeSnapshotClassName"]
        kube.create_or_get(
            SNAPSHOT_CONTENTS,
            None,
            {"metadata": {"name": content_name, "labels": labels}, "spec": content_spec},
        )
        vs_spec: dict[str, Any] = {"source": {"volumeSnapshotContentName": content_name}}
        if d.get("volumeSnapshotClassName"):
            vs_spec["volumeSnapshotClassName"] = d["volumeSnapshotClassName"]
        kube.create_or_get(
            SNAPSHOTS,
            target_namespace,
            {
                "metadata": {
                    "name": vs_name,
                    "labels": labels,
                    "annotations": {BACKUP_ANNOTATION: backup_id},
                },
                "spec": vs_spec,
            },
        )
        snapshots[d["pvc"]] = vs_name

    wait_snapshots_ready(kube, target_namespace, snapshots, timeout)
    created = []
    for d in refs:
        template = d.get("pvc_template") or {}
        size = max(parse_quantity(template.get("storage")), int(d.get("restore_bytes") or 0))
        spec: dict[str, Any] = {
            "accessModes": template.get("accessModes") or ["ReadWriteOnce"],
            "volumeMode": template.get("volumeMode") or "Filesystem",
            "resources": {"requests": {"storage": str(size) if size else "1Gi"}},
            "dataSource": {
                "apiGroup": "snapshot.storage.k8s.io",
                "kind": "VolumeSnapshot",
                "name": snapshots[d["pvc"]],
            },
        }
        if template.get("storageClassName"):
            spec["storageClassName"] = template["storageClassName"]
        body = {
            "metadata": {
                "name": d["pvc"],
                "labels": {**(template.get("labels") or {}), **labels},
                "annotations": {BACKUP_ANNOTATION: backup_id},
            },
            "spec": spec,
        }
        existing = kube.get_optional(PVCS, target_namespace, d["pvc"])
        if existing is None:
            kube.create(PVCS, target_namespace, body)
        elif ((existing.get("spec") or {}).get("dataSource") or {}).get("name") != snapshots[
            d["pvc"]
        ]:
            raise UsageError(
                f"pvc {target_namespace}/{d['pvc']} already exists and was not restored from "
                f"backup {backup_id}: choose another restore namespace or delete it"
            )
        created.append(f"{target_namespace}/{d['pvc']}")
    return created
