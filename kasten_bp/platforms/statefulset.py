"""Platform `statefulset`: Kafka as a plain StatefulSet (Helm-chart style), MM2 in a
Deployment or StatefulSet.

Brokers: the StatefulSet `kubernetes.cluster`; broker id = pod ordinal. Stopping scales it
to 0 after recording the original replicas in an annotation on the StatefulSet (written
once, so a retried stop never records 0); starting scales back to exactly that count.
Volumes: the PVCs of its volumeClaimTemplates, `<template>-<statefulset>-<ordinal>`.

MM2 (`kubernetes.mirrormaker` set): scaled to 0 and back to exactly the recorded replicas.
When the Connect REST API (`connect.url`) answers, the connectors are also stopped through
it first, so their source offsets are committed and can be read for the catch-up proof;
without it the offsets cannot be known and `source_offsets` says so. Without
`kubernetes.mirrormaker`, MM2 is controlled through Connect REST only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kasten_bp.config import Config
from kasten_bp.connect import ConnectClient
from kasten_bp.errors import KastenBpError, UsageError
from kasten_bp.manifest import Manifest, SnapshotRef
from kasten_bp.platforms import kube as k
from kasten_bp.platforms.base import BrokerInfo, MirrorMakerControl
from kasten_bp.platforms.kube import Access, ExecUnavailable, Kube, Volume
from kasten_bp.platforms.mm2_rest import ConnectRestMirrorMaker
from kasten_bp.platforms.strimzi import kube_config
from kasten_bp.waiting import announce, wait_for

log = logging.getLogger(__name__)

ORIGINAL_REPLICAS = "kasten-bp.io/original-replicas"
WORKLOAD_PREFIX = "workload:"


def _ready(pod: dict[str, Any]) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and k.condition_true(pod, "Ready")


class Workload:
    """A Deployment or StatefulSet that is scaled to 0 and back to its recorded replicas."""

    def __init__(self, kube: Kube, namespace: str, resource: k.Resource, name: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.resource = resource
        self.name = name

    @property
    def label(self) -> str:
        return f"{self.resource.kind.lower()} {self.namespace}/{self.name}"

    def get(self) -> dict[str, Any]:
        return self.kube.get(self.resource, self.namespace, self.name)

    def replicas(self) -> int:
        return int((self.get().get("spec") or {}).get("replicas", 1))

    def recorded(self) -> int | None:
        value = (self.get()["metadata"].get("annotations") or {}).get(ORIGINAL_REPLICAS)
        return int(value) if value is not None else None

    def pods(self) -> list[dict[str, Any]]:
        selector = ((self.get().get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not selector:
            raise UsageError(f"{self.label} has no spec.selector.matchLabels")
        return self.kube.find(k.PODS, self.namespace, selector)

    def scale_down(self, timeout: float) -> int:
        """Record the replicas (once), scale to 0, wait until no pod is left."""
        original = self.recorded()
        if original is None:
            original = self.replicas()
            self.kube.set_annotation(
                self.resource, self.namespace, self.name, ORIGINAL_REPLICAS, str(original)
            )
        self.kube.patch(self.resource, self.namespace, self.name, {"spec": {"replicas": 0}})
        announce(f"{self.label}: scaled to 0 (was {original})")

        def gone() -> bool:
            left = [f"pod {self.namespace}/{p['metadata']['name']}" for p in self.pods()]
            if left:
                raise _NotYet("still there: " + ", ".join(sorted(left)))
            return True

        wait_for(f"the pods of {self.label} to be gone", gone, timeout)
        return original

    def scale_up(self, timeout: float, replicas: int | None = None) -> int:
        """Back to exactly the recorded replicas (or `replicas`); wait until all are Ready."""
        target = replicas if replicas is not None else self.recorded()
        if target is None:
            target = self.replicas()
        self.kube.patch(self.resource, self.namespace, self.name, {"spec": {"replicas": target}})
        announce(f"{self.label}: scaled to {target}")

        def ready() -> bool:
            obj = self.get()
            status = obj.get("status") or {}
            pods = [p for p in self.pods() if _ready(p)]
            if len(pods) < target or int(status.get("readyReplicas") or 0) < target:
                raise _NotYet(f"{len(pods)}/{target} pods Ready")
            return True

        wait_for(f"{self.label} to have {target} Ready replicas", ready, timeout)
        self.kube.set_annotation(self.resource, self.namespace, self.name, ORIGINAL_REPLICAS, None)
        return target


def find_workload(kube: Kube, namespace: str, name: str) -> Workload:
    for resource in (k.DEPLOYMENTS, k.STATEFULSETS):
        if kube.get_optional(resource, namespace, name) is not None:
            return Workload(kube, namespace, resource, name)
    raise UsageError(f"no deployment or statefulset {namespace}/{name} (kubernetes.mirrormaker)")


class ScaledMirrorMaker:
    """MM2 stopped by scaling its workload to 0 (and its connectors first, when REST answers)."""

    def __init__(self, kube: Kube, namespace: str, name: str, rest: ConnectRestMirrorMaker) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.rest = rest
        self._offsets: dict[tuple[str, int], int] | None = None

    def workload(self) -> Workload:
        return find_workload(self.kube, self.namespace, self.name)

    @property
    def key(self) -> str:
        return f"{WORKLOAD_PREFIX}{self.namespace}/{self.name}"

    def _rest_up(self) -> bool:
        with ConnectClient(self.rest.url, timeout=3) as client:
            return client.reachable()

    def connector_states(self) -> dict[str, str]:
        """The workload's replicas (key `workload:<ns>/<name>`) and, when REST answers, the
        connectors' states: everything `restore` needs to put back."""
        workload = self.workload()
        states = {self.key: str(workload.recorded() or workload.replicas())}
        if self._rest_up():
            states.update(self.rest.connector_states())
        return states

    def stop(self, names: list[str], timeout: float) -> None:
        connectors = [n for n in names if not n.startswith(WORKLOAD_PREFIX)]
        if connectors and self._rest_up():
            self.rest.stop(connectors, timeout)
            self._offsets = self.rest.source_offsets()
        self.workload().scale_down(timeout)

    def restore(self, states: dict[str, str], timeout: float) -> None:
        replicas = states.get(self.key)
        self.workload().scale_up(timeout, int(replicas) if replicas is not None else None)
        connectors = {n: s for n, s in states.items() if not n.startswith(WORKLOAD_PREFIX)}
        if connectors:
            wait_for(f"Connect REST {self.rest.url} to answer", self._rest_up, timeout)
            self.rest.restore(connectors, timeout)

    def source_offsets(self) -> dict[tuple[str, int], int]:
        if self._offsets is not None:
            return self._offsets
        try:
            return self.rest.source_offsets()
        except KastenBpError as exc:
            raise KastenBpError(
                f"MM2 in {self.namespace}/{self.name} is scaled down and Connect REST "
                f"{self.rest.url} did not answer before it was: its committed source offsets "
                f"are unknown ({exc}); make connect.url reachable or use --mode hot"
            ) from None


