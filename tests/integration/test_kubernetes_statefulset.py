"""Platform statefulset against a REAL kube-apiserver (pods played by the kubelet simulator).
Where brokers stop and start, the StatefulSet's pods are the lab's REAL mirror brokers, so
the platform's healthy-partition wait watches the very brokers the StatefulSet runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kasten_bp.backup import Backups
from kasten_bp.config import write_config
from kasten_bp.connect import ConnectClient
from kasten_bp.kafka import admin
from kasten_bp.lab import kraft
from kasten_bp.lab.kraft import ClusterSpec
from kasten_bp.lab.load import LoadSpec, run_load
from kasten_bp.manifest import ClusterInfo, Manifest
from kasten_bp.platforms.kube import resources as k
from kasten_bp.platforms.kube.api import Kube
from kasten_bp.platforms.statefulset import ORIGINAL_REPLICAS, StatefulSetPlatform
from kasten_bp.waiting import wait_for
from kasten_bp.workflow.states import RunState
from tests.kube.simulator import LabBinding, VolumeBrokers

from .helpers import BackgroundProducer, LabHandle, assert_all_mirrored, cli_json_for, wait_mirrored
from .kube_fixture import (
    SNAPSHOT_CLASS,
    KubeEnv,
    Sims,
    assert_snapshot_holds_the_cut,
    bind_volumes,
    create_statefulset,
    make_config,
    new_namespace,
    start_simulators,
    volume_handle,
    wait_all_deleted,
)

pytestmark = [pytest.mark.integration, pytest.mark.kubernetes]


def ready_replicas(kube: Kube, resource: k.Resource, ns: str, name: str, want: int) -> None:
    def ok() -> bool:
        obj = kube.get(resource, ns, name)
        return int((obj.get("status") or {}).get("readyReplicas") or 0) == want

    wait_for(f"{resource.kind} {ns}/{name} to have {want} ready replicas", ok, 60)


@contextmanager
def kafka_on_lab_mirror(
    kube: Kube, namespace: str, lab: LabHandle, restored: VolumeBrokers | None = None
) -> Iterator[tuple[Sims, ClusterSpec]]:
    """StatefulSet `kafka` whose pod `kafka-<i>` is the lab's mirror broker i+1 (its PV is
    that broker's log dir): scaling it to 0 really stops Kafka. With `restored`, its
    namespaces run brokers on their volumes. The lab's mirror runs again afterwards,
    whatever happened."""
    assert lab.lab is not None
    mirror = lab.lab.require_state().mirror
    binding = LabBinding(namespace, mirror, {f"kafka-{b.id - 1}": b for b in mirror.brokers})
    bind_volumes(
        kube, namespace, {f"data-kafka-{b.id - 1}": b.log_dir for b in mirror.brokers}, "3Gi"
    )
    others = restored.namespaces if restored else []
    sims = start_simulators(kube, [namespace, *others], lab=binding, volumes=restored)
    try:
        create_statefulset(kube, namespace, "kafka", len(mirror.brokers))
        ready_replicas(kube, k.STATEFULSETS, namespace, "kafka", len(mirror.brokers))
        yield sims, mirror
    finally:
        sims.stop()
        kraft.start_cluster(mirror)
        wait_for("the lab's mirror brokers to listen", lambda: kraft.brokers_listening(mirror), 120)


def test_statefulset_backup_restore_verify_end_to_end(
    kube_env: KubeEnv, kube: Kube, namespace: str, lab: LabHandle, topic: str, tmp_path: Path
) -> None:
    """Backup under load (scaled back to exactly its replicas), then `kasten-bp restore`
    into another namespace, the chart installed there (a StatefulSet claiming the restored
    PVCs), and `kasten-bp verify`: consistent."""
    target = new_namespace(kube, "restore")
    restored = VolumeBrokers([target], tmp_path / "restored-brokers")
    with kafka_on_lab_mirror(kube, namespace, lab, restored) as (sims, mirror):
        create_statefulset(kube, namespace, "mm2", 2, kind=k.DEPLOYMENTS)
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
            timeout_seconds=120,
            restore_namespace=target,
        )
        # Writes on the primary while MM2 is stopped: confirming replication afterwards
        # needs MM2's live committed offsets, not the ones read at quiesce.
        with BackgroundProducer(lab.primary, topic, rate=50) as writer:
            result = Backups(config).backup("consistent")
        assert result["status"] == RunState.COMPLETED, result
        states = result["manifest"] and Backups(config).store.load(result["backup_id"])
        assert states is not None
        assert states.step("confirm_replication").result["confirmed_partitions"] > 0
        assert_all_mirrored(lab, topic, writer.acked)
        plan = states.step("pause_mirrormaker").plan["connector_states"]
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
            assert vs["status"]["readyToUse"] is True
            assert_snapshot_holds_the_cut(
                kube, s, result["manifest"], mirror.cluster_id, topic, node_id=s["broker_id"] + 1
            )
        # Restore, install the chart into the target namespace, verify: as a user does.
        config_path = tmp_path / "kasten-bp.yaml"
        write_config(config, config_path)
        out = cli_json_for(config_path, "restore", result["backup_id"])
        assert out["namespace"] == target and out["replicas"] == 3
        create_statefulset(kube, target, "kafka", out["replicas"])
        ready_replicas(kube, k.STATEFULSETS, target, "kafka", 3)
        bootstrap = restored.bootstrap(target, "kafka")
        assert bootstrap is not None
        for i in range(3):
            handle = volume_handle(kube, target, f"data-kafka-{i}")
            assert handle.startswith(str(kube_env.csi_root / "volumes"))
        report = cli_json_for(config_path, "verify", result["backup_id"], "--restored", bootstrap)
        assert report["verdict"] == "consistent", report
        checked = [p for p in report["partitions"] if p["topic"] == topic]
        assert len(checked) == 3 and {p["status"] for p in checked} <= {"consistent", "behind"}


def test_statefulset_stop_records_once_and_scales_back_exactly(
    kube_env: KubeEnv, kube: Kube, namespace: str, lab: LabHandle, tmp_path: Path
) -> None:
    with kafka_on_lab_mirror(kube, namespace, lab) as (_, mirror):
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
        platform.stop_brokers([0, 1, 2], 60)
        assert not any(b.handle.alive() for b in mirror.brokers)
        # A retried stop (crash recovery) must not record 0 as the original.
        platform.stop_brokers([0, 1, 2], 30)
        sts = kube.get(k.STATEFULSETS, namespace, "kafka")
        assert (
            sts["spec"]["replicas"] == 0
            and sts["metadata"]["annotations"][ORIGINAL_REPLICAS] == "3"
        )
        assert kube.find(k.PODS, namespace) == []
        platform.start_brokers([0, 1, 2], 120)
        # Healthy means the StatefulSet's own brokers are back and lead every partition.
        assert kube.get(k.STATEFULSETS, namespace, "kafka")["spec"]["replicas"] == 3
        assert len([p for p in kube.find(k.PODS, namespace) if k.condition_true(p, "Ready")]) == 3
        assert all(b.handle.alive() for b in mirror.brokers)
        assert admin.all_partitions_healthy(lab.mirror, 3)


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
        refs = platform.snapshot_volumes("bk-sts-1", [0, 1], 30)
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
        wait_all_deleted(kube, k.SNAPSHOTS, namespace)
    finally:
        sims.stop()
