"""What no API server does alone, played for tests against the REAL kube-apiserver from
scripts/kube-test-env. Never imported by the product.

- `KubeletSimulator`: the kubelet plus the StatefulSet/Deployment/StrimziPodSet pod
  controllers and the garbage collector: creates Pod objects and marks them Ready, deletes
  them on scale-down or on (foreground) deletion of their owner, creates StatefulSet PVCs.
  Optionally ties pods to REAL lab broker processes: a pod's deletion stops its broker, its
  creation starts it, and it turns Ready only when the broker listens.
- `StrimziOperatorSimulator`: the Strimzi cluster operator's reconcile: ReconciliationPaused
  while annotated; otherwise node PVCs and one StrimziPodSet per KafkaNodePool, the Ready
  condition, and KafkaMirrorMaker2 connector states applied to the lab's REAL Connect worker
  through its REST API, with status.connectors read back from it.
- `CsiSnapshotterSimulator`: the CSI provisioner and snapshotter: binds PVCs to PVs,
  VolumeSnapshotContents with readyToUse and restoreSize, pre-provisioned contents,
  VolumeGroupSnapshots with member snapshots.

Failure modes are plain attributes a test flips: `CsiSnapshotterSimulator.error_for`,
`.never_ready`; `KubeletSimulator.stuck`; `StrimziOperatorSimulator.never_ready`,
`.ignore_pause`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kasten_bp.connect import ConnectClient
from kasten_bp.lab import kraft
from kasten_bp.lab.kraft import BrokerSpec, ClusterSpec
from kasten_bp.lab.ports import is_listening
from kasten_bp.platforms.kube import resources as k
from kasten_bp.platforms.kube.api import Conflict, Kube, NotFound

log = logging.getLogger("kube-simulator")

FINALIZER = "kasten-bp.test/simulated-kubelet"
PAUSE = "strimzi.io/pause-reconciliation"
DRIVER = "sim.csi.kasten-bp.test"
GROUP_MEMBER_LABEL = "groupsnapshot.storage.k8s.io/volumeGroupSnapshotName"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _uid(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["uid"])


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(o.get("uid") == uid for o in obj["metadata"].get("ownerReferences") or [])


def _owner_ref(obj: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": obj["metadata"]["name"],
        "uid": _uid(obj),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _set_condition(
    conditions: list[dict[str, Any]], kind: str, status: str
) -> list[dict[str, Any]]:
    return [c for c in conditions if c.get("type") != kind] + [
        {"type": kind, "status": status, "lastTransitionTime": _now()}
    ]


class _Loop:
    """A background thread calling `tick` every `interval` seconds."""

    name = "simulator"

    def __init__(self, kube: Kube, namespaces: list[str], interval: float = 0.15) -> None:
        self.kube = kube
        self.namespaces = namespaces
        self.interval = interval
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> _Loop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - a simulator keeps going, like a controller
                if len(self.errors) < 200:
                    self.errors.append(repr(exc))
                log.debug("%s: %r", self.name, exc)
            self._stop.wait(self.interval)

    def tick(self) -> None:
        raise NotImplementedError

    def find(
        self, resource: k.Resource, labels: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Objects in the namespaces this simulator looks after."""
        return [o for ns in self.namespaces for o in self.kube.find(resource, ns, labels)]

    def patch_status(
        self, resource: k.Resource, obj: dict[str, Any], status: dict[str, Any]
    ) -> None:
        ns = obj["metadata"].get("namespace")
        self.kube.patch(resource, ns, obj["metadata"]["name"], {"status": status}, sub="status")


# --- kubelet + workload controllers + garbage collector ------------------------------------


@dataclass
class LabBinding:
    """Pods that are REAL lab broker processes: pod name -> broker of `cluster`."""

    namespace: str
    cluster: ClusterSpec
    pods: dict[str, BrokerSpec] = field(default_factory=dict)


