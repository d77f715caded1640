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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kasten_bp.config import Config, KubernetesConfig
from kasten_bp.errors import KastenBpError, UsageError
from kasten_bp.manifest import Manifest, SnapshotRef
from kasten_bp.platforms import kube as k
from kasten_bp.platforms.base import BrokerInfo, MirrorMakerControl
from kasten_bp.platforms.kube import Access, ExecUnavailable, Kube, Volume
from kasten_bp.platforms.mm2_rest import ConnectRestMirrorMaker
from kasten_bp.waiting import StopWaiting, announce, wait_for

log = logging.getLogger(__name__)

PAUSE = "strimzi.io/pause-reconciliation"
CLUSTER = "strimzi.io/cluster"
KIND = "strimzi.io/kind"
POOL = "strimzi.io/pool-name"
NEXT_NODE_IDS = "strimzi.io/next-node-ids"
CLUSTER_ID_ANNOTATION = "kasten-bp.io/cluster-id"
RESTORED_FROM = "kasten-bp.io/restored-from"
CONNECTOR_FIELDS = {
    "MirrorSourceConnector": "sourceConnector",
    "MirrorCheckpointConnector": "checkpointConnector",
    "MirrorHeartbeatConnector": "heartbeatConnector",
}
_META_DROP = ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation")


def kube_config(config: Config) -> KubernetesConfig:
    if config.kubernetes is None:
        raise UsageError(f"config has platform {config.platform} but no `kubernetes:` section")
    return config.kubernetes


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


