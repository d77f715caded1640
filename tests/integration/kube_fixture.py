"""Fixtures for the Kubernetes tests: the REAL kube-apiserver, etcd, controller-manager,
snapshot controllers, CSI sidecars and hostpath CSI driver of scripts/kube-test-env (one set
per session), a fresh namespace per test, and the simulators of tests/kube/simulator.py for
what cannot run here (kubelet, Strimzi operator).

Load with `-p tests.integration.kube_fixture` or from `pytest_plugins`.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kasten_bp.config import (
    BackupConfig,
    Config,
    ConnectConfig,
    KafkaEndpoint,
    KubernetesConfig,
)
from kasten_bp.platforms.kube import resources as k
from kasten_bp.platforms.kube.api import Kube
from kasten_bp.waiting import wait_for
from tests.kube import csi_hostpath
from tests.kube.simulator import (
    KubeletSimulator,
    LabBinding,
    StrimziOperatorSimulator,
    VolumeBrokers,
)

from .log_segments import log_end_offset, node_properties

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT_CLASS = "kasten-bp-hostpath-snapclass"
GROUP_CLASS = "kasten-bp-hostpath-groupclass"
STORAGE_CLASS = "kasten-bp-hostpath"
DRIVER = "hostpath.csi.kasten-bp.test"
STORAGE_CLASSES = k.Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", False)


@dataclass
class KubeEnv:
    dir: Path
    kubeconfig: str
    limited_kubeconfig: str

    @property
    def csi_root(self) -> Path:
        """Where the hostpath CSI driver keeps volumes and snapshots (and reads faults)."""
        return self.dir / "csi"

    def kube(self, limited: bool = False) -> Kube:
        path = self.limited_kubeconfig if limited else self.kubeconfig
        return Kube.from_config(
            KubernetesConfig(kubeconfig=path, namespace="default", cluster="unused")
        )


@pytest.fixture(scope="session")
def kube_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeEnv]:
    workdir = Path(os.environ.get("KASTEN_BP_TEST_KUBE") or tmp_path_factory.mktemp("kube"))
    script = str(ROOT / "scripts" / "kube-test-env")
    result = subprocess.run(
        [script, "up", str(workdir)], capture_output=True, text=True, timeout=1800
    )
    if result.returncode != 0:
        raise RuntimeError(f"kube-test-env up failed: {result.stderr[-2000:]}")
    kubeconfig = result.stdout.strip().splitlines()[-1]
    env = KubeEnv(workdir, kubeconfig, str(workdir / "kubeconfig-limited"))
    admin = env.kube()
    admin.create_or_get(
        STORAGE_CLASSES,
        None,
        {
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": DRIVER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        },
    )
    admin.create_or_get(
        k.SNAPSHOT_CLASSES,
        None,
        {"metadata": {"name": SNAPSHOT_CLASS}, "driver": DRIVER, "deletionPolicy": "Delete"},
    )
    admin.create_or_get(
        k.GROUP_SNAPSHOT_CLASSES,
        None,
        {"metadata": {"name": GROUP_CLASS}, "driver": DRIVER, "deletionPolicy": "Delete"},
    )
    csi_hostpath.clear_faults(env.csi_root)
    try:
        yield env
    finally:
        csi_hostpath.clear_faults(env.csi_root)
        if not os.environ.get("KASTEN_BP_KEEP_KUBE"):
            subprocess.run([script, "down", str(workdir)], capture_output=True, timeout=120)


@pytest.fixture
def kube(kube_env: KubeEnv) -> Iterator[Kube]:
    client = kube_env.kube()
    yield client
    client.close()


def new_namespace(kube: Kube, prefix: str = "kbp") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kube.create(k.NAMESPACES, None, {"metadata": {"name": name}})
    return name


@pytest.fixture
def namespace(kube: Kube) -> str:
    """A fresh namespace per test (namespaces never finish deleting here: no controller)."""
    return new_namespace(kube)


@dataclass
class Sims:
    kubelet: KubeletSimulator
    operator: StrimziOperatorSimulator

    def stop(self) -> None:
        for sim in (self.kubelet, self.operator):
            sim.stop()


def start_simulators(
    kube: Kube,
    namespaces: list[str],
    lab: LabBinding | None = None,
    connect_url: str | None = None,
    bootstrap: str | None = None,
    volumes: VolumeBrokers | None = None,
) -> Sims:
    def listener(ns: str, name: str) -> str:
        default = f"{name}-kafka-bootstrap.{ns}.svc:9092"
        if volumes is not None and ns in volumes.namespaces:
            return volumes.bootstrap(ns, f"{name}-") or default
        return bootstrap or default

    sims = Sims(
        KubeletSimulator(kube, namespaces, lab, volumes),
        StrimziOperatorSimulator(kube, namespaces, connect_url, listener),
    )
    for sim in (sims.kubelet, sims.operator):
        sim.start()
    return sims


def bind_volumes(kube: Kube, ns: str, claims: dict[str, str], size: str) -> None:
    """Pre-provisioned PVs, each bound ahead to the PVC that will claim it (`claims`: PVC
    name -> directory). Tests point them at the lab's broker log dirs, so a pod standing
    for a lab broker has that broker's data on its volume, as a real pod would."""
    for pvc, directory in claims.items():
        kube.create(
            k.PVS,
            None,
            {
                "metadata": {"name": f"lab-{ns}-{pvc}"},
                "spec": {
                    "capacity": {"storage": size},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": STORAGE_CLASS,
                    "csi": {"driver": DRIVER, "volumeHandle": directory},
                    "claimRef": {"namespace": ns, "name": pvc},
                },
            },
        )