class KubeletSimulator(_Loop):
    name = "kubelet-simulator"

    def __init__(self, kube: Kube, namespaces: list[str], lab: LabBinding | None = None) -> None:
        super().__init__(kube, namespaces)
        self.lab = lab
        # Failure mode: pod name -> time.monotonic() until which its deletion hangs
        # (float("inf"): never completes).
        self.stuck: dict[str, float] = {}
        self.created: list[str] = []
        self.deleted: list[str] = []

    def _bound(self, ns: str, name: str) -> BrokerSpec | None:
        if self.lab is None or self.lab.namespace != ns:
            return None
        return self.lab.pods.get(name)

    def tick(self) -> None:
        pods = self.find(k.PODS)
        by_key = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in pods}
        owners: dict[str, dict[str, Any]] = {}
        for res in (k.PODSETS, k.STATEFULSETS, k.DEPLOYMENTS):
            for owner in self.find(res):
                owners[_uid(owner)] = owner
                self._reconcile_owner(res, owner, pods, by_key)
        self._terminate(pods)
        self._mark_ready(pods)
        for pod in pods:  # garbage collection of orphans
            refs = pod["metadata"].get("ownerReferences") or []
            if refs and not any(r.get("uid") in owners for r in refs):
                self._delete_pod(pod)

    # desired pods per owner
    def _reconcile_owner(
        self,
        res: k.Resource,
        owner: dict[str, Any],
        pods: list[dict[str, Any]],
        by_key: dict[tuple[str, str], dict[str, Any]],
    ) -> None:
        meta = owner["metadata"]
        ns, uid = meta["namespace"], meta["uid"]
        mine = [p for p in pods if _owned_by(p, uid)]
        if meta.get("deletionTimestamp"):
            for pod in mine:
                self._delete_pod(pod)
            finalizers = meta.get("finalizers") or []
            if not mine and "foregroundDeletion" in finalizers:
                rest = [f for f in finalizers if f != "foregroundDeletion"]
                self.kube.patch(res, ns, meta["name"], {"metadata": {"finalizers": rest or None}})
            return
        spec = owner.get("spec") or {}
        desired: dict[str, dict[str, Any]] = {}
        if res is k.PODSETS:
            for manifest in spec.get("pods") or []:
                desired[manifest["metadata"]["name"]] = manifest
        else:
            template = spec.get("template") or {}
            for i in range(int(spec.get("replicas", 1))):
                name = f"{meta['name']}-{i}" if res is k.STATEFULSETS else f"{meta['name']}-sim-{i}"
                desired[name] = {
                    "metadata": {
                        "name": name,
                        "labels": (template.get("metadata") or {}).get("labels") or {},
                    },
                    "spec": template.get("spec") or {},
                }
                if res is k.STATEFULSETS:
                    self._ensure_claims(owner, i)
        kind = {"strimzipodsets": "StrimziPodSet", "statefulsets": "StatefulSet"}.get(
            res.plural, "Deployment"
        )
        for name, manifest in desired.items():
            if (ns, name) not in by_key:
                self._create_pod(ns, name, manifest, _owner_ref(owner, res.api_version, kind))
        for pod in mine:
            if pod["metadata"]["name"] not in desired:
                self._delete_pod(pod)
        if res is not k.PODSETS:
            ready = sum(
                1
                for p in mine
                if p["metadata"]["name"] in desired
                and not p["metadata"].get("deletionTimestamp")
                and k.condition_true(p, "Ready")
            )
            status = {
                "replicas": len([p for p in mine if not p["metadata"].get("deletionTimestamp")]),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "observedGeneration": meta.get("generation", 1),
            }
            current = owner.get("status") or {}
            if any(current.get(key) != v for key, v in status.items()):
                self.patch_status(res, owner, status)

    def _ensure_claims(self, sts: dict[str, Any], ordinal: int) -> None:
        ns, name = sts["metadata"]["namespace"], sts["metadata"]["name"]
        for template in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
            claim = f"{template['metadata']['name']}-{name}-{ordinal}"
            if self.kube.get_optional(k.PVCS, ns, claim) is None:
                labels = {
                    **(((sts["spec"].get("selector") or {}).get("matchLabels")) or {}),
                    **((template.get("metadata") or {}).get("labels") or {}),
                }
                self.kube.create(
                    k.PVCS,
                    ns,
                    {"metadata": {"name": claim, "labels": labels}, "spec": template["spec"]},
                )

    def _create_pod(
        self, ns: str, name: str, manifest: dict[str, Any], owner: dict[str, Any]
    ) -> None:
        broker = self._bound(ns, name)
        if broker is not None and self.lab is not None:
            kraft.start_broker(self.lab.cluster, broker)
        spec = dict(manifest.get("spec") or {})
        if not spec.get("containers"):
            spec["containers"] = [{"name": "kafka", "image": "quay.io/strimzi/kafka:sim"}]
        body = {
            "metadata": {
                "name": name,
                "labels": (manifest.get("metadata") or {}).get("labels") or {},
                "ownerReferences": [owner],
                "finalizers": [FINALIZER],
            },
            "spec": spec,
        }
        try:
            self.kube.create(k.PODS, ns, body)
            self.created.append(f"{ns}/{name}")
        except Conflict:
            pass

    def _delete_pod(self, pod: dict[str, Any]) -> None:
        if not pod["metadata"].get("deletionTimestamp"):
            self.kube.delete(k.PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])

    def _terminate(self, pods: list[dict[str, Any]]) -> None:
        """Pods being deleted: stop their processes (together: a KRaft quorum loses its
        majority if stopped one by one), then let them go unless stuck."""
        going = [p for p in pods if p["metadata"].get("deletionTimestamp")]
        now = time.monotonic()
        going = [p for p in going if self.stuck.get(p["metadata"]["name"], 0.0) <= now]
        brokers = [
            b
            for p in going
            if (b := self._bound(p["metadata"]["namespace"], p["metadata"]["name"])) is not None
        ]
        if brokers:
            kraft.stop_brokers([b for b in brokers if b.handle.alive()], timeout=60)
        for pod in going:
            finalizers = [f for f in pod["metadata"].get("finalizers") or [] if f != FINALIZER]
            try:
                self.kube.patch(
                    k.PODS,
                    pod["metadata"]["namespace"],
                    pod["metadata"]["name"],
                    {"metadata": {"finalizers": finalizers or None}},
                )
                self.deleted.append(f"{pod['metadata']['namespace']}/{pod['metadata']['name']}")
            except NotFound:
                pass

    def _mark_ready(self, pods: list[dict[str, Any]]) -> None:
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp") or k.condition_true(pod, "Ready"):
                continue
            broker = self._bound(pod["metadata"]["namespace"], pod["metadata"]["name"])
            if broker is not None and not (broker.handle.alive() and is_listening(broker.port)):
                continue
            conditions = [
                {"type": t, "status": "True", "lastTransitionTime": _now()}
                for t in ("Initialized", "ContainersReady", "Ready", "PodScheduled")
            ]
            self.patch_status(
                k.PODS, pod, {"phase": "Running", "conditions": conditions, "podIP": "127.0.0.1"}
            )


