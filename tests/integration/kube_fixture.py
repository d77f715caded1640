"""Fixtures for the Kubernetes tests: a REAL kube-apiserver + etcd from scripts/kube-test-env
(one per session), a fresh namespace per test, and the simulators of tests/kube/simulator.py
for what no API server does alone (kubelet, Strimzi operator, CSI snapshotter).

Load with `-p tests.integration.kube_fixture` or from `pytest_plugins`.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
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
from tests.kube.simulator import (
    CsiSnapshotterSimulator,
    KubeletSimulator,
    LabBinding,
    StrimziOperatorSimulator,
)

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT_CLASS = "kasten-bp-sim-snapclass"
GROUP_CLASS = "kasten-bp-sim-groupclass"
DRIVER = "sim.csi.kasten-bp.test"


@dataclass
class KubeEnv:
    dir: Path
    kubeconfig: str
    limited_kubeconfig: str

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
        k.SNAPSHOT_CLASSES,
        None,
        {"metadata": {"name": SNAPSHOT_CLASS}, "driver": DRIVER, "deletionPolicy": "Delete"},
    )
    admin.create_or_get(
        k.GROUP_SNAPSHOT_CLASSES,
        None,
        {"metadata": {"name": GROUP_CLASS}, "driver": DRIVER, "deletionPolicy": "Delete"},
    )
    try:
        yield env
    finally:
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
    csi: CsiSnapshotterSimulator

    def stop(self) -> None:
        for sim in (self.kubelet, self.operator, self.csi):
            sim.stop()


def start_simulators(
    kube: Kube,
    namespaces: list[str],
    lab: LabBinding | None = None,
    connect_url: str | None = None,
    bootstrap: str | None = None,
) -> Sims:
    sims = Sims(
        KubeletSimulator(kube, namespaces, lab),
        StrimziOperatorSimulator(
            kube,
            namespaces,
            connect_url,
            (lambda ns, name: bootstrap) if bootstrap else None,
        ),
        CsiSnapshotterSimulator(kube, namespaces, DRIVER),
    )
    for sim in (sims.kubelet, sims.operator, sims.csi):
        sim.start()
    return sims


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