def clean_object(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as it can be created again: no status, no server-set metadata."""
    meta = {key: v for key, v in obj.get("metadata", {}).items() if key not in _META_DROP}
    meta.pop("deletionTimestamp", None)
    if meta.get("annotations"):
        meta["annotations"] = {a: v for a, v in meta["annotations"].items() if a != PAUSE}
    meta.pop("deletionGracePeriodSeconds", None)
    return {"metadata": meta, "spec": obj.get("spec") or {}}


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
            return self.kube.get(k.MIRRORMAKER2S, self.namespace, self.name)
        except k.NotFound:
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
        self.kube.patch(k.MIRRORMAKER2S, self.namespace, self.name, ops, content_type=k.JSON_PATCH)
        announce(f"{self.label}: set connectors {states}")

        def reached() -> bool:
            cur = self._get()
            generation = cur["metadata"].get("generation", 0)
            if (cur.get("status") or {}).get("observedGeneration", -1) < generation:
                return False
            status = self._status(cur)
            for name, state in states.items():
                st = status.get(name)
                if st is None:
                    return False
                connector = (st.get("connector") or {}).get("state")
                tasks = st.get("tasks") or []
                if connector == "FAILED" or any(t.get("state") == "FAILED" for t in tasks):
                    raise StopWaiting(f"{self.label}: connector {name} FAILED")
                if connector != state.upper():
                    return False
                if state.upper() == "RUNNING" and any(t.get("state") != "RUNNING" for t in tasks):
                    return False
                if state.upper() == "STOPPED" and tasks:
                    return False
            return True

        wait_for(f"{self.label} status.connectors to show {states}", reached, timeout)

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


class StrimziPlatform:
    name = "strimzi"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.k8s = kube_config(config)
        self.namespace = self.k8s.namespace
        self.cluster = self.k8s.cluster
        self.kube = Kube.from_config(self.k8s)
        rest = ConnectRestMirrorMaker(config.connect.url, config.connect.connectors)
        self.mirrormaker: MirrorMakerControl = (
            StrimziMirrorMaker(self.kube, self.namespace, self.k8s.mirrormaker, rest)
            if self.k8s.mirrormaker
            else rest
        )

    # --- names ----------------------------------------------------------------------

    @property
    def label(self) -> str:
        return f"kafka {self.namespace}/{self.cluster}"

    @property
    def selector(self) -> dict[str, str]:
        return {CLUSTER: self.cluster, KIND: "Kafka"}

    @property
    def podset_record(self) -> str:
        return k.dns_name("kasten-bp", self.cluster, "podsets")

    def _kafka(self, namespace: str | None = None) -> dict[str, Any]:
        ns = namespace or self.namespace
        try:
            return self.kube.get(k.KAFKAS, ns, self.cluster)
        except k.NotFound:
            raise UsageError(f"kafka {ns}/{self.cluster} not found (kubernetes.cluster)") from None

    # --- lock / preflight ---------------------------------------------------------------

    @contextmanager
    def lock(self, owner: str) -> Iterator[None]:
        with k.lease_lock(self.kube, self.namespace, k.dns_name("kasten-bp", self.cluster), owner):
            yield

    def required_access(self) -> list[Access]:
        needs = [
            Access("get", k.LEASES),
            Access("create", k.LEASES),
            Access("update", k.LEASES),
            Access("get", k.KAFKAS),
            Access("patch", k.KAFKAS),
            Access("list", k.NODE_POOLS),
            Access("list", k.PODSETS),
            Access("create", k.PODSETS),
            Access("delete", k.PODSETS),
            Access("list", k.PODS),
            Access("create", k.PODS, "exec"),
            Access("list", k.PVCS),
            Access("get", k.CONFIGMAPS),
            Access("create", k.CONFIGMAPS),
            Access("update", k.CONFIGMAPS),
            Access("delete", k.CONFIGMAPS),
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
        needs += [
            Access("create", k.SNAPSHOTS),
            Access("get", k.SNAPSHOTS),
            Access("list", k.SNAPSHOTS),
            Access("delete", k.SNAPSHOTS),
            Access("get", k.SNAPSHOT_CONTENTS, cluster_scoped=True),
        ]
        if self.k8s.mirrormaker:
            needs += [Access("get", k.MIRRORMAKER2S), Access("patch", k.MIRRORMAKER2S)]
        return needs

    def required_crds(self) -> list[k.Resource]:
        crds = [k.KAFKAS, k.NODE_POOLS, k.PODSETS, k.SNAPSHOTS, k.SNAPSHOT_CONTENTS]
        if self.k8s.group_snapshot_class:
            crds.append(k.GROUP_SNAPSHOTS)
        if self.k8s.mirrormaker:
            crds.append(k.MIRRORMAKER2S)
        return crds

    def preflight(self) -> list[str]:
        problems = self.kube.check(self.required_access(), self.namespace, self.required_crds())
        if problems:
            return problems
        kafka = self.kube.get_optional(k.KAFKAS, self.namespace, self.cluster)
        if kafka is None:
            return [f"{self.label} not found (kubernetes.cluster)"]
        annotations = kafka["metadata"].get("annotations") or {}
        if annotations.get("strimzi.io/node-pools") != "enabled":
            problems.append(f"{self.label} does not use KafkaNodePools (strimzi.io/node-pools)")
        if annotations.get("strimzi.io/kraft") not in ("enabled", None) and "kraft" in annotations:
            problems.append(f"{self.label} is not a KRaft cluster")
        if not self.kube.find(k.NODE_POOLS, self.namespace, {CLUSTER: self.cluster}):
            problems.append(f"{self.label} has no KafkaNodePools")
        if not self.volumes():
            problems.append(f"{self.label} has no PVCs labelled {k.labels_selector(self.selector)}")
        if self.k8s.mirrormaker and not self.kube.get_optional(
            k.MIRRORMAKER2S, self.namespace, self.k8s.mirrormaker
        ):
            problems.append(f"kafkamirrormaker2 {self.namespace}/{self.k8s.mirrormaker} not found")
        if self.k8s.snapshot_class and not self.k8s.group_snapshot_class:
            try:
                if (
                    self.kube.get_optional(k.SNAPSHOT_CLASSES, None, self.k8s.snapshot_class)
                    is None
                ):
                    problems.append(f"volumesnapshotclass {self.k8s.snapshot_class} not found")
            except UsageError:
                pass  # may not read classes; creating the snapshot will say so
        return problems

    # --- brokers -------------------------------------------------------------------------

    def mirror_cluster_id(self) -> str:
        return str((self._kafka().get("status") or {}).get("clusterId") or "")

    def _pods(self) -> dict[int, dict[str, Any]]:
        out = {}
        for pod in self.kube.find(k.PODS, self.namespace, self.selector):
            labels = pod["metadata"].get("labels") or {}
            pool = labels.get(POOL)
            name = pod["metadata"]["name"]
            prefix = f"{self.cluster}-{pool}-"
            if pool and name.startswith(prefix) and name[len(prefix) :].isdigit():
                out[int(name[len(prefix) :])] = pod
        return out

    def volumes(self) -> list[Volume]:
        vols = []
        for pvc in self.kube.find(k.PVCS, self.namespace, self.selector):
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
                "pvc_template": k.pvc_template(pvc, (CLUSTER, KIND, POOL, "strimzi.io/name")),
            }
            vols.append(Volume(pvc, node, details))
        return sorted(vols, key=lambda v: (v.broker_id, v.name))

    def brokers(self) -> list[BrokerInfo]:
        pods = self._pods()
        volumes: dict[int, list[str]] = {}
        for vol in self.volumes():
            volumes.setdefault(vol.broker_id, []).append(vol.name)
        ids = sorted(set(pods) | set(volumes))
        return [BrokerInfo(i, i in pods and _pod_ready(pods[i]), volumes.get(i, [])) for i in ids]

    def _pause(self, namespace: str, timeout: float) -> None:
        label = f"kafka {namespace}/{self.cluster}"
        self.kube.set_annotation(k.KAFKAS, namespace, self.cluster, PAUSE, "true")
        announce(f"{label}: reconciliation paused (annotation {PAUSE}=true)")
        wait_for(
            f"{label} to have condition ReconciliationPaused=True",
            lambda: k.condition_true(self._kafka(namespace), "ReconciliationPaused"),
            timeout,
        )

    def _unpause(self, namespace: str) -> None:
        kafka = self._kafka(namespace)
        if (kafka["metadata"].get("annotations") or {}).get(PAUSE) is not None:
            self.kube.set_annotation(k.KAFKAS, namespace, self.cluster, PAUSE, None)
            announce(f"kafka {namespace}/{self.cluster}: reconciliation resumed")

    def stop_brokers(self, broker_ids: list[int], timeout: float) -> None:
        self._pause(self.namespace, timeout)
        podsets = self.kube.find(k.PODSETS, self.namespace, self.selector)
        self._record_podsets(podsets)
        self._flush(broker_ids, timeout)
        for ps in podsets:
            name = ps["metadata"]["name"]
            if self.kube.delete(k.PODSETS, self.namespace, name, propagation="Foreground"):
                announce(f"deleted strimzipodset {self.namespace}/{name} (foreground)")

        def gone() -> bool:
            left = sorted(
                f"pod {self.namespace}/{p['metadata']['name']}" for p in self._pods().values()
            )
            sets = self.kube.find(k.PODSETS, self.namespace, self.selector)
            if left or sets:
                raise _NotYet(
                    ", ".join(left + [f"strimzipodset {s['metadata']['name']}" for s in sets])
                )
            return True

        wait_for(f"the pods of {self.label} to be gone", gone, timeout)

    def _record_podsets(self, podsets: list[dict[str, Any]]) -> None:
        """Keep the StrimziPodSets in a ConfigMap, so they can be recreated even if the
        operator stays paused or the run crashes (never overwrite an earlier record)."""
        existing = self.kube.get_optional(k.CONFIGMAPS, self.namespace, self.podset_record)
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
            self.kube.create(k.CONFIGMAPS, self.namespace, body)
        else:
            body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            self.kube.replace(
                k.CONFIGMAPS,
                self.namespace,
                self.podset_record,
                {"apiVersion": "v1", "kind": "ConfigMap", **body},
            )

    def _flush(self, broker_ids: list[int], timeout: float) -> None:
        """`sync` in each broker container. Only when the API server cannot open an exec
        stream at all (no kubelet behind it) is this skipped, with a warning: the brokers'
        clean shutdown fsyncs their logs and unmounting the volume flushes the rest."""
        for node, pod in sorted(self._pods().items()):
            if node not in broker_ids:
                continue
            name = pod["metadata"]["name"]
            try:
                code, out = self.kube.exec(
                    self.namespace, name, "kafka", ["sync"], min(timeout, 60)
                )
            except ExecUnavailable as exc:
                message = f"{exc}; skipped `sync` (clean shutdown and unmount flush the volume)"
                log.warning(message)
                announce(f"warning: {message}")
                continue
            if code not in (0, None):
                raise KastenBpError(
                    f"pod {self.namespace}/{name}: `sync` exited {code}: {out.strip()}"
                )

    def start_brokers(self, broker_ids: list[int], timeout: float) -> None:
        record = self.kube.get_optional(k.CONFIGMAPS, self.namespace, self.podset_record)
        for name, text in sorted(((record or {}).get("data") or {}).items()):
            if self.kube.get_optional(k.PODSETS, self.namespace, name) is None:
                self.kube.create_or_get(k.PODSETS, self.namespace, json.loads(text))
                announce(f"recreated strimzipodset {self.namespace}/{name} from the record")
        self._unpause(self.namespace)
        self._wait_ready(self.namespace, broker_ids, timeout)
        expected = len(self._broker_role_ids())
        if expected:
            from kasten_bp.kafka import admin

            wait_for(
                f"every partition of the mirror {self.config.mirror.bootstrap} to have a leader "
                f"and a full ISR ({expected} brokers)",
                lambda: admin.all_partitions_healthy(self.config.mirror.bootstrap, expected),
                timeout,
            )
        if record is not None:
            self.kube.delete(k.CONFIGMAPS, self.namespace, self.podset_record)

    def _broker_role_ids(self) -> list[int]:
        ids: list[int] = []
        for pool in self.kube.find(k.NODE_POOLS, self.namespace, {CLUSTER: self.cluster}):
            if "broker" in ((pool.get("spec") or {}).get("roles") or ["broker"]):
                ids += list((pool.get("status") or {}).get("nodeIds") or [])
        return ids

    def _wait_ready(self, namespace: str, broker_ids: list[int], timeout: float) -> None:
        label = f"kafka {namespace}/{self.cluster}"

        def ready() -> bool:
            kafka = self._kafka(namespace)
            if k.condition_true(kafka, "ReconciliationPaused"):
                raise _NotYet(f"{label} still reports ReconciliationPaused")
            if not k.condition_true(kafka, "Ready"):
                cond = k.condition(kafka, "NotReady") or k.condition(kafka, "Ready") or {}
                raise _NotYet(f"{label} not Ready {cond.get('message') or ''}".strip())
            pods = {
                int(p["metadata"]["name"].rsplit("-", 1)[1]): p
                for p in self.kube.find(k.PODS, namespace, self.selector)
                if p["metadata"]["name"].rsplit("-", 1)[1].isdigit()
            }
            missing = [i for i in broker_ids if i not in pods or not _pod_ready(pods[i])]
            if missing:
                raise _NotYet(f"pods of nodes {missing} not Ready")
            return True

        wait_for(f"{label} to be Ready with its pods", ready, timeout)

    # --- snapshots -----------------------------------------------------------------------

    def snapshot_volumes(
        self, backup_id: str, broker_ids: list[int], timeout: float
    ) -> list[SnapshotRef]:
        kafka = self._kafka()
        cluster_id = str((kafka.get("status") or {}).get("clusterId") or "")
        timeout = min(timeout, self.k8s.timeout_seconds)
        vols = [v for v in self.volumes() if v.broker_id in broker_ids]
        if not vols:
            raise KastenBpError(f"{self.label}: no PVCs of nodes {broker_ids} to snapshot")
        labels = {CLUSTER: self.cluster}
        if self.k8s.group_snapshot_class:
            details = k.group_snapshot(
                self.kube,
                self.namespace,
                vols,
                self.selector,
                backup_id,
                self.k8s.group_snapshot_class,
                timeout,
                labels,
            )
        else:
            details = k.snapshot_volumes(
                self.kube, self.namespace, vols, backup_id, self.k8s.snapshot_class, timeout, labels
            )
        cluster_spec = {
            "name": self.cluster,
            "kafka": clean_object(kafka),
            "node_pools": [
                clean_object(p)
                for p in self.kube.find(k.NODE_POOLS, self.namespace, {CLUSTER: self.cluster})
            ],
        }
        refs = []
        for vol, d in zip(vols, details, strict=True):
            d.update({"cluster": self.cluster, "cluster_id": cluster_id, "strimzi": cluster_spec})
            refs.append(
                SnapshotRef(
                    broker_id=vol.broker_id,
                    volume=f"{self.namespace}/{vol.name}",
                    location=f"volumesnapshot/{self.namespace}/{d['snapshot']}",
                    size_bytes=int(d.get("restore_bytes") or 0),
                    details=d,
                )
            )
        return refs

    def delete_snapshots(self, backup_id: str) -> None:
        for item in k.delete_backup_snapshots(self.kube, self.namespace, backup_id):
            announce(f"deleted {item}")

    def _recover_paused(self, target: str, cluster_id: str, timeout: float) -> None:
        """Strimzi's KRaft volume recovery: once the operator reports the new Kafka paused,
        put the original cluster id into its status, then unpause."""
        wait_for(
            f"kafka {target}/{self.cluster} to have condition ReconciliationPaused=True",
            lambda: k.condition_true(self._kafka(target), "ReconciliationPaused"),
            timeout,
        )
        self.kube.patch(
            k.KAFKAS, target, self.cluster, {"status": {"clusterId": cluster_id}}, sub="status"
        )
        self._unpause(target)

    # --- restore -------------------------------------------------------------------------

    def restore(self, manifest: Manifest, timeout: float) -> dict[str, Any]:
        target = self.k8s.restore_namespace
        if not target or target == self.namespace:
            raise UsageError(
                "set kubernetes.restore_namespace to a namespace other than "
                f"{self.namespace}: the restored cluster keeps the name {self.cluster} (its PVC "
                "names depend on it), so it cannot share the original's namespace"
            )
        timeout = min(timeout, self.k8s.timeout_seconds)
        refs = [r.details for r in manifest.snapshots]
        if not refs or not all(r.get("strimzi") for r in refs):
            raise UsageError(f"backup {manifest.backup_id} holds no Strimzi snapshots to restore")
        spec = refs[0]["strimzi"]
        cluster_id = str(refs[0].get("cluster_id") or manifest.mirror.cluster_id)
        pvcs = k.restore_pvcs(self.kube, target, manifest.backup_id, refs, timeout)
        announce(f"restored pvcs {pvcs}")
        marks = {CLUSTER_ID_ANNOTATION: cluster_id, RESTORED_FROM: manifest.backup_id}
        nodes_by_pool: dict[str, set[int]] = {}
        for r in refs:
            nodes_by_pool.setdefault(str(r["pool"]), set()).add(int(r["node_id"]))
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
            self.kube.create_or_get(k.NODE_POOLS, target, body)
        kafka = json.loads(json.dumps(spec["kafka"]))
        kafka["metadata"]["namespace"] = target
        kafka["metadata"]["annotations"] = {
            **(kafka["metadata"].get("annotations") or {}),
            **marks,
            PAUSE: "true",
        }
        kafka["metadata"].pop("ownerReferences", None)
        existing = self.kube.get_optional(k.KAFKAS, target, self.cluster)
        if existing is None:
            self.kube.create_or_get(k.KAFKAS, target, kafka)
        elif (existing["metadata"].get("annotations") or {}).get(RESTORED_FROM) != (
            manifest.backup_id
        ):
            raise UsageError(
                f"kafka {target}/{self.cluster} already exists and was not restored from "
                f"backup {manifest.backup_id}: choose another restore namespace"
            )
        if existing is None or (existing["metadata"].get("annotations") or {}).get(PAUSE):
            self._recover_paused(target, cluster_id, timeout)
        ids = sorted({int(r["node_id"]) for r in refs})
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
        return {
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


def _pod_ready(pod: dict[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    return k.condition_true(pod, "Ready")


class _NotYet(Exception):
    """A probe's reason for "not yet", kept so a timeout names what was still missing."""
