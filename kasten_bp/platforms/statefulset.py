"""Platform `statefulset`: Kafka as a plain StatefulSet (Helm-chart style), MM2 in a
Deployment or StatefulSet.

Brokers: the StatefulSet `kubernetes.cluster`; broker id = pod ordinal. Stopping scales it
to 0 after recording the original replicas in an annotation on the StatefulSet (written
once, so a retried stop never records 0); starting scales back to exactly that count.
Volumes: the PVCs of its volumeClaimTemplates, `<template>-<statefulset>-<ordinal>`.

MM2 (`kubernetes.mirrormaker` set): scaled to 0 and back to exactly the recorded replicas.
When the Connect REST API (`connect.url`) answers, the connectors are also stopped through
it first, so their source offsets are committed. MM2's committed offsets are read from
Connect REST whenever it answers; while MM2 is scaled to 0 they cannot move, so the ones
read as it stopped stand in (said so in the log), and without those they are unknown and
`source_offsets` says so. Without `kubernetes.mirrormaker`, MM2 is controlled through
Connect REST only.
"""

from __future__ import annotations

import logging
from typing import Any

from kasten_bp.errors import KastenBpError, TemporaryError, UsageError
from kasten_bp.manifest import Manifest, SnapshotRef
from kasten_bp.platforms.base import BrokerInfo
from kasten_bp.platforms.kube import resources as r
from kasten_bp.platforms.kube.api import Kube, NotFound
from kasten_bp.platforms.kube.platform import KubePlatform
from kasten_bp.platforms.kube.restore import restore_pvcs
from kasten_bp.platforms.kube.snapshots import Volume, pvc_template
from kasten_bp.platforms.mm2_rest import ConnectRestMirrorMaker
from kasten_bp.waiting import announce, wait_for

log = logging.getLogger(__name__)

ORIGINAL_REPLICAS = "kasten-bp.io/original-replicas"
WORKLOAD_PREFIX = "workload:"


