"""Platform `strimzi`: the mirror is a Strimzi (>= 0.39) KRaft cluster with KafkaNodePools.

Stop:  pause reconciliation of the Kafka (`strimzi.io/pause-reconciliation`, wait for the
       ReconciliationPaused condition), record the StrimziPodSets in a ConfigMap, `sync` in
       each broker pod, delete the StrimziPodSets with foreground cascade, wait for the pods
       to go.
Start: recreate any missing StrimziPodSet from the record, remove the pause annotation,
       wait until the Kafka is Ready, the pods are Ready and every partition is healthy.
Snapshots: one VolumeSnapshot per node PVC (JBOD aware), or one VolumeGroupSnapshot.
Restore: Strimzi's volume-recovery procedure (PVCs from snapshots with the names the new
       cluster binds, Kafka + KafkaNodePools applied paused, cluster id set, then unpaused).

MM2 control. When `kubernetes.mirrormaker` names a KafkaMirrorMaker2, its connectors are
stopped and restored through the resource itself (`spec.mirrors[].sourceConnector.state`,
and the checkpoint/heartbeat connectors), waiting for `status.connectors` to show the
state: the operator owns those connectors, reverts REST changes on its next reconcile, and
Strimzi's NetworkPolicy admits only the operator to the REST API. The KafkaMirrorMaker2 is
therefore *not* paused (a paused resource ignores the very change we make). MM2's committed
source offsets are not in the resource; they are read from `connect.url` (Connect REST, e.g.
through a port-forward or a Service reachable from the blueprint pod). Without
`kubernetes.mirrormaker`, MM2 is controlled through Connect REST at `connect.url`.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from kasten_bp.errors import KastenBpError, PermanentError, TemporaryError, UsageError
from kasten_bp.manifest import Manifest, SnapshotRef
from kasten_bp.platforms.base import BrokerInfo
from kasten_bp.platforms.kube import resources as r
from kasten_bp.platforms.kube.api import Kube, NotFound
from kasten_bp.platforms.kube.platform import KubePlatform
from kasten_bp.platforms.kube.restore import restore_pvcs
from kasten_bp.platforms.kube.snapshots import Volume, pvc_template
from kasten_bp.platforms.mm2_rest import ConnectRestMirrorMaker
from kasten_bp.platforms.strimzi_objects import (
    CLUSTER,
    PAUSE,
    TOPICS,
    USERS,
    apply_paused,
    apply_secrets,
    backup_access,
    capture,
    clean_object,
    restore_access,
)
from kasten_bp.waiting import announce, wait_for

log = logging.getLogger(__name__)

KIND = "strimzi.io/kind"
POOL = "strimzi.io/pool-name"
NEXT_NODE_IDS = "strimzi.io/next-node-ids"
CLUSTER_ID_ANNOTATION = "kasten-bp.io/cluster-id"
RESTORED_FROM = "kasten-bp.io/restored-from"
# Touched to make the operator reconcile a KafkaMirrorMaker2 again (Strimzi reconciles on
# every change to the resource, and otherwise only every 2 minutes by default).
RECONCILE_REQUESTED = "kasten-bp.io/reconcile-requested"
# How long the declared connector states may go unreported after the operator observed
# them before kasten-bp asks for another reconciliation.
RECONCILE_NUDGE_SECONDS = 5.0
CONNECTOR_FIELDS = {
    "MirrorSourceConnector": "sourceConnector",
    "MirrorCheckpointConnector": "checkpointConnector",
    "MirrorHeartbeatConnector": "heartbeatConnector",
}


def parse_node(pvc_name: str, cluster: str, pool: str) -> tuple[int, int | None] | None:
    """(node id, JBOD volume id) from `data-<cluster>-<pool>-<id>` or
    `data-<n>-<cluster>-<pool>-<id>`; None if the name is neither."""
    tail = f"-{cluster}-{pool}-"
    if not pvc_name.startswith("data-") or tail not in pvc_name:
        return None
    head, _, node = pvc_name.rpartition(tail)
    if not node.isdigit():
        return None
    if head == "data":
        return int(node), None
    volume = head.removeprefix("data-")
    return (int(node), int(volume)) if volume.isdigit() else None


class StrimziMirrorMaker:
    """MM2 connectors through a KafkaMirrorMaker2 resource (states: RUNNING/PAUSED/STOPPED)."""

    def __init__(self, kube: Kube, namespace: str, name: str, rest: ConnectRestMirrorMaker) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.rest = rest

    @property
    def label(self) -> str:
        return f"kafkamirrormaker2 {self.namespace}/{self.name}"

    def _get(self) -> dict[str, Any]:
        try:
            return self.kube.get(r.MIRRORMAKER2S, self.namespace, self.name)
        except NotFound:
            raise UsageError(f"{self.label} not found (kubernetes.mirrormaker)") from None

    def _connectors(self, mm2: dict[str, Any]) -> dict[str, tuple[int, str]]:
        """Connector name -> (index in spec.mirrors, spec field)."""
        spec = mm2.get("spec") or {}
        target = (spec.get("target") or {}).get("alias") or spec.get("connectCluster")
        out = {}
        for i, mirror in enumerate(spec.get("mirrors") or []):
            source = mirror.get("sourceCluster") or (mirror.get("source") or {}).get("alias")
            for cls, field in CONNECTOR_FIELDS.items():
                if field in mirror or field == "sourceConnector":
                    out[f"{source}->{target}.{cls}"] = (i, field)
        return out

    def connector_states(self) -> dict[str, str]:
        """The declared states (what the operator enforces), upper case like Connect's."""
        mm2 = self._get()
        mirrors = (mm2.get("spec") or {}).get("mirrors") or []
        return {
            name: str((mirrors[i].get(field) or {}).get("state") or "running").upper()
            for name, (i, field) in self._connectors(mm2).items()
        }

    def _status(self, mm2: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {str(c.get("name")): c for c in ((mm2.get("status") or {}).get("connectors") or [])}

    def _set(self, states: dict[str, str], timeout: float) -> None:
        mm2 = self._get()
        known = self._connectors(mm2)
        unknown = [n for n in states if n not in known]
        if unknown:
            raise UsageError(f"{self.label} has no connectors {unknown} (it has {sorted(known)})")
        ops: list[dict[str, Any]] = [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": mm2["metadata"]["resourceVersion"],
            }
        ]
        mirrors = mm2["spec"]["mirrors"]
        for name, state in states.items():
            i, field = known[name]
            if field not in mirrors[i]:
                ops.append({"op": "add", "path": f"/spec/mirrors/{i}/{field}", "value": {}})
                mirrors[i][field] = {}
            ops.append(
                {"op": "add", "path": f"/spec/mirrors/{i}/{field}/state", "value": state.lower()}
            )
        self.kube.patch(r.MIRRORMAKER2S, self.namespace, self.name, ops, content_type=r.JSON_PATCH)
        announce(f"{self.label}: set connectors {states}")

        nudged_at = time.monotonic()

        def reached() -> bool:
            nonlocal nudged_at
            cur = self._get()
            generation = cur["metadata"].get("generation", 0)
            if (cur.get("status") or {}).get("observedGeneration", -1) < generation:
                return False
            if not self._states_reached(cur, states):
                if time.monotonic() - nudged_at >= RECONCILE_NUDGE_SECONDS:
                    self._request_reconcile(cur, states)
                    nudged_at = time.monotonic()
                return False
            return True

        wait_for(f"{self.label} status.connectors to show {states}", reached, timeout)

    def _request_reconcile(self, mm2: dict[str, Any], states: dict[str, str]) -> None:
        """The operator observed the declared states but its status does not show them.
        Strimzi leaves a connector it finds UNASSIGNED (a Connect rebalance, as when the
        mirror's brokers come back) to its next reconciliation, and reports what Connect
        said as it reconciled: touching the resource makes it reconcile now."""
        status = self._status(mm2)
        shown = {
            name: str(((status.get(name) or {}).get("connector") or {}).get("state"))
            for name in states
        }
        announce(f"{self.label}: status shows {shown}: asking the operator to reconcile again")
        self.kube.patch(
            r.MIRRORMAKER2S,
            self.namespace,
            self.name,
            {"metadata": {"annotations": {RECONCILE_REQUESTED: str(time.time())}}},
        )

    def _states_reached(self, mm2: dict[str, Any], states: dict[str, str]) -> bool:
        status = self._status(mm2)
        for name, state in states.items():
            st = status.get(name)
            if st is None:
                return False
            connector = (st.get("connector") or {}).get("state")
            tasks = st.get("tasks") or []
            if connector == "FAILED" or any(t.get("state") == "FAILED" for t in tasks):
                raise PermanentError(f"{self.label}: connector {name} FAILED")
            if connector != state.upper():
                return False
            if state.upper() == "RUNNING" and any(t.get("state") != "RUNNING" for t in tasks):
                return False
            if state.upper() == "STOPPED" and tasks:
                return False
        return True

    def stop(self, names: list[str], timeout: float) -> None:
        self._set(dict.fromkeys(names, "STOPPED"), timeout)

    def restore(self, states: dict[str, str], timeout: float) -> None:
        self._set(states, timeout)

    def source_offsets(self) -> dict[tuple[str, int], int]:
        try:
            return self.rest.source_offsets()
        except KastenBpError as exc:
            raise KastenBpError(
                f"MM2 source offsets are read from Connect REST at {self.rest.url} "
                f"(connect.url), which failed: {exc}"
            ) from None

    def alter_source_offsets(self, offsets: dict[tuple[str, int], int]) -> None:
        # Through the same Connect REST path the offsets are read from: the operator leaves
        # a connector's offsets alone, and its STOPPED state is what KIP-875 requires.
        try:
            self.rest.alter_source_offsets(offsets)
        except KastenBpError as exc:
            raise KastenBpError(
                f"MM2 source offsets are altered through Connect REST at {self.rest.url} "
                f"(connect.url), which failed: {exc}"
            ) from None