# --- the Strimzi cluster operator ----------------------------------------------------------


class StrimziOperatorSimulator(_Loop):
    name = "strimzi-operator-simulator"

    def __init__(
        self,
        kube: Kube,
        namespaces: list[str],
        connect_url: str | None = None,
        bootstrap: Callable[[str, str], str] | None = None,
    ) -> None:
        super().__init__(kube, namespaces)
        self.connect_url = connect_url
        self.bootstrap = bootstrap or (lambda ns, name: f"{name}-kafka-bootstrap.{ns}.svc:9092")
        # Failure modes.
        self.never_ready = False
        self.ignore_pause = False
        self.connector_actions: list[tuple[str, str]] = []

    def tick(self) -> None:
        for kafka in self.find(k.KAFKAS):
            self._kafka(kafka)
        for mm2 in self.find(k.MIRRORMAKER2S):
            self._mm2(mm2)

    @staticmethod
    def _paused(obj: dict[str, Any]) -> bool:
        return (obj["metadata"].get("annotations") or {}).get(PAUSE) == "true"

    def _kafka(self, kafka: dict[str, Any]) -> None:
        meta = kafka["metadata"]
        ns, name = meta["namespace"], meta["name"]
        status = dict(kafka.get("status") or {})
        if self._paused(kafka):
            if self.ignore_pause or k.condition_true(kafka, "ReconciliationPaused"):
                return
            status["conditions"] = [
                {"type": "ReconciliationPaused", "status": "True", "lastTransitionTime": _now()}
            ]
            self.patch_status(k.KAFKAS, kafka, status)
            return
        pools = self.kube.find(k.NODE_POOLS, ns, {"strimzi.io/cluster": name})
        all_ready = bool(pools)
        for pool in pools:
            ids = self._node_ids(pool)
            self._ensure_pvcs(kafka, pool, ids)
            all_ready &= self._ensure_podset(kafka, pool, ids)
        status.setdefault("clusterId", uuid.uuid4().hex[:22])
        status["listeners"] = [{"name": "plain", "bootstrapServers": self.bootstrap(ns, name)}]
        status["observedGeneration"] = meta.get("generation", 1)
        ready = all_ready and not self.never_ready
        conditions = [
            {
                "type": "Ready" if ready else "NotReady",
                "status": "True",
                "lastTransitionTime": _now(),
            }
        ]
        current = kafka.get("status") or {}
        if [c.get("type") for c in current.get("conditions") or []] != [
            conditions[0]["type"]
        ] or any(
            current.get(x) != status.get(x)
            for x in ("clusterId", "observedGeneration", "listeners")
        ):
            status["conditions"] = conditions
            self.patch_status(k.KAFKAS, kafka, status)

    def _node_ids(self, pool: dict[str, Any]) -> list[int]:
        ids = (pool.get("status") or {}).get("nodeIds")
        if ids:
            return [int(i) for i in ids]
        wanted = (pool["metadata"].get("annotations") or {}).get("strimzi.io/next-node-ids")
        replicas = int((pool.get("spec") or {}).get("replicas", 1))
        ids = json.loads(wanted)[:replicas] if wanted else list(range(replicas))
        self.patch_status(k.NODE_POOLS, pool, {"nodeIds": ids, "replicas": replicas})
        return [int(i) for i in ids]

    def _ensure_pvcs(self, kafka: dict[str, Any], pool: dict[str, Any], ids: list[int]) -> None:
        ns, cluster, pname = (
            kafka["metadata"]["namespace"],
            kafka["metadata"]["name"],
            pool["metadata"]["name"],
        )
        storage = (pool.get("spec") or {}).get("storage") or {
            "type": "persistent-claim",
            "size": "1Gi",
        }
        volumes = (
            storage.get("volumes") if storage.get("type") == "jbod" else [dict(storage, id=None)]
        )
        for node in ids:
            for vol in volumes or []:
                vid = vol.get("id")
                name = (
                    f"data-{cluster}-{pname}-{node}"
                    if vid is None
                    else f"data-{vid}-{cluster}-{pname}-{node}"
                )
                if self.kube.get_optional(k.PVCS, ns, name) is not None:
                    continue
                spec: dict[str, Any] = {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": vol.get("size", "1Gi")}},
                }
                if vol.get("class"):
                    spec["storageClassName"] = vol["class"]
                labels = {
                    "strimzi.io/cluster": cluster,
                    "strimzi.io/kind": "Kafka",
                    "strimzi.io/pool-name": pname,
                    "strimzi.io/name": f"{cluster}-kafka",
                }
                self.kube.create(
                    k.PVCS, ns, {"metadata": {"name": name, "labels": labels}, "spec": spec}
                )

    def _ensure_podset(self, kafka: dict[str, Any], pool: dict[str, Any], ids: list[int]) -> bool:
        """Create the pool's StrimziPodSet if missing; True when all its pods are Ready."""
        ns, cluster, pname = (
            kafka["metadata"]["namespace"],
            kafka["metadata"]["name"],
            pool["metadata"]["name"],
        )
        name = f"{cluster}-{pname}"
        labels = {
            "strimzi.io/cluster": cluster,
            "strimzi.io/kind": "Kafka",
            "strimzi.io/pool-name": pname,
        }
        podset = self.kube.get_optional(k.PODSETS, ns, name)
        if podset is None:
            pods = [
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": f"{name}-{i}",
                        "labels": {**labels, "strimzi.io/name": f"{cluster}-kafka"},
                    },
                    "spec": {
                        "containers": [{"name": "kafka", "image": "quay.io/strimzi/kafka:sim"}]
                    },
                }
                for i in ids
            ]
            body = {
                "metadata": {
                    "name": name,
                    "labels": labels,
                    "ownerReferences": [_owner_ref(kafka, k.KAFKAS.api_version, "Kafka")],
                },
                "spec": {"selector": {"matchLabels": labels}, "pods": pods},
            }
            with contextlib.suppress(Conflict):
                self.kube.create(k.PODSETS, ns, body)
            return False
        if podset["metadata"].get("deletionTimestamp"):
            return False
        for i in ids:
            pod = self.kube.get_optional(k.PODS, ns, f"{name}-{i}")
            if (
                pod is None
                or pod["metadata"].get("deletionTimestamp")
                or not k.condition_true(pod, "Ready")
            ):
                return False
        return True

    # KafkaMirrorMaker2: connector states through the REAL Connect REST API
    def _mm2(self, mm2: dict[str, Any]) -> None:
        if self._paused(mm2):
            if not k.condition_true(mm2, "ReconciliationPaused"):
                self.patch_status(
                    k.MIRRORMAKER2S,
                    mm2,
                    {
                        "conditions": [
                            {
                                "type": "ReconciliationPaused",
                                "status": "True",
                                "lastTransitionTime": _now(),
                            }
                        ]
                    },
                )
            return
        spec = mm2.get("spec") or {}
        target = (spec.get("target") or {}).get("alias") or spec.get("connectCluster")
        desired: dict[str, str] = {}
        for mirror in spec.get("mirrors") or []:
            for cls, fld in (
                ("MirrorSourceConnector", "sourceConnector"),
                ("MirrorCheckpointConnector", "checkpointConnector"),
                ("MirrorHeartbeatConnector", "heartbeatConnector"),
            ):
                if fld in mirror or fld == "sourceConnector":
                    state = str((mirror.get(fld) or {}).get("state") or "running").upper()
                    desired[f"{mirror['sourceCluster']}->{target}.{cls}"] = state
        connectors = []
        if self.connect_url:
            with ConnectClient(self.connect_url) as client:
                for name, state in desired.items():
                    if client.state(name) != state:
                        client.restore_state(name, state)
                        self.connector_actions.append((name, state))
                for name in desired:
                    st = client.status(name)
                    connectors.append(
                        {"name": name, "connector": st["connector"], "tasks": st.get("tasks", [])}
                    )
        else:
            for name, state in desired.items():
                connectors.append({"name": name, "connector": {"state": state}, "tasks": []})
        status = {
            "connectors": connectors,
            "observedGeneration": mm2["metadata"].get("generation", 1),
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": _now()}],
        }
        current = mm2.get("status") or {}
        if (
            current.get("connectors") != connectors
            or current.get("observedGeneration") != status["observedGeneration"]
            or not k.condition_true(mm2, "Ready")
        ):
            self.patch_status(k.MIRRORMAKER2S, mm2, status)


