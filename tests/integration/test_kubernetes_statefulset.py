"""Platform statefulset against a REAL kube-apiserver (pods played by the kubelet simulator;
the brokers' pods tied to the lab's REAL mirror brokers in the end-to-end test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kasten_bp.backup import Backups
from kasten_bp.connect import ConnectClient
from kasten_bp.lab.load import LoadSpec, run_load
from kasten_bp.manifest import ClusterInfo, Manifest
from kasten_bp.platforms import kube as k
from kasten_bp.platforms.kube import Kube
from kasten_bp.platforms.statefulset import ORIGINAL_REPLICAS, StatefulSetPlatform
from kasten_bp.waiting import wait_for
from kasten_bp.workflow.states import RunState
from tests.kube.simulator import LabBinding

from .helpers import LabHandle, wait_mirrored
from .kube_fixture import (
    SNAPSHOT_CLASS,
    KubeEnv,
    create_statefulset,
    make_config,
    new_namespace,
    start_simulators,
)

pytestmark = [pytest.mark.integration, pytest.mark.kubernetes]


def ready_replicas(kube: Kube, resource: k.Resource, ns: str, name: str, want: int) -> None:
    def ok() -> bool:
        obj = kube.get(resource, ns, name)
        return int((obj.get("status") or {}).get("readyReplicas") or 0) == want

    wait_for(f"{resource.kind} {ns}/{name} to have {want} ready replicas", ok, 60)


def test_statefulset_backup_end_to_end_restores_exact_replicas(
    kube_env: KubeEnv, kube: Kube, namespace: str, lab: LabHandle, topic: str, tmp_path: Path
) -> None:
    assert lab.lab is not None
    mirror = lab.lab.require_state().mirror
    # Broker ordinal i is the lab's mirror broker i+1: scaling to 0 really stops Kafka.
    binding = LabBinding(namespace, mirror, {f"kafka-{b.id - 1}": b for b in mirror.brokers})
    sims = start_simulators(kube, [namespace], lab=binding)
    try:
        create_statefulset(kube, namespace, "kafka", len(mirror.brokers))
        create_statefulset(kube, namespace, "mm2", 2, kind=k.DEPLOYMENTS)
        ready_replicas(kube, k.STATEFULSETS, namespace, "kafka", 3)
        ready_replicas(kube, k.DEPLOYMENTS, namespace, "mm2", 2)
        run_load(lab.primary, LoadSpec(topic=topic, records=200, rate=0, partitions=3))
        wait_mirrored(lab.primary, lab.mirror, topic)
        config = make_config(
            kube_env,
            lab.config,
            tmp_path / "catalog",
            "statefulset",
            namespace,
            "kafka",
            mirrormaker="mm2",
            snapshot_class=SNAPSHOT_CLASS,
            timeout_seconds=30,
        )
        result = Backups(config).backup("consistent")
        assert result["status"] == RunState.COMPLETED, result
        states = result["manifest"] and Backups(config).store.load(result["backup_id"])
        assert states is not None
        plan = states.step("pause_mirrormaker").plan["states"]
        assert plan[f"workload:{namespace}/mm2"] == "2"
        for b in mirror.brokers:
            assert f"{namespace}/kafka-{b.id - 1}" in sims.kubelet.deleted
            assert b.handle.alive()
        assert len([d for d in sims.kubelet.deleted if "/mm2-" in d]) == 2
        sts = kube.get(k.STATEFULSETS, namespace, "kafka")
        assert sts["spec"]["replicas"] == 3
        assert ORIGINAL_REPLICAS not in (sts["metadata"].get("annotations") or {})
        assert kube.get(k.DEPLOYMENTS, namespace, "mm2")["spec"]["replicas"] == 2
        with ConnectClient(lab.config.connect.url) as client:
            assert {client.state(n) for n in lab.config.connect.connectors} == {"RUNNING"}
        snaps = result["manifest"]["snapshots"]
        assert sorted(s["details"]["pvc"] for s in snaps) == [f"data-kafka-{i}" for i in range(3)]
        assert sorted(s["broker_id"] for s in snaps) == [0, 1, 2]
        for s in snaps:
            vs = kube.get(k.SNAPSHOTS, namespace, s["details"]["snapshot"])
            assert vs["status"]["readyToUse"] is True and s["details"]["restoreSize"] == "3Gi"
    finally:
        sims.stop()


def test_statefulset_stop_records_once_and_scales_back_exactly(
    kube_env: KubeEnv, kube: Kube, namespace: str, lab: LabHandle, tmp_path: Path
) -> None:
    sims = start_simulators(kube, [namespace])
    try:
        create_statefulset(kube, namespace, "kafka", 3)
        ready_replicas(kube, k.STATEFULSETS, namespace, "kafka", 3)
        config = make_config(
            kube_env,
            lab.config,
            tmp_path / "c",
            "statefulset",
            namespace,
            "kafka",
            snapshot_class=SNAPSHOT_CLASS,
        )
        platform = StatefulSetPlatform(config)
        assert [b.id for b in platform.brokers() if b.running] == [0, 1, 2]
        platform.stop_brokers([0, 1, 2], 30)
        # A retried stop (crash recovery) must not record 0 as the original.
        platform.stop_brokers([0, 1, 2], 30)
        sts = kube.get(k.STATEFULSETS, namespace, "kafka")
        assert (
            sts["spec"]["replicas"] == 0
            and sts["metadata"]["annotations"][ORIGINAL_REPLICAS] == "3"
        )
        assert kube.find(k.PODS, namespace) == []
        platform.start_brokers([0, 1, 2], 60)
        assert kube.get(k.STATEFULSETS, namespace, "kafka")["spec"]["replicas"] == 3
        assert len([p for p in kube.find(k.PODS, namespace) if k.condition_true(p, "Ready")]) == 3
    finally:
        sims.stop()


def test_statefulset_restore_creates_pvcs_from_snapshots(
    kube_env: KubeEnv, kube: Kube, namespace: str, lab: LabHandle, tmp_path: Path
) -> None:
    target = new_namespace(kube, "restore")
    sims = start_simulators(kube, [namespace, target])
    try:
        create_statefulset(kube, namespace, "kafka", 2)
        ready_replicas(kube, k.STATEFULSETS, namespace, "kafka", 2)
        config = make_config(
            kube_env,
            lab.config,
            tmp_path / "c",
            "statefulset",
            namespace,
            "kafka",
            snapshot_class=SNAPSHOT_CLASS,
            restore_namespace=target,
        )
        platform = StatefulSetPlatform(config)
        platform.stop_brokers([0, 1], 30)
        refs = platform.snapshot_volumes("bk-sts-1", [0, 1], 30)
        platform.start_brokers([0, 1], 60)
        manifest = Manifest(
            backup_id="bk-sts-1",
            created_at="2026-01-01T00:00:00Z",
            mode="consistent",
            platform="statefulset",
            head_window=8,
            primary=ClusterInfo(bootstrap=lab.primary),
            mirror=ClusterInfo(bootstrap=lab.mirror),
            replication_policy="identity",
            source_alias="primary",
            snapshots=refs,
        )
        out = platform.restore(manifest, 60)
        assert out["namespace"] == target and out["replicas"] == 2
        for i in range(2):
            pvc = kube.get(k.PVCS, target, f"data-kafka-{i}")
            assert pvc["spec"]["dataSource"]["kind"] == "VolumeSnapshot"
            assert pvc["spec"]["resources"]["requests"]["storage"] in ("3Gi", str(3 * 2**30))
            vs = kube.get(k.SNAPSHOTS, target, pvc["spec"]["dataSource"]["name"])
            assert vs["status"]["readyToUse"] is True
        platform.delete_snapshots("bk-sts-1")
        assert kube.find(k.SNAPSHOTS, namespace) == []
    finally:
        sims.stop()