class Workload:
    """A Deployment or StatefulSet that is scaled to 0 and back to its recorded replicas."""

    def __init__(self, kube: Kube, namespace: str, resource: r.Resource, name: str) -> None:
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

    def original(self) -> int:
        """The replicas it runs with when not stopped by us."""
        recorded = self.recorded()
        return recorded if recorded is not None else self.replicas()

    def selector(self) -> dict[str, str]:
        selector = ((self.get().get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not selector:
            raise UsageError(f"{self.label} has no spec.selector.matchLabels")
        return dict(selector)

    def pods(self) -> list[dict[str, Any]]:
        return self.kube.find(r.PODS, self.namespace, self.selector())

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
                raise TemporaryError("still there: " + ", ".join(sorted(left)))
            return True

        wait_for(f"the pods of {self.label} to be gone", gone, timeout)
        return original

    def scale_up(self, timeout: float, replicas: int | None = None) -> int:
        """Back to exactly the recorded replicas (or `replicas`); wait until all are Ready."""
        target = replicas if replicas is not None else self.original()
        self.kube.patch(self.resource, self.namespace, self.name, {"spec": {"replicas": target}})
        announce(f"{self.label}: scaled to {target}")

        def ready() -> bool:
            status = self.get().get("status") or {}
            pods = [p for p in self.pods() if r.pod_ready(p)]
            if len(pods) < target or int(status.get("readyReplicas") or 0) < target:
                raise TemporaryError(f"{len(pods)}/{target} pods Ready")
            return True

        wait_for(f"{self.label} to have {target} Ready replicas", ready, timeout)
        self.kube.set_annotation(self.resource, self.namespace, self.name, ORIGINAL_REPLICAS, None)
        return target


def find_workload(kube: Kube, namespace: str, name: str) -> Workload:
    for resource in (r.DEPLOYMENTS, r.STATEFULSETS):
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
        # MM2's committed offsets as read when this run stopped it: they stand in for the
        # real ones only while no worker runs (nothing can move them then).
        self._at_stop: dict[tuple[str, int], int] | None = None
        self._said_stand_in = False

    def workload(self) -> Workload:
        return find_workload(self.kube, self.namespace, self.name)

    @property
    def key(self) -> str:
        return f"{WORKLOAD_PREFIX}{self.namespace}/{self.name}"

    def _rest_up(self) -> bool:
        with self.rest.client(timeout=3) as client:
            return client.reachable()

    def connector_states(self) -> dict[str, str]:
        """The workload's replicas (key `workload:<ns>/<name>`) and, when REST answers, the
        connectors' states: everything `restore` needs to put back."""
        states = {self.key: str(self.workload().original())}
        if self._rest_up():
            states.update(self.rest.connector_states())
        return states

    def stop(self, names: list[str], timeout: float) -> None:
        connectors = [n for n in names if not n.startswith(WORKLOAD_PREFIX)]
        if connectors and self._rest_up():
            self.rest.stop(connectors, timeout)
            self._at_stop = self.rest.source_offsets()
        self.workload().scale_down(timeout)

    def restore(self, states: dict[str, str], timeout: float) -> None:
        replicas = states.get(self.key)
        self.workload().scale_up(timeout, int(replicas) if replicas is not None else None)
        connectors = {n: s for n, s in states.items() if not n.startswith(WORKLOAD_PREFIX)}
        if connectors:
            wait_for(f"Connect REST {self.rest.url} to answer", self._rest_up, timeout)
            self.rest.restore(connectors, timeout)

    def alter_source_offsets(self, offsets: dict[tuple[str, int], int]) -> None:
        if not self._rest_up():
            raise KastenBpError(
                f"Connect REST {self.rest.url} (connect.url) does not answer while "
                f"{self.workload().label} is scaled to 0"
            )
        self.rest.alter_source_offsets(offsets)

    def source_offsets(self) -> dict[tuple[str, int], int]:
        """MM2's committed offsets from Connect REST whenever it answers; while the workload
        is scaled to 0, the ones read as this run stopped it."""
        if self._rest_up():
            return self.rest.source_offsets()
        workload = self.workload()
        if self._at_stop is not None and workload.replicas() == 0:
            if not self._said_stand_in:
                log.warning(
                    "Connect REST %s does not answer while %s is scaled to 0: using MM2's "
                    "committed source offsets as read when it was stopped",
                    self.rest.url,
                    workload.label,
                )
                self._said_stand_in = True
            return self._at_stop
        raise KastenBpError(
            f"MM2's committed source offsets are unknown: Connect REST {self.rest.url} "
            f"(connect.url) does not answer and {workload.label} was not stopped by this run "
            "with REST answering; make connect.url reachable or use --mode hot"
        )


class StatefulSetPlatform(KubePlatform):
    name = "statefulset"

    cluster_kind = "statefulset"

    def managed_mirrormaker(self, name: str) -> ScaledMirrorMaker:
        return ScaledMirrorMaker(self.kube, self.namespace, name, self.rest)

    def workload(self) -> Workload:
        return Workload(self.kube, self.namespace, r.STATEFULSETS, self.cluster)

    def _sts(self) -> dict[str, Any]:
        try:
            return self.workload().get()
        except NotFound:
            raise UsageError(f"{self.label} not found (kubernetes.cluster)") from None

    def cluster_access(self) -> list[r.Access]:
        needs = (
            r.access(r.STATEFULSETS, "get", "patch")
            + r.access(r.PODS, "list")
            + r.access(r.PVCS, "list")
        )
        if self.k8s.mirrormaker:  # a Deployment or a StatefulSet
            needs += r.access(r.DEPLOYMENTS, "get", "patch")
        return needs

    def cluster_restore_access(self) -> list[r.Access]:
        return []  # the PVCs only: installing the chart starts the brokers

    def preflight(self) -> list[str]:
        problems = self.check_access()
        if problems:
            return problems
        if self.kube.get_optional(r.STATEFULSETS, self.namespace, self.cluster) is None:
            return [f"{self.label} not found (kubernetes.cluster)"]
        if not self.volumes():
            problems.append(f"{self.label} has no volumeClaimTemplates PVCs to snapshot")
        if self.k8s.mirrormaker:
            try:
                find_workload(self.kube, self.namespace, self.k8s.mirrormaker)
            except UsageError as exc:
                problems.append(str(exc))
        return problems + self.snapshot_class_problems()

    def mirror_cluster_id(self) -> str:
        from kasten_bp.kafka import clients

        client = clients.admin(self.config.mirror.bootstrap)  # keep it alive for the future
        description = client.describe_cluster(request_timeout=10).result(timeout=15)
        return str(description.cluster_id or "")

    def volumes(self) -> list[Volume]:
        sts = self._sts()
        templates = [
            t["metadata"]["name"] for t in (sts.get("spec") or {}).get("volumeClaimTemplates") or []
        ]
        pvcs = {p["metadata"]["name"]: p for p in self.kube.find(r.PVCS, self.namespace)}
        vols = []
        for ordinal in range(self.workload().original()):
            for template in templates:
                pvc = pvcs.get(f"{template}-{self.cluster}-{ordinal}")
                if pvc is None:
                    continue
                details = {
                    "statefulset": self.cluster,
                    "template": template,
                    "ordinal": ordinal,
                    "pod": f"{self.cluster}-{ordinal}",
                    "pvc_template": pvc_template(pvc, tuple(pvc["metadata"].get("labels") or {})),
                }
                vols.append(Volume(pvc, ordinal, details))
        return vols

    def brokers(self) -> list[BrokerInfo]:
        pods = {p["metadata"]["name"]: p for p in self.kube.find(r.PODS, self.namespace)}
        vols: dict[int, list[str]] = {}
        for v in self.volumes():
            vols.setdefault(v.broker_id, []).append(v.name)
        out = []
        for ordinal in range(self.workload().original()):
            pod = pods.get(f"{self.cluster}-{ordinal}")
            running = pod is not None and r.pod_ready(pod)
            out.append(BrokerInfo(ordinal, running, vols.get(ordinal, [])))
        return out

    def stop_brokers(self, broker_ids: list[int], timeout: float) -> list[str]:
        """A StatefulSet scales from the top only: all brokers are stopped. Pods get their
        own grace period; how each ended is the kubelet's to tell (no warning claimed)."""
        self.flush([f"{self.cluster}-{i}" for i in broker_ids], None, timeout)
        self.workload().scale_down(timeout)
        return []

    def start_brokers(self, broker_ids: list[int], timeout: float) -> None:
        replicas = self.workload().scale_up(timeout)
        self.wait_partitions_healthy(replicas, timeout)

    def seal_snapshots(self, backup_id: str, refs: list[SnapshotRef]) -> list[SnapshotRef]:
        return refs  # a CSI snapshot is checked by its driver, not read back by us

    def snapshot_volumes(
        self, backup_id: str, broker_ids: list[int], timeout: float
    ) -> list[SnapshotRef]:
        vols = [v for v in self.volumes() if v.broker_id in broker_ids]
        labels = {"app.kubernetes.io/instance": r.label_value(self.cluster)}
        return self.snapshot(backup_id, vols, self.workload().selector(), labels, timeout)

    def restore(self, manifest: Manifest, timeout: float) -> dict[str, Any]:
        """PVCs from the snapshots in `kubernetes.restore_namespace`, named as the
        StatefulSet there will claim them. Installing the chart (same release name) into
        that namespace then starts the restored brokers on them."""
        target = self.restore_target(f"restored PVCs keep the names {self.cluster}'s pods claim")
        timeout = min(timeout, self.k8s.timeout_seconds)
        refs = [s.details for s in manifest.snapshots]
        if not refs:
            raise UsageError(f"backup {manifest.backup_id} holds no snapshots to restore")
        pvcs = restore_pvcs(self.kube, target, manifest.backup_id, refs, timeout)
        replicas = len({int(d.get("ordinal", 0)) for d in refs})
        return {
            "bootstrap": self.k8s.restored_bootstrap
            or f"{self.cluster}-0.{self.cluster}-headless.{target}.svc:9092",
            "namespace": target,
            "pvcs": pvcs,
            "statefulset": self.cluster,
            "replicas": replicas,
            "backup_id": manifest.backup_id,
            "next": f"install the Kafka chart as {self.cluster} with {replicas} replicas "
            f"into namespace {target}",
        }