class StrimziPlatform(KubePlatform):
    name = "strimzi"

    cluster_kind = "kafka"

    def managed_mirrormaker(self, name: str) -> StrimziMirrorMaker:
        return StrimziMirrorMaker(self.kube, self.namespace, name, self.rest)

    # --- names ----------------------------------------------------------------------

    @property
    def selector(self) -> dict[str, str]:
        return {CLUSTER: self.cluster, KIND: "Kafka"}

    @property
    def podset_record(self) -> str:
        return r.dns_name("kasten-bp", self.cluster, "podsets")

    def _kafka(self, namespace: str | None = None) -> dict[str, Any]:
        ns = namespace or self.namespace
        try:
            return self.kube.get(r.KAFKAS, ns, self.cluster)
        except NotFound:
            raise UsageError(f"kafka {ns}/{self.cluster} not found (kubernetes.cluster)") from None

    # --- access / preflight -------------------------------------------------------------

    def cluster_access(self) -> list[r.Access]:
        needs = (
            r.access(r.KAFKAS, "get", "patch")
            + r.access(r.NODE_POOLS, "list")
            + r.access(r.PODSETS, "list", "get", "create", "delete")
            + r.access(r.PODS, "list")
            + r.access(r.PVCS, "list")
            + r.access(r.CONFIGMAPS, "get", "create", "update", "delete")  # the podset record
            + backup_access(self.cluster)  # topics, users, CA secrets: saved for a restore
        )
        if self.k8s.mirrormaker:
            needs += r.access(r.MIRRORMAKER2S, "get", "patch")
        return needs

    def cluster_restore_access(self) -> list[r.Access]:
        # Kafka and KafkaNodePools applied paused, the cluster id put into the status.
        return (
            r.access(r.KAFKAS, "get", "create", "patch")
            + r.access(r.KAFKAS, "patch", sub="status")
            + r.access(r.NODE_POOLS, "get", "create")
            + r.access(r.PODS, "list")
            + restore_access()  # CA secrets, then topics, users and MM2 applied paused
        )

    def cluster_crds(self) -> list[r.Resource]:
        crds = [r.KAFKAS, r.NODE_POOLS, r.PODSETS, TOPICS, USERS]
        if self.k8s.mirrormaker:
            crds.append(r.MIRRORMAKER2S)
        return crds

    def preflight(self) -> list[str]:
        problems = self.check_access()
        if problems:
            return problems
        kafka = self.kube.get_optional(r.KAFKAS, self.namespace, self.cluster)
        if kafka is None:
            return [f"{self.label} not found (kubernetes.cluster)"]
        annotations = kafka["metadata"].get("annotations") or {}
        if annotations.get("strimzi.io/node-pools") != "enabled":
            problems.append(f"{self.label} does not use KafkaNodePools (strimzi.io/node-pools)")
        if annotations.get("strimzi.io/kraft") not in ("enabled", None) and "kraft" in annotations:
            problems.append(f"{self.label} is not a KRaft cluster")
        if not self.kube.find(r.NODE_POOLS, self.namespace, {CLUSTER: self.cluster}):
            problems.append(f"{self.label} has no KafkaNodePools")
        if not self.volumes():
            problems.append(f"{self.label} has no PVCs labelled {r.labels_selector(self.selector)}")
        if self.k8s.mirrormaker and not self.kube.get_optional(
            r.MIRRORMAKER2S, self.namespace, self.k8s.mirrormaker
        ):
            problems.append(f"kafkamirrormaker2 {self.namespace}/{self.k8s.mirrormaker} not found")
        return problems + self.snapshot_class_problems()

    # --- brokers -------------------------------------------------------------------------

    def mirror_cluster_id(self) -> str:
        return str((self._kafka().get("status") or {}).get("clusterId") or "")

    def _pods(self, namespace: str | None = None) -> dict[int, dict[str, Any]]:
        """Node id -> pod, for the pods named `<cluster>-<pool>-<id>`."""
        pods = self.kube.find(r.PODS, namespace or self.namespace, self.selector)
        nodes = {pod_node(p, self.cluster): p for p in pods}
        return {node: p for node, p in nodes.items() if node is not None}

    def volumes(self) -> list[Volume]:
        vols = []
        for pvc in self.kube.find(r.PVCS, self.namespace, self.selector):
            labels = pvc["metadata"].get("labels") or {}
            pool = labels.get(POOL)
            name = pvc["metadata"]["name"]
            parsed = parse_node(name, self.cluster, pool) if pool else None
            if parsed is None:
                log.warning("pvc %s/%s: not a Strimzi node volume; skipped", self.namespace, name)
                continue
            node, volume_id = parsed
            details = {
                "pool": pool,
                "node_id": node,
                "jbod_volume_id": volume_id,
                "pod": f"{self.cluster}-{pool}-{node}",
                "pvc_template": pvc_template(pvc, (CLUSTER, KIND, POOL, "strimzi.io/name")),
            }
            vols.append(Volume(pvc, node, details))
        return sorted(vols, key=lambda v: (v.broker_id, v.name))

    def brokers(self) -> list[BrokerInfo]:
        pods = self._pods()
        volumes: dict[int, list[str]] = {}
        for vol in self.volumes():
            volumes.setdefault(vol.broker_id, []).append(vol.name)
        ids = sorted(set(pods) | set(volumes))
        return [BrokerInfo(i, i in pods and r.pod_ready(pods[i]), volumes.get(i, [])) for i in ids]

    def _pause(self, namespace: str, timeout: float) -> None:
        label = f"kafka {namespace}/{self.cluster}"
        self.kube.set_annotation(r.KAFKAS, namespace, self.cluster, PAUSE, "true")
        announce(f"{label}: reconciliation paused (annotation {PAUSE}=true)")
        wait_for(
            f"{label} to have condition ReconciliationPaused=True",
            lambda: r.condition_true(self._kafka(namespace), "ReconciliationPaused"),
            timeout,
        )

    def _unpause(self, namespace: str) -> None:
        kafka = self._kafka(namespace)
        if (kafka["metadata"].get("annotations") or {}).get(PAUSE) is not None:
            self.kube.set_annotation(r.KAFKAS, namespace, self.cluster, PAUSE, None)
            announce(f"kafka {namespace}/{self.cluster}: reconciliation resumed")

    def stop_brokers(self, broker_ids: list[int], timeout: float) -> list[str]:
        """Pods get their own grace period; how each ended is the kubelet's to tell, not
        ours (no warning is claimed either way)."""
        self._pause(self.namespace, timeout)
        podsets = self.kube.find(r.PODSETS, self.namespace, self.selector)
        self._record_podsets(podsets)
        pods = self._pods()
        self.flush([pods[i]["metadata"]["name"] for i in broker_ids if i in pods], "kafka", timeout)
        for ps in podsets:
            name = ps["metadata"]["name"]
            if self.kube.delete(r.PODSETS, self.namespace, name, propagation="Foreground"):
                announce(f"deleted strimzipodset {self.namespace}/{name} (foreground)")

        def gone() -> bool:
            left = sorted(
                f"pod {self.namespace}/{p['metadata']['name']}" for p in self._pods().values()
            )
            sets = self.kube.find(r.PODSETS, self.namespace, self.selector)
            if left or sets:
                raise TemporaryError(
                    ", ".join(left + [f"strimzipodset {s['metadata']['name']}" for s in sets])
                )
            return True

        wait_for(f"the pods of {self.label} to be gone", gone, timeout)
        return []

    def _record_podsets(self, podsets: list[dict[str, Any]]) -> None:
        """Keep the StrimziPodSets in a ConfigMap, so they can be recreated even if the
        operator stays paused or the run crashes (never overwrite an earlier record)."""
        existing = self.kube.get_optional(r.CONFIGMAPS, self.namespace, self.podset_record)
        data = dict((existing or {}).get("data") or {})
        for ps in podsets:
            data.setdefault(ps["metadata"]["name"], json.dumps(clean_object(ps)))
        body = {
            "metadata": {
                "name": self.podset_record,
                "labels": {CLUSTER: self.cluster, "app.kubernetes.io/managed-by": "kasten-bp"},
            },
            "data": data,
        }
        if existing is None:
            self.kube.create(r.CONFIGMAPS, self.namespace, body)
        else:
            body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            self.kube.replace(
                r.CONFIGMAPS,
                self.namespace,
                self.podset_record,
                {"apiVersion": "v1", "kind": "ConfigMap", **body},
            )

    def start_brokers(self, broker_ids: list[int], timeout: float) -> None:
        record = self.kube.get_optional(r.CONFIGMAPS, self.namespace, self.podset_record)
        for name, text in sorted(((record or {}).get("data") or {}).items()):
            if self.kube.get_optional(r.PODSETS, self.namespace, name) is None:
                self.kube.create_or_get(r.PODSETS, self.namespace, json.loads(text))
                announce(f"recreated strimzipodset {self.namespace}/{name} from the record")
        self._unpause(self.namespace)
        self._wait_ready(self.namespace, broker_ids, timeout)
        expected = len(self._broker_role_ids())
        if expected:
            self.wait_partitions_healthy(expected, timeout)
        if record is not None:
            self.kube.delete(r.CONFIGMAPS, self.namespace, self.podset_record)

    def _broker_role_ids(self) -> list[int]:
        ids: list[int] = []
        for pool in self.kube.find(r.NODE_POOLS, self.namespace, {CLUSTER: self.cluster}):
            if "broker" in ((pool.get("spec") or {}).get("roles") or ["broker"]):
                ids += list((pool.get("status") or {}).get("nodeIds") or [])
        return ids

    def _wait_ready(self, namespace: str, broker_ids: list[int], timeout: float) -> None:
        label = f"kafka {namespace}/{self.cluster}"

        def ready() -> bool:
            kafka = self._kafka(namespace)
            if r.condition_true(kafka, "ReconciliationPaused"):
                raise TemporaryError(f"{label} still reports ReconciliationPaused")
            if not r.condition_true(kafka, "Ready"):
                cond = r.condition(kafka, "NotReady") or r.condition(kafka, "Ready") or {}
                raise TemporaryError(f"{label} not Ready {cond.get('message') or ''}".strip())
            pods = self._pods(namespace)
            missing = [i for i in broker_ids if i not in pods or not r.pod_ready(pods[i])]
            if missing:
                raise TemporaryError(f"pods of nodes {missing} not Ready")
            return True

        wait_for(f"{label} to be Ready with its pods", ready, timeout)

    # --- snapshots -----------------------------------------------------------------------

    def seal_snapshots(self, backup_id: str, refs: list[SnapshotRef]) -> list[SnapshotRef]:
        return refs  # a CSI snapshot is checked by its driver, not read back by us

    def snapshot_volumes(
        self, backup_id: str, broker_ids: list[int], timeout: float
    ) -> list[SnapshotRef]:
        """The node PVCs, with what a restore recreates the cluster from: its Kafka and
        KafkaNodePools as they are, its cluster id, its KafkaTopics, KafkaUsers and
        KafkaMirrorMaker2, and references to its CA secrets (see strimzi_objects)."""
        kafka = self._kafka()
        pools = self.kube.find(r.NODE_POOLS, self.namespace, {CLUSTER: self.cluster})
        cluster = {
            "cluster": self.cluster,
            "cluster_id": str((kafka.get("status") or {}).get("clusterId") or ""),
            "strimzi": {
                "name": self.cluster,
                "kafka": clean_object(kafka),
                "node_pools": [clean_object(p) for p in pools],
                **capture(self.kube, self.namespace, self.cluster, self.k8s.mirrormaker),
            },
        }
        vols = [v for v in self.volumes() if v.broker_id in broker_ids]
        labels = {CLUSTER: self.cluster}
        return self.snapshot(backup_id, vols, self.selector, labels, timeout, cluster)

    def _recover_paused(self, target: str, cluster_id: str, timeout: float) -> None:
        """Strimzi's KRaft volume recovery: once the operator reports the new Kafka paused,
        put the original cluster id into its status, then unpause."""
        wait_for(
            f"kafka {target}/{self.cluster} to have condition ReconciliationPaused=True",
            lambda: r.condition_true(self._kafka(target), "ReconciliationPaused"),
            timeout,
        )
        self.kube.patch(
            r.KAFKAS, target, self.cluster, {"status": {"clusterId": cluster_id}}, sub="status"
        )
        self._unpause(target)

    # --- restore -------------------------------------------------------------------------

    def restore(self, manifest: Manifest, timeout: float) -> dict[str, Any]:
        target = self.restore_target(
            f"the restored cluster keeps the name {self.cluster} (its PVC names depend on it), "
            "so it cannot share the original's namespace"
        )
        timeout = min(timeout, self.k8s.timeout_seconds)
        refs = [s.details for s in manifest.snapshots]
        if not refs or not all(ref.get("strimzi") for ref in refs):
            raise UsageError(f"backup {manifest.backup_id} holds no Strimzi snapshots to restore")
        spec = refs[0]["strimzi"]
        cluster_id = str(refs[0].get("cluster_id") or manifest.mirror.cluster_id)
        pvcs = restore_pvcs(self.kube, target, manifest.backup_id, refs, timeout)
        announce(f"restored pvcs {pvcs}")
        # The CAs before the Kafka: Strimzi keeps CA secrets it finds, and clients trust them.
        warnings = apply_secrets(self.kube, spec, target)
        marks = {CLUSTER_ID_ANNOTATION: cluster_id, RESTORED_FROM: manifest.backup_id}
        nodes_by_pool: dict[str, set[int]] = {}
        for ref in refs:
            nodes_by_pool.setdefault(str(ref["pool"]), set()).add(int(ref["node_id"]))
        for pool in spec["node_pools"]:
            body = json.loads(json.dumps(pool))
            meta = body["metadata"]
            meta["namespace"] = target
            ids = sorted(nodes_by_pool.get(meta["name"], set()))
            meta["annotations"] = {
                **(meta.get("annotations") or {}),
                **marks,
                NEXT_NODE_IDS: json.dumps(ids),
            }
            self.kube.create_or_get(r.NODE_POOLS, target, body)
        kafka = json.loads(json.dumps(spec["kafka"]))
        kafka["metadata"]["namespace"] = target
        kafka["metadata"]["annotations"] = {
            **(kafka["metadata"].get("annotations") or {}),
            **marks,
            PAUSE: "true",
        }
        kafka["metadata"].pop("ownerReferences", None)
        existing = self.kube.get_optional(r.KAFKAS, target, self.cluster)
        if existing is None:
            self.kube.create_or_get(r.KAFKAS, target, kafka)
        elif (existing["metadata"].get("annotations") or {}).get(RESTORED_FROM) != (
            manifest.backup_id
        ):
            raise UsageError(
                f"kafka {target}/{self.cluster} already exists and was not restored from "
                f"backup {manifest.backup_id}: choose another restore namespace"
            )
        if existing is None or (existing["metadata"].get("annotations") or {}).get(PAUSE):
            self._recover_paused(target, cluster_id, timeout)
        ids = sorted({int(ref["node_id"]) for ref in refs})
        self._wait_ready(target, ids, timeout)
        restored = self._kafka(target)
        status_id = (restored.get("status") or {}).get("clusterId")
        if status_id and status_id != cluster_id:
            raise KastenBpError(
                f"kafka {target}/{self.cluster} came up with cluster id {status_id}, "
                f"not the backup's {cluster_id}"
            )
        bootstrap = (
            self.k8s.restored_bootstrap
            or _bootstrap(restored)
            or (f"{self.cluster}-kafka-bootstrap.{target}.svc:9092")
        )
        applied = apply_paused(self.kube, spec, target)
        announce(f"applied paused to {target}: {applied}")
        for warning in warnings:
            log.warning("%s", warning)
        return {
            "paused": applied,
            "warnings": warnings,
            "bootstrap": bootstrap,
            "namespace": target,
            "cluster": self.cluster,
            "cluster_id": cluster_id,
            "pvcs": pvcs,
            "backup_id": manifest.backup_id,
        }


def _bootstrap(kafka: dict[str, Any]) -> str | None:
    for listener in (kafka.get("status") or {}).get("listeners") or []:
        if listener.get("bootstrapServers"):
            return str(listener["bootstrapServers"])
    return None


def pod_node(pod: dict[str, Any], cluster: str) -> int | None:
    """The node id of a pod named `<cluster>-<pool>-<id>`; None for any other pod."""
    name = pod["metadata"]["name"]
    pool = (pod["metadata"].get("labels") or {}).get(POOL)
    prefix = f"{cluster}-{pool}-"
    if pool and name.startswith(prefix) and name[len(prefix) :].isdigit():
        return int(name[len(prefix) :])
    return None