def volume_handle(kube: Kube, ns: str, pvc: str) -> str:
    """The CSI volume handle (a directory, for the hostpath driver) behind a bound PVC."""
    claim: dict[str, Any] = {}

    def bound() -> bool:
        claim.update(kube.get(k.PVCS, ns, pvc))
        return bool((claim.get("spec") or {}).get("volumeName"))

    wait_for(f"pvc {ns}/{pvc} to be bound", bound, 60)
    pv = kube.get(k.PVS, None, claim["spec"]["volumeName"])
    return str(pv["spec"]["csi"]["volumeHandle"])


def assert_snapshot_holds_the_cut(
    kube: Kube,
    snap: dict[str, Any],
    manifest: dict[str, Any],
    cluster_id: str,
    topic: str,
    node_id: int | None = None,
) -> None:
    """The real controllers' snapshot is the broker's log dir as it was at the cut: its
    node, its cluster, and every partition of `topic` it holds ending where the manifest
    says (MM2 was writing again by the time this runs)."""
    name = snap["details"]["boundVolumeSnapshotContentName"]
    content = kube.get(k.SNAPSHOT_CONTENTS, None, name)
    held = Path(content["status"]["snapshotHandle"])
    want_node = snap["broker_id"] if node_id is None else node_id
    assert node_properties(held)["node.id"] == str(want_node)
    assert node_properties(held)["cluster.id"] == cluster_id
    heads = [p for p in manifest["partitions"] if p["primary_topic"] == topic]
    ends = {p["partition"]: p["end_offset"] for p in heads}
    assert ends and sum(ends.values()) > 0
    mirrored = heads[0]["topic"]
    replicas = {int(d.name.rsplit("-", 1)[1]): d for d in held.glob(f"{mirrored}-*")}
    assert replicas, f"snapshot {held} holds no partition of {mirrored}"
    assert {n: log_end_offset(d) for n, d in replicas.items()} == {n: ends[n] for n in replicas}
    assert snap["size_bytes"] == int(content["status"]["restoreSize"]) > 0


def wait_all_deleted(kube: Kube, resource: k.Resource, ns: str) -> None:
    """Every `resource` in `ns` deleted and gone: the snapshot controllers hold a deleted
    snapshot with their finalizers until the driver has deleted what it holds."""
    left: list[str] = []

    def gone() -> bool:
        found = kube.find(resource, ns)
        left[:] = [o["metadata"]["name"] for o in found]
        assert all(o["metadata"].get("deletionTimestamp") for o in found), left
        return not found

    wait_for(f"{resource.plural} in {ns} to be deleted (left: {left})", gone, 60)


@contextmanager
def csi_faults(env: KubeEnv, **faults: Any) -> Iterator[None]:
    """Faults of the hostpath CSI driver for the length of a block."""
    csi_hostpath.set_faults(env.csi_root, **faults)
    try:
        yield
    finally:
        csi_hostpath.clear_faults(env.csi_root)


# --- cluster fixtures written as Strimzi / a Helm chart would ------------------------------


