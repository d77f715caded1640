"""What no real component here can do, played for tests against the REAL kube-apiserver and
controllers of scripts/kube-test-env. Never imported by the product.

Real there: kube-apiserver, etcd, kube-controller-manager (StatefulSet, Deployment and
ReplicaSet controllers, PV binder, garbage collector), snapshot-controller, csi-snapshotter,
csi-provisioner, and a hostpath CSI driver (tests/kube/csi_hostpath.py) whose volumes and
snapshots hold bytes.

- `KubeletSimulator`: the kubelet (nothing here runs containers): holds every pod with a
  finalizer until "its container" has stopped, marks pods Ready; and the Strimzi
  operator's StrimziPodSet controller, which creates the pods of a StrimziPodSet.
  Optionally ties pods to REAL Kafka processes: the lab's brokers (`LabBinding`) or brokers
  started on the pods' volumes (`VolumeBrokers`); a pod's deletion stops its broker, its
  creation starts it, and it turns Ready only when the broker listens.
- `StrimziOperatorSimulator`: the Strimzi cluster operator's reconcile: ReconciliationPaused
  while annotated; otherwise node PVCs and one StrimziPodSet per KafkaNodePool, the Ready
  condition, and KafkaMirrorMaker2 connector states applied to the lab's REAL Connect worker
  through its REST API, with status.connectors read back from it.

Failure modes are plain attributes a test flips: `KubeletSimulator.stuck`;
`StrimziOperatorSimulator.never_ready`, `.ignore_pause`. Snapshot faults are the CSI
driver's (`tests.kube.csi_hostpath.set_faults`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kasten_bp.connect import PAUSED, RUNNING, STOPPED, ConnectClient
from kasten_bp.lab import kraft
from kasten_bp.lab.kraft import BrokerSpec, ClusterSpec
from kasten_bp.lab.ports import free_ports, is_listening
from kasten_bp.platforms.kube import resources as k
from kasten_bp.platforms.kube.api import Conflict, Kube, NotFound
from tests.integration.log_segments import node_properties

log = logging.getLogger("kube-simulator")

FINALIZER = "kasten-bp.test/simulated-kubelet"
PAUSE = "strimzi.io/pause-reconciliation"
DECLARABLE_STATES = frozenset({RUNNING, PAUSED, STOPPED})


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


@dataclass
class VolumeBrokers:
    """Clusters whose brokers run on their pods' volumes: in `namespaces`, the pods of a
    StrimziPodSet or StatefulSet become REAL Kafka brokers (node id and cluster id from the
    volume's meta.properties) whose log dir is the directory of the PVC bound to the pod
    (`data-<pod>`, the hostpath CSI driver's volume handle), on fresh ports. How a restored
    cluster comes up. One volume per broker (no JBOD)."""

    namespaces: list[str]
    workdir: Path
    # Called with (namespace, pod, volume directory) before the pod's broker first starts:
    # how a test damages a restored volume.
    prepare: Callable[[str, str, Path], None] | None = None
    clusters: dict[tuple[str, str], ClusterSpec] = field(default_factory=dict)

    def stop(self, ns: str) -> None:
        """Stop the brokers started in `ns` (a test done with that restored cluster: fewer
        JVMs for the next one on a loaded machine)."""
        for (cluster_ns, _), cluster in self.clusters.items():
            if cluster_ns == ns:
                kraft.stop_brokers([b for b in cluster.brokers if b.handle.alive()])

    def bootstrap(self, ns: str, owner_prefix: str) -> str | None:
        """Bootstrap of the cluster started for the owner (StrimziPodSet `<kafka>-<pool>`
        or StatefulSet) whose name starts with `owner_prefix`."""
        for (cluster_ns, owner), cluster in self.clusters.items():
            if cluster_ns == ns and owner.startswith(owner_prefix):
                return cluster.bootstrap
        return None


class KubeletSimulator(_Loop):
    name = "kubelet-simulator"

    def __init__(
        self,
        kube: Kube,
        namespaces: list[str],
        lab: LabBinding | None = None,
        volumes: VolumeBrokers | None = None,
    ) -> None:
        super().__init__(kube, namespaces)
        self.lab = lab
        self.volumes = volumes
        # Failure mode: pod name -> time.monotonic() until which its deletion hangs
        # (float("inf"): never completes).
        self.stuck: dict[str, float] = {}
        self.created: list[str] = []
        self.deleted: list[str] = []

    def _bound(self, ns: str, name: str) -> BrokerSpec | None:
        found = self._bound_in(ns, name)
        return found[1] if found else None

    def _bound_in(self, ns: str, name: str) -> tuple[ClusterSpec, BrokerSpec] | None:
        """The REAL broker a pod stands for, with its cluster."""
        if self.lab is not None and self.lab.namespace == ns and name in self.lab.pods:
            return self.lab.cluster, self.lab.pods[name]
        for (cluster_ns, _), cluster in (self.volumes.clusters if self.volumes else {}).items():
            for broker in cluster.brokers if cluster_ns == ns else []:
                if Path(broker.run_dir).name == name:
                    return cluster, broker
        return None

    def stop(self) -> None:
        super().stop()
        for cluster in self.volumes.clusters.values() if self.volumes else []:
            kraft.stop_brokers([b for b in cluster.brokers if b.handle.alive()])

    def _launch_from_volumes(self, owner: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        """Once every pod of a StrimziPodSet or StatefulSet exists and its PVC is bound: plan
        the cluster on the volumes (all voters must be known before the first broker
        starts), and start the brokers of the pods there are."""
        meta = owner["metadata"]
        ns = meta["namespace"]
        if self.volumes is None or ns not in self.volumes.namespaces:
            return
        if (ns, meta["name"]) in self.volumes.clusters:
            return
        spec = owner.get("spec") or {}
        names = (
            [m["metadata"]["name"] for m in spec.get("pods") or []]
            if "pods" in spec
            else [f"{meta['name']}-{i}" for i in range(int(spec.get("replicas", 1)))]
        )
        live = {
            p["metadata"]["name"]
            for p in pods
            if p["metadata"]["namespace"] == ns and not p["metadata"].get("deletionTimestamp")
        }
        if not names or not set(names) <= live:
            return
        dirs = {}
        for name in names:
            claim = self.kube.get_optional(k.PVCS, ns, f"data-{name}")
            volume = ((claim or {}).get("spec") or {}).get("volumeName")
            if not volume:
                return
            dirs[name] = self.kube.get(k.PVS, None, volume)["spec"]["csi"]["volumeHandle"]
        if self.volumes.prepare is not None:
            for name, directory in dirs.items():
                self.volumes.prepare(ns, name, Path(directory))
        props = {name: node_properties(Path(d)) for name, d in dirs.items()}
        ports = free_ports(2 * len(names))
        brokers = [
            BrokerSpec(
                id=int(props[name]["node.id"]),
                port=ports[2 * i],
                controller_port=ports[2 * i + 1],
                log_dir=dirs[name],
                run_dir=str(self.volumes.workdir / ns / name),
            )
            for i, name in enumerate(names)
        ]
        cluster_id = props[names[0]]["cluster.id"]
        cluster = ClusterSpec(name=f"{ns}-{meta['name']}", cluster_id=cluster_id, brokers=brokers)
        kraft.write_configs(cluster)
        self.volumes.clusters[(ns, meta["name"])] = cluster
        for broker in brokers:
            kraft.start_broker(cluster, broker)

    def tick(self) -> None:
        pods = self.find(k.PODS)
        by_key = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in pods}
        # StatefulSets, Deployments and garbage collection are the real controller-manager's.
        for podset in self.find(k.PODSETS):
            if not podset["metadata"].get("deletionTimestamp"):
                self._reconcile_podset(podset, pods, by_key)
        for res in (k.PODSETS, k.STATEFULSETS):
            for owner in self.find(res):
                self._launch_from_volumes(owner, pods)
        self._admit(pods)
        self._terminate(pods)
        self._mark_ready(pods)

    def _admit(self, pods: list[dict[str, Any]]) -> None:
        """Pods made by a real controller: hold them until their container has stopped (as
        a kubelet does), and start the lab broker a pod stands for."""
        for pod in pods:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp") or FINALIZER in (meta.get("finalizers") or []):
                continue
            self._start_bound(meta["namespace"], meta["name"])
            with contextlib.suppress(NotFound, Conflict):
                self.kube.patch(
                    k.PODS,
                    meta["namespace"],
                    meta["name"],
                    {"metadata": {"finalizers": [*(meta.get("finalizers") or []), FINALIZER]}},
                )
                self.created.append(f"{meta['namespace']}/{meta['name']}")

    def _start_bound(self, ns: str, name: str) -> None:
        found = self._bound_in(ns, name)
        if found is not None and not found[1].handle.alive():
            kraft.start_broker(*found)

    def _reconcile_podset(
        self,
        podset: dict[str, Any],
        pods: list[dict[str, Any]],
        by_key: dict[tuple[str, str], dict[str, Any]],
    ) -> None:
        """The StrimziPodSet controller (part of the Strimzi cluster operator): one pod per
        manifest in the set, no other pod owned by it."""
        meta = podset["metadata"]
        ns, uid = meta["namespace"], meta["uid"]
        desired = {m["metadata"]["name"]: m for m in (podset.get("spec") or {}).get("pods") or []}
        owner = _owner_ref(podset, k.PODSETS.api_version, "StrimziPodSet")
        for name, manifest in desired.items():
            if (ns, name) not in by_key:
                self._create_pod(ns, name, manifest, owner)
        for pod in pods:
            if _owned_by(pod, uid) and pod["metadata"]["name"] not in desired:
                self._delete_pod(pod)

    def _create_pod(
        self, ns: str, name: str, manifest: dict[str, Any], owner: dict[str, Any]
    ) -> None:
        self._start_bound(ns, name)
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
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            broker = self._bound(ns, name)
            if broker is not None and not (broker.handle.alive() and is_listening(broker.port)):
                continue
            if broker is None and self.volumes is not None and ns in self.volumes.namespaces:
                continue  # its broker has not been started on its volume yet
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
        # As Strimzi: a KafkaMirrorMaker2 is reconciled when it changes (a watch event,
        # its own status updates included) and every `full_reconciliation_seconds`
        # (STRIMZI_FULL_RECONCILIATION_INTERVAL_MS, 2 minutes by default). 0: every tick.
        self.full_reconciliation_seconds = 0.0
        self._mm2_reconciled: dict[tuple[str, str], tuple[str, float]] = {}
        # Connectors Connect reports UNASSIGNED until a time (a rebalance), by name.
        self._rebalancing_until: dict[str, float] = {}
        self.unassigned_seen: list[str] = []

    def rebalance(self, connector: str, seconds: float) -> None:
        """Connect reports `connector` UNASSIGNED to this operator for `seconds`, as while
        the workers rebalance; its real state is what it was."""
        self._rebalancing_until[connector] = time.monotonic() + seconds

    def _due(self, mm2: dict[str, Any]) -> bool:
        meta = mm2["metadata"]
        key = (meta["namespace"], meta["name"])
        last = self._mm2_reconciled.get(key)
        if self.full_reconciliation_seconds <= 0 or last is None:
            return True
        version, at = last
        changed = meta.get("resourceVersion") != version
        return changed or time.monotonic() - at >= self.full_reconciliation_seconds

    def _observed_state(self, client: ConnectClient, name: str) -> dict[str, Any]:
        if time.monotonic() < self._rebalancing_until.get(name, 0.0):
            self.unassigned_seen.append(name)
            return {"connector": {"state": "UNASSIGNED"}, "tasks": []}
        return client.status(name)

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
        if not self._due(mm2):
            return
        meta = mm2["metadata"]
        # Recorded before this reconciliation's own status update, which is a change too.
        self._mm2_reconciled[(meta["namespace"], meta["name"])] = (
            meta.get("resourceVersion", ""),
            time.monotonic(),
        )
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
                    # As Strimzi: it moves a connector only between the states a user
                    # declares. UNASSIGNED (a Connect rebalance, as when the mirror's
                    # brokers come back) or FAILED is left to Connect.
                    actual = self._observed_state(client, name)["connector"]["state"]
                    if actual not in DECLARABLE_STATES:
                        log.info("connector %s is %s: left to Connect", name, actual)
                    elif actual != state:
                        client.restore_state(name, state)
                        self.connector_actions.append((name, state))
                for name in desired:
                    st = self._observed_state(client, name)
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