class StatefulSetPlatform:
    name = "statefulset"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.k8s = kube_config(config)
        self.namespace = self.k8s.namespace
        self.sts = self.k8s.cluster
        self.kube = Kube.from_config(self.k8s)
        rest = ConnectRestMirrorMaker(config.connect.url, config.connect.connectors)
        self.mirrormaker: MirrorMakerControl = (
            ScaledMirrorMaker(self.kube, self.namespace, self.k8s.mirrormaker, rest)
            if self.k8s.mirrormaker
            else rest
        )

    @property
    def label(self) -> str:
        return f"statefulset {self.namespace}/{self.sts}"

    def workload(self) -> Workload:
        return Workload(self.kube, self.namespace, k.STATEFULSETS, self.sts)

    def _sts(self) -> dict[str, Any]:
        try:
            return self.kube.get(k.STATEFULSETS, self.namespace, self.sts)
        except k.NotFound:
            raise UsageError(f"{self.label} not found (kubernetes.cluster)") from None

    @contextmanager
    def lock(self, owner: str) -> Iterator[None]:
        with k.lease_lock(self.kube, self.namespace, k.dns_name("kasten-bp", self.sts), owner):
            yield

    def required_access(self) -> list[Access]:
        needs = [
            Access("get", k.LEASES),
            Access("create", k.LEASES),
            Access("update", k.LEASES),
            Access("get", k.STATEFULSETS),
            Access("patch", k.STATEFULSETS),
            Access("list", k.PODS),
            Access("create", k.PODS, "exec"),
            Access("list", k.PVCS),
            Access("create", k.SNAPSHOTS),
            Access("get", k.SNAPSHOTS),
            Access("list", k.SNAPSHOTS),
            Access("delete", k.SNAPSHOTS),
            Access("get", k.SNAPSHOT_CONTENTS, cluster_scoped=True),
        ]
        if self.k8s.group_snapshot_class:
            needs += [
                Access("create", k.GROUP_SNAPSHOTS),
                Access("get", k.GROUP_SNAPSHOTS),
                Access("list", k.GROUP_SNAPSHOTS),
                Access("delete", k.GROUP_SNAPSHOTS),
                Access("get", k.PVS, cluster_scoped=True),
                Access("get", k.GROUP_SNAPSHOT_CONTENTS, cluster_scoped=True),
            ]
        if self.k8s.mirrormaker:
            needs += [
                Access("get", k.DEPLOYMENTS),
                Access("patch", k.DEPLOYMENTS),
                Access("get", k.STATEFULSETS),
                Access("patch", k.STATEFULSETS),
            ]
        return needs

    def preflight(self) -> list[str]:
        crds = [k.SNAPSHOTS, k.SNAPSHOT_CONTENTS]
        if self.k8s.group_snapshot_class:
            crds.append(k.GROUP_SNAPSHOTS)
        problems = self.kube.check(self.required_access(), self.namespace, crds)
        if problems:
            return problems
        if self.kube.get_optional(k.STATEFULSETS, self.namespace, self.sts) is None:
            return [f"{self.label} not found (kubernetes.cluster)"]
        if not self.volumes():
            problems.append(f"{self.label} has no volumeClaimTemplates PVCs to snapshot")
        if self.k8s.mirrormaker:
            try:
                find_workload(self.kube, self.namespace, self.k8s.mirrormaker)
            except UsageError as exc:
                problems.append(str(exc))
        return problems

    def mirror_cluster_id(self) -> str:
        from kasten_bp.kafka import clients

        client = clients.admin(self.config.mirror.bootstrap)  # keep it alive for the future
        description = client.describe_cluster(request_timeout=10).result(timeout=15)
        return str(description.cluster_id or "")

    def _replicas(self) -> int:
        sts = self._sts()
        recorded = (sts["metadata"].get("annotations") or {}).get(ORIGINAL_REPLICAS)
        return (
            int(recorded)
            if recorded is not None
            else int((sts.get("spec") or {}).get("replicas", 1))
        )

    def volumes(self) -> list[Volume]:
        sts = self._sts()
        templates = [
            t["metadata"]["name"] for t in (sts.get("spec") or {}).get("volumeClaimTemplates") or []
        ]
        pvcs = {p["metadata"]["name"]: p for p in self.kube.find(k.PVCS, self.namespace)}
        vols = []
        for ordinal in range(self._replicas()):
            for template in templates:
                name = f"{template}-{self.sts}-{ordinal}"
                pvc = pvcs.get(name)
                if pvc is None:
                    continue
                details = {
                    "statefulset": self.sts,
                    "template": template,
                    "ordinal": ordinal,
                    "pod": f"{self.sts}-{ordinal}",
                    "pvc_template": k.pvc_template(pvc, tuple(pvc["metadata"].get("labels") or {})),
                }
                vols.append(Volume(pvc, ordinal, details))
        return vols

    def brokers(self) -> list[BrokerInfo]:
        pods = {p["metadata"]["name"]: p for p in self.kube.find(k.PODS, self.namespace)}
        vols: dict[int, list[str]] = {}
        for v in self.volumes():
            vols.setdefault(v.broker_id, []).append(v.name)
        out = []
        for ordinal in range(self._replicas()):
            pod = pods.get(f"{self.sts}-{ordinal}")
            out.append(BrokerInfo(ordinal, pod is not None and _ready(pod), vols.get(ordinal, [])))
        return out

    def stop_brokers(self, broker_ids: list[int], timeout: float) -> None:
        """A StatefulSet scales from the top only: all brokers are stopped."""
        for ordinal in broker_ids:
            pod = f"{self.sts}-{ordinal}"
            try:
                code, out = self.kube.exec(self.namespace, pod, None, ["sync"], min(timeout, 60))
            except ExecUnavailable as exc:
                message = f"{exc}; skipped `sync` (clean shutdown and unmount flush the volume)"
                log.warning(message)
                announce(f"warning: {message}")
                continue
            if code not in (0, None):
                raise KastenBpError(
                    f"pod {self.namespace}/{pod}: `sync` exited {code}: {out.strip()}"
                )
        self.workload().scale_down(timeout)

    def start_brokers(self, broker_ids: list[int], timeout: float) -> None:
        replicas = self.workload().scale_up(timeout)
        from kasten_bp.kafka import admin

        wait_for(
            f"every partition of the mirror {self.config.mirror.bootstrap} to have a leader and "
            f"a full ISR ({replicas} brokers)",
            lambda: admin.all_partitions_healthy(self.config.mirror.bootstrap, replicas),
            timeout,
        )

    def snapshot_volumes(
        self, backup_id: str, broker_ids: list[int], timeout: float
    ) -> list[SnapshotRef]:
        timeout = min(timeout, self.k8s.timeout_seconds)
        vols = [v for v in self.volumes() if v.broker_id in broker_ids]
        if not vols:
            raise KastenBpError(f"{self.label}: no PVCs of ordinals {broker_ids} to snapshot")
        labels = {"app.kubernetes.io/instance": k.label_value(self.sts)}
        if self.k8s.group_snapshot_class:
            selector = ((self._sts().get("spec") or {}).get("selector") or {}).get(
                "matchLabels"
            ) or {}
            details = k.group_snapshot(
                self.kube,
                self.namespace,
                vols,
                selector,
                backup_id,
                self.k8s.group_snapshot_class,
                timeout,
                labels,
            )
        else:
            details = k.snapshot_volumes(
                self.kube, self.namespace, vols, backup_id, self.k8s.snapshot_class, timeout, labels
            )
        return [
            SnapshotRef(
                broker_id=v.broker_id,
                volume=f"{self.namespace}/{v.name}",
                location=f"volumesnapshot/{self.namespace}/{d['snapshot']}",
                size_bytes=int(d.get("restore_bytes") or 0),
                details=d,
            )
            for v, d in zip(vols, details, strict=True)
        ]

    def delete_snapshots(self, backup_id: str) -> None:
        for item in k.delete_backup_snapshots(self.kube, self.namespace, backup_id):
            announce(f"deleted {item}")

    def restore(self, manifest: Manifest, timeout: float) -> dict[str, Any]:
        """PVCs from the snapshots in `kubernetes.restore_namespace`, named as the
        StatefulSet there will claim them. Installing the chart (same release name) into
        that namespace then starts the restored brokers on them."""
        target = self.k8s.restore_namespace
        if not target or target == self.namespace:
            raise UsageError(
                "set kubernetes.restore_namespace to a namespace other than "
                f"{self.namespace}: restored PVCs keep the names {self.sts}'s pods claim"
            )
        timeout = min(timeout, self.k8s.timeout_seconds)
        refs = [r.details for r in manifest.snapshots]
        if not refs:
            raise UsageError(f"backup {manifest.backup_id} holds no snapshots to restore")
        pvcs = k.restore_pvcs(self.kube, target, manifest.backup_id, refs, timeout)
        return {
            "bootstrap": self.k8s.restored_bootstrap
            or f"{self.sts}-0.{self.sts}-headless.{target}.svc:9092",
            "namespace": target,
            "pvcs": pvcs,
            "statefulset": self.sts,
            "replicas": len({int(r.get("ordinal", 0)) for r in refs}),
            "backup_id": manifest.backup_id,
            "next": f"install the Kafka chart as {self.sts} with "
            f"{len({int(r.get('ordinal', 0)) for r in refs})} replicas into namespace {target}",
        }


class _NotYet(Exception):
    """A probe's reason for "not yet", named by the timeout."""