def create_strimzi_cluster(
    kube: Kube,
    ns: str,
    name: str = "mirror",
    node_ids: tuple[int, ...] = (1, 2, 3),
    jbod: int = 0,
    mirrormaker: str | None = "mm2",
) -> None:
    """Kafka (KRaft, node pools) with one dual-role pool, and a KafkaMirrorMaker2."""
    kube.create(
        k.KAFKAS,
        ns,
        {
            "metadata": {
                "name": name,
                "annotations": {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"},
            },
            "spec": {
                "kafka": {
                    "version": "4.1.0",
                    "listeners": [
                        {"name": "plain", "port": 9092, "type": "internal", "tls": False}
                    ],
                },
                "entityOperator": {},
            },
        },
    )
    storage: dict[str, Any] = (
        {
            "type": "jbod",
            "volumes": [
                {"id": i, "type": "persistent-claim", "size": "2Gi", "deleteClaim": False}
                for i in range(jbod)
            ],
        }
        if jbod
        else {"type": "persistent-claim", "size": "2Gi", "deleteClaim": False}
    )
    kube.create(
        k.NODE_POOLS,
        ns,
        {
            "metadata": {
                "name": "dual",
                "labels": {"strimzi.io/cluster": name},
                "annotations": {"strimzi.io/next-node-ids": json.dumps(list(node_ids))},
            },
            "spec": {
                "replicas": len(node_ids),
                "roles": ["controller", "broker"],
                "storage": storage,
            },
        },
    )
    if mirrormaker:
        kube.create(
            k.MIRRORMAKER2S,
            ns,
            {
                "metadata": {"name": mirrormaker},
                "spec": {
                    "version": "4.1.0",
                    "replicas": 1,
                    "connectCluster": "mirror",
                    "clusters": [
                        {"alias": "primary", "bootstrapServers": "primary:9092"},
                        {"alias": "mirror", "bootstrapServers": f"{name}-kafka-bootstrap:9092"},
                    ],
                    "mirrors": [
                        {
                            "sourceCluster": "primary",
                            "targetCluster": "mirror",
                            "sourceConnector": {"tasksMax": 1, "state": "running"},
                            "checkpointConnector": {"tasksMax": 1},
                            "heartbeatConnector": {},
                        }
                    ],
                },
            },
        )


def wait_strimzi_ready(kube: Kube, ns: str, name: str = "mirror", timeout: float = 60) -> None:
    def ready() -> bool:
        kafka = kube.get(k.KAFKAS, ns, name)
        pods = kube.find(k.PODS, ns, {"strimzi.io/cluster": name})
        return (
            k.condition_true(kafka, "Ready")
            and bool(pods)
            and all(k.condition_true(p, "Ready") for p in pods)
        )

    wait_for(f"kafka {ns}/{name} Ready in the simulator", ready, timeout)


def create_statefulset(
    kube: Kube,
    ns: str,
    name: str,
    replicas: int,
    kind: k.Resource = k.STATEFULSETS,
    claims: bool = True,
) -> None:
    labels = {"app.kubernetes.io/name": name}
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "main", "image": "example/kafka:sim"}]},
        },
    }
    if kind is k.STATEFULSETS:
        spec["serviceName"] = f"{name}-headless"
        # As Kafka charts do: brokers start and stop together (one by one, the last ones
        # would wait for a KRaft quorum that is already gone).
        spec["podManagementPolicy"] = "Parallel"
        if claims:
            spec["volumeClaimTemplates"] = [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "3Gi"}},
                    },
                }
            ]
    kube.create(kind, ns, {"metadata": {"name": name, "labels": labels}, "spec": spec})


def make_config(
    env: KubeEnv,
    lab_config: Config,
    catalog: Path,
    platform: str,
    ns: str,
    cluster: str,
    limited: bool = False,
    **kube_fields: Any,
) -> Config:
    return Config(
        platform=platform,  # type: ignore[arg-type]
        primary=KafkaEndpoint(bootstrap=lab_config.primary.bootstrap),
        mirror=KafkaEndpoint(bootstrap=lab_config.mirror.bootstrap),
        connect=ConnectConfig(url=lab_config.connect.url, connectors=lab_config.connect.connectors),
        replication=lab_config.replication,
        catalog=str(catalog),
        backup=BackupConfig.model_validate(
            {
                "catch_up_timeout_seconds": 60,
                "broker_stop_timeout_seconds": kube_fields.pop("stop_timeout", 90),
                "broker_start_timeout_seconds": kube_fields.pop("start_timeout", 180),
                "replication_confirm_timeout_seconds": 90,
            }
        ),
        kubernetes=KubernetesConfig(
            kubeconfig=env.limited_kubeconfig if limited else env.kubeconfig,
            namespace=ns,
            cluster=cluster,
            **kube_fields,
        ),
    )


@pytest.fixture
def sims(kube: Kube, namespace: str, lab: Any) -> Iterator[Sims]:
    """Simulators for this test's namespace; MM2 connectors are the lab's real ones."""
    s = start_simulators(kube, [namespace], connect_url=lab.config.connect.url)
    yield s
    s.stop()