# --- the CSI provisioner and snapshotter ---------------------------------------------------


class CsiSnapshotterSimulator(_Loop):
    name = "csi-snapshotter-simulator"

    def __init__(self, kube: Kube, namespaces: list[str], driver: str = DRIVER) -> None:
        super().__init__(kube, namespaces)
        self.driver = driver
        # Failure modes: snapshots of PVCs whose name contains `error_for` ("" = all) get
        # status.error; with `never_ready` they are bound but never readyToUse.
        self.error_for: str | None = None
        self.error_message = "rpc error: code = Internal desc = simulated snapshot failure"
        self.never_ready = False

    def tick(self) -> None:
        for pvc in self.find(k.PVCS):
            if not (pvc.get("spec") or {}).get("volumeName"):
                self._provision(pvc)
        for vs in self.find(k.SNAPSHOTS):
            if not vs["metadata"].get("deletionTimestamp"):
                self._snapshot(vs)
        for vgs in self.find(k.GROUP_SNAPSHOTS):
            if not (vgs.get("status") or {}).get("readyToUse"):
                self._group(vgs)

    def _provision(self, pvc: dict[str, Any]) -> None:
        meta, spec = pvc["metadata"], pvc.get("spec") or {}
        pv_name = f"pvc-{meta['uid']}"
        if self.kube.get_optional(k.PVS, None, pv_name) is None:
            body = {
                "metadata": {"name": pv_name},
                "spec": {
                    "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                    "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Delete",
                    "storageClassName": spec.get("storageClassName") or "",
                    "csi": {"driver": self.driver, "volumeHandle": f"vol-{meta['uid']}"},
                    "claimRef": {
                        "namespace": meta["namespace"],
                        "name": meta["name"],
                        "uid": meta["uid"],
                    },
                },
            }
            self.kube.create(k.PVS, None, body)
        self.kube.patch(k.PVCS, meta["namespace"], meta["name"], {"spec": {"volumeName": pv_name}})
        self.patch_status(k.PVCS, pvc, {"phase": "Bound"})

    def _volume_handle(self, ns: str, pvc_name: str) -> tuple[str, str]:
        pvc = self.kube.get(k.PVCS, ns, pvc_name)
        size = pvc["spec"]["resources"]["requests"]["storage"]
        return f"vol-{pvc['metadata']['uid']}", str(size)

    def _snapshot(self, vs: dict[str, Any]) -> None:
        meta, spec = vs["metadata"], vs.get("spec") or {}
        status = vs.get("status") or {}
        if status.get("readyToUse") or status.get("error"):
            return
        ns = meta["namespace"]
        source = spec.get("source") or {}
        pvc_name = source.get("persistentVolumeClaimName")
        if pvc_name and self.error_for is not None and self.error_for in pvc_name:
            self.patch_status(
                k.SNAPSHOTS,
                vs,
                {"readyToUse": False, "error": {"message": self.error_message, "time": _now()}},
            )
            return
        if status.get("boundVolumeSnapshotContentName") and self.never_ready:
            return
        if pvc_name:
            handle, size = self._volume_handle(ns, pvc_name)
            content_name = f"snapcontent-{meta['uid']}"
            if self.kube.get_optional(k.SNAPSHOT_CONTENTS, None, content_name) is None:
                self.kube.create(
                    k.SNAPSHOT_CONTENTS,
                    None,
                    {
                        "metadata": {"name": content_name},
                        "spec": {
                            "deletionPolicy": "Delete",
                            "driver": self.driver,
                            "source": {"volumeHandle": handle},
                            "volumeSnapshotClassName": spec.get("volumeSnapshotClassName"),
                            "volumeSnapshotRef": {
                                "kind": "VolumeSnapshot",
                                "name": meta["name"],
                                "namespace": ns,
                                "uid": meta["uid"],
                            },
                        },
                    },
                )
        else:
            content_name = source["volumeSnapshotContentName"]
            content = self.kube.get(k.SNAPSHOT_CONTENTS, None, content_name)
            size = str(
                (content.get("status") or {}).get("restoreSize")
                or self._original_size(content["spec"]["source"].get("snapshotHandle"))
                or "1Gi"
            )
        content = self.kube.get(k.SNAPSHOT_CONTENTS, None, content_name)
        ready = not self.never_ready
        snap_handle = (content["spec"].get("source") or {}).get(
            "snapshotHandle"
        ) or f"snap-{meta['uid']}"
        self.patch_status(
            k.SNAPSHOT_CONTENTS,
            content,
            {
                "snapshotHandle": snap_handle,
                "readyToUse": ready,
                "restoreSize": k.parse_quantity(size),
                "creationTime": time.time_ns(),
            },
        )
        self.patch_status(
            k.SNAPSHOTS,
            vs,
            {
                "boundVolumeSnapshotContentName": content_name,
                "readyToUse": ready,
                "restoreSize": size,
                "creationTime": _now(),
            },
        )

    def _original_size(self, snapshot_handle: str | None) -> str | None:
        for content in self.kube.find(k.SNAPSHOT_CONTENTS, None):
            st = content.get("status") or {}
            if st.get("snapshotHandle") == snapshot_handle and st.get("restoreSize"):
                return str(st["restoreSize"])
        return None

    def _group(self, vgs: dict[str, Any]) -> None:
        """v1beta2 style: member VolumeSnapshots owned by the group, pre-bound to member
        contents that carry only a snapshotHandle; the group content lists
        (volumeHandle, snapshotHandle) pairs."""
        meta, ns = vgs["metadata"], vgs["metadata"]["namespace"]
        selector = (((vgs.get("spec") or {}).get("source") or {}).get("selector") or {}).get(
            "matchLabels"
        ) or {}
        if self.error_for == "":
            self.patch_status(
                k.GROUP_SNAPSHOTS,
                vgs,
                {"readyToUse": False, "error": {"message": self.error_message, "time": _now()}},
            )
            return
        pvcs = self.kube.find(k.PVCS, ns, selector)
        if any(not (p.get("spec") or {}).get("volumeName") for p in pvcs):
            return  # wait for binding
        gcontent = f"groupsnapcontent-{meta['uid']}"
        infos = []
        for pvc in pvcs:
            handle, size = self._volume_handle(ns, pvc["metadata"]["name"])
            digest = hashlib.sha256(f"{meta['uid']}{handle}".encode()).hexdigest()[:12]
            snap_handle = f"groupsnap-{digest}"
            content_name, vs_name = f"snapcontent-{digest}", f"snapshot-{digest}"
            if self.kube.get_optional(k.SNAPSHOT_CONTENTS, None, content_name) is None:
                self.kube.create(
                    k.SNAPSHOT_CONTENTS,
                    None,
                    {
                        "metadata": {"name": content_name},
                        "spec": {
                            "deletionPolicy": "Delete",
                            "driver": self.driver,
                            "source": {"snapshotHandle": snap_handle},
                            "volumeSnapshotRef": {
                                "kind": "VolumeSnapshot",
                                "name": vs_name,
                                "namespace": ns,
                            },
                        },
                    },
                )
            content = self.kube.get(k.SNAPSHOT_CONTENTS, None, content_name)
            self.patch_status(
                k.SNAPSHOT_CONTENTS,
                content,
                {
                    "snapshotHandle": snap_handle,
                    "readyToUse": True,
                    "restoreSize": k.parse_quantity(size),
                    "volumeGroupSnapshotHandle": f"group-{meta['uid']}",
                },
            )
            if self.kube.get_optional(k.SNAPSHOTS, ns, vs_name) is None:
                self.kube.create(
                    k.SNAPSHOTS,
                    ns,
                    {
                        "metadata": {
                            "name": vs_name,
                            "labels": {GROUP_MEMBER_LABEL: meta["name"]},
                            "ownerReferences": [
                                _owner_ref(
                                    vgs, k.GROUP_SNAPSHOTS.api_version, "VolumeGroupSnapshot"
                                )
                            ],
                        },
                        "spec": {"source": {"volumeSnapshotContentName": content_name}},
                    },
                )
            member = self.kube.get(k.SNAPSHOTS, ns, vs_name)
            self.patch_status(
                k.SNAPSHOTS,
                member,
                {
                    "boundVolumeSnapshotContentName": content_name,
                    "readyToUse": True,
                    "restoreSize": size,
                    "volumeGroupSnapshotName": meta["name"],
                },
            )
            infos.append(
                {
                    "volumeHandle": handle,
                    "snapshotHandle": snap_handle,
                    "readyToUse": True,
                    "restoreSize": k.parse_quantity(size),
                }
            )
        if self.kube.get_optional(k.GROUP_SNAPSHOT_CONTENTS, None, gcontent) is None:
            self.kube.create(
                k.GROUP_SNAPSHOT_CONTENTS,
                None,
                {
                    "metadata": {"name": gcontent},
                    "spec": {
                        "deletionPolicy": "Delete",
                        "driver": self.driver,
                        "source": {"volumeHandles": [i["volumeHandle"] for i in infos]},
                        "volumeGroupSnapshotClassName": (vgs.get("spec") or {}).get(
                            "volumeGroupSnapshotClassName"
                        ),
                        "volumeGroupSnapshotRef": {
                            "kind": "VolumeGroupSnapshot",
                            "name": meta["name"],
                            "namespace": ns,
                            "uid": meta["uid"],
                        },
                    },
                },
            )
        gc = self.kube.get(k.GROUP_SNAPSHOT_CONTENTS, None, gcontent)
        self.patch_status(
            k.GROUP_SNAPSHOT_CONTENTS,
            gc,
            {
                "readyToUse": not self.never_ready,
                "volumeGroupSnapshotHandle": f"group-{meta['uid']}",
                "volumeSnapshotInfoList": infos,
            },
        )
        self.patch_status(
            k.GROUP_SNAPSHOTS,
            vgs,
            {
                "boundVolumeGroupSnapshotContentName": gcontent,
                "readyToUse": not self.never_ready,
                "creationTime": _now(),
            },
        )
