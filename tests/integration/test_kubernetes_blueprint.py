"""The Kanister Blueprints on the real API server and the lab.

- Both rendered blueprints are accepted, unpruned, by the Kanister Blueprint CRD
  (tests/kube/crds/cr.kanister.io_blueprints.yaml) with strict field validation.
- K10's order, played with the K10 blueprint's OWN commands (a stand-in `kando` records
  phase outputs; templates are substituted as Kanister would): backupPrehook -> the test's
  copy of the stopped brokers' volumes (K10's PVC snapshot) -> backupPosthook, twice ->
  a cluster started from the copies (K10's restore) -> restorePosthook with the artifact ->
  delete. The Strimzi pods are the lab's REAL mirror brokers, the connectors its REAL ones.
- The plain-Kanister `backup` action (quiesce -> CSI snapshot -> resume -> deferPhase) and
  `delete`, with the artifact the backup produced.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kasten_bp.cli import blueprint
from kasten_bp.config import write_config
from kasten_bp.errors import KastenBpError
from kasten_bp.lab import kraft
from kasten_bp.lab.kraft import BrokerSpec, ClusterSpec
from kasten_bp.lab.load import LoadSpec, run_load
from kasten_bp.platforms.kube import resources as k
from kasten_bp.platforms.kube.api import Kube
from kasten_bp.platforms.local import copy_tree
from kasten_bp.platforms.strimzi import PAUSE
from tests.kube.simulator import LabBinding

from .helpers import (
    BackgroundProducer,
    LabHandle,
    assert_all_mirrored,
    assert_mirror_running,
    wait_mirrored,
)
from .kube_fixture import (
    SNAPSHOT_CLASS,
    KubeEnv,
    create_strimzi_cluster,
    make_config,
    start_simulators,
    wait_strimzi_ready,
)

pytestmark = [pytest.mark.integration, pytest.mark.kubernetes]
BLUEPRINTS = k.Resource("cr.kanister.io", "v1alpha1", "blueprints", "Blueprint")
TEMPLATE = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")


def phases(action: dict[str, Any]) -> list[dict[str, Any]]:
    return list(action["phases"]) + ([action["deferPhase"]] if "deferPhase" in action else [])


def create_strict(kube: Kube, namespace: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Create as `kubectl create --validate=strict` would: unknown fields are errors."""
    return kube.request(
        "create", BLUEPRINTS, namespace, body=doc, query=[("fieldValidation", "Strict")]
    )


def test_rendered_blueprints_are_valid_kanister_blueprints(kube: Kube, namespace: str) -> None:
    for runner in blueprint.RUNNERS:
        doc = blueprint.render("mirror", namespace, runner=runner)
        doc["metadata"] = {**doc["metadata"], "namespace": namespace, "name": f"bp-{runner}"}
        create_strict(kube, namespace, doc)
        stored = kube.get(BLUEPRINTS, namespace, f"bp-{runner}")
        # Nothing pruned: every field we render is one the CRD knows.
        assert stored["actions"] == doc["actions"]
        if runner == "k10":
            assert "backup" not in stored["actions"] and "restore" not in stored["actions"]
    # The CRD really checks: a field in the wrong place and a wrong type are refused.
    bad = blueprint.render("mirror", namespace)
    bad["metadata"] = {"name": "bp-bad", "namespace": namespace}
    bad["actions"]["backupPosthook"]["phases"][0]["podOverride"] = {"serviceAccountName": "x"}
    with pytest.raises(KastenBpError, match="unknown field"):
        create_strict(kube, namespace, bad)
    worse = blueprint.render("mirror", namespace)
    worse["metadata"] = {"name": "bp-worse", "namespace": namespace}
    worse["actions"]["restorePosthook"]["inputArtifactNames"] = "mirrorBackup"
    with pytest.raises(KastenBpError, match="inputArtifactNames in body must be of type array"):
        create_strict(kube, namespace, worse)


class Kanister:
    """Runs a phase's command as its KubeTask pod would: templates substituted from what
    earlier phases output (`kando output`, recorded by a stand-in) and the artifacts the
    action was given; the config path and /tmp mapped into the test's directory."""

    def __init__(self, tmp: Path, config: Path) -> None:
        self.tmp = tmp
        self.config = config
        self.bindir = tmp / "bin"
        self.bindir.mkdir(exist_ok=True)
        self.kando_log = tmp / "kando.log"
        (self.bindir / "kando").write_text(
            f'#!/bin/sh\n[ "$1" = output ] && printf "%s %s\\n" "$2" "$3" >> {self.kando_log}\n'
        )
        (self.bindir / "kando").chmod(0o755)

    def run(
        self, phase: dict[str, Any], values: dict[str, str], config: Path | None = None
    ) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
        def value(m: re.Match[str]) -> str:
            assert m.group(1) in values, f"template {m.group(1)} has no value"
            return values[m.group(1)]

        cmd = [
            TEMPLATE.sub(value, c.replace("/tmp/", f"{self.tmp}/")).replace(
                blueprint.CONFIG_FILE, str(config or self.config)
            )
            for c in phase["args"]["command"]
        ]
        self.kando_log.unlink(missing_ok=True)
        path = f"{self.bindir}:{Path(sys.executable).parent}:{os.environ['PATH']}"
        done = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, "PATH": path}, timeout=900
        )
        outputs = {}
        if self.kando_log.exists():
            for line in self.kando_log.read_text().splitlines():
                key, _, val = line.partition(" ")
                outputs[f".Phases.{phase['name']}.Output.{key}"] = val
        return done, outputs


def artifacts(action: dict[str, Any], outputs: dict[str, str]) -> dict[str, str]:
    """The action's outputArtifacts rendered, as the template keys later actions read."""
    rendered = {}
    for name, artifact in action["outputArtifacts"].items():
        for key, template in artifact["keyValue"].items():
            rendered[f".ArtifactsIn.{name}.KeyValue.{key}"] = TEMPLATE.sub(
                lambda m: outputs[m.group(1)], template
            )
    return rendered


def strimzi_config(kube_env: KubeEnv, lab: LabHandle, tmp: Path, ns: str, name: str, **kw: Any):
    path = tmp / name
    config = make_config(
        kube_env,
        lab.config,
        tmp / "catalog",
        "strimzi",
        ns,
        "mirror",
        mirrormaker="mm2",
        snapshot_class=SNAPSHOT_CLASS,
        timeout_seconds=30,
        **kw,
    )
    write_config(config, path)
    return path


def start_from_copies(
    lab: LabHandle, copies: dict[int, Path], cluster_id: str, root: Path
) -> ClusterSpec:
    """K10's restore, played here: a new cluster whose volumes are the snapshot copies
    (node ids and cluster id kept, as PVCs restored from snapshots keep them)."""
    planned = kraft.plan_cluster("k10-restored", root, len(copies), cluster_id)
    brokers = []
    for (node_id, source), p in zip(sorted(copies.items()), planned.brokers, strict=True):
        copy_tree(source, Path(p.log_dir))
        brokers.append(
            BrokerSpec(
                id=node_id,
                port=p.port,
                controller_port=p.controller_port,
                log_dir=p.log_dir,
                run_dir=p.run_dir,
            )
        )
    cluster = ClusterSpec(name=planned.name, cluster_id=cluster_id, brokers=brokers)
    kraft.write_configs(cluster)
    kraft.start_cluster(cluster)
    assert lab.lab is not None
    lab.lab.wait_cluster_ready(cluster, 180)
    return cluster


def test_k10_hook_order_with_the_blueprints_own_commands(
    kube_env: KubeEnv, kube: Kube, namespace: str, lab: LabHandle, topic: str, tmp_path: Path
) -> None:
    assert lab.lab is not None
    mirror = lab.lab.require_state().mirror
    pods = LabBinding(namespace, mirror, {f"mirror-dual-{b.id}": b for b in mirror.brokers})
    create_strimzi_cluster(kube, namespace, node_ids=tuple(b.id for b in mirror.brokers))
    sims = start_simulators(
        kube, [namespace], lab=pods, connect_url=lab.config.connect.url, bootstrap=mirror.bootstrap
    )
    restored: ClusterSpec | None = None
    try:
        wait_strimzi_ready(kube, namespace, timeout=120)
        run_load(lab.primary, LoadSpec(topic=topic, records=300, rate=0, partitions=3))
        wait_mirrored(lab.primary, lab.mirror, topic)
        config = strimzi_config(kube_env, lab, tmp_path, namespace, "kasten-bp.yaml")
        hooks = blueprint.render("mirror", namespace)["actions"]
        kanister = Kanister(tmp_path, config)
        with BackgroundProducer(lab.primary, topic, rate=50) as producer:
            # 1. backupPrehook: quiesce; the backup id leaves as the artifact.
            (pre,) = hooks["backupPrehook"]["phases"]
            done, outputs = kanister.run(pre, {})
            assert done.returncode == 0, done.stderr
            artifact = artifacts(hooks["backupPrehook"], outputs)
            backup_id = artifact[".ArtifactsIn.mirrorBackup.KeyValue.backupId"]
            assert json.loads((tmp_path / "quiesce.json").read_text())["backup_id"] == backup_id
            assert not any(b.handle.alive() for b in mirror.brokers)
            paused = kube.get(k.KAFKAS, namespace, "mirror")["metadata"]["annotations"]
            assert paused[PAUSE] == "true"
            # 2. K10 snapshots the PVCs: copies of the stopped brokers' volumes.
            copies = {b.id: tmp_path / "k10-snapshots" / f"node-{b.id}" for b in mirror.brokers}
            for b in mirror.brokers:
                copy_tree(Path(b.log_dir), copies[b.id])
            # 3. backupPosthook: resume. Then again (a retried hook): harmless.
            (post,) = hooks["backupPosthook"]["phases"]
            done, _ = kanister.run(post, {})
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["status"] == "COMPLETED"
            again, _ = kanister.run(post, {})
            assert again.returncode == 0, again.stderr
            assert json.loads(again.stdout)["status"] == "nothing to resume"
        # Replication flows again and nothing written meanwhile was lost.
        assert_all_mirrored(lab, topic, producer.acked)
        assert_mirror_running(lab)
        wait_strimzi_ready(kube, namespace)
        assert PAUSE not in kube.get(k.KAFKAS, namespace, "mirror")["metadata"]["annotations"]
        # 4. K10 restores the PVCs: a cluster on the copies.
        restored = start_from_copies(lab, copies, mirror.cluster_id, tmp_path / "restored")
        # 5. restorePosthook with the artifact, against the restored cluster.
        restore_config = strimzi_config(
            kube_env,
            lab,
            tmp_path,
            namespace,
            "kasten-bp-restore.yaml",
            restored_bootstrap=restored.bootstrap,
        )
        (verify,) = hooks["restorePosthook"]["phases"]
        done, _ = kanister.run(verify, artifact, config=restore_config)
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        assert report["backup_id"] == backup_id and report["verdict"] == "consistent"
        assert report["restored_bootstrap"] == restored.bootstrap
        statuses = {p["status"] for p in report["partitions"] if p["topic"] == topic}
        assert statuses and statuses <= {"consistent", "behind"}
        # 6. delete, when K10 retires the restore point.
        (delete,) = hooks["delete"]["phases"]
        done, _ = kanister.run(delete, artifact)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["backup_id"] == backup_id
        assert not (tmp_path / "catalog" / "backups" / backup_id).exists()
    finally:
        if restored is not None:
            kraft.stop_brokers(restored.brokers)
        sims.stop()


def test_kanister_backup_action_and_delete_share_the_artifact(
    kube_env: KubeEnv, kube: Kube, namespace: str, lab: LabHandle, tmp_path: Path
) -> None:
    create_strimzi_cluster(kube, namespace)
    sims = start_simulators(kube, [namespace], connect_url=lab.config.connect.url)
    try:
        wait_strimzi_ready(kube, namespace)
        config = strimzi_config(kube_env, lab, tmp_path, namespace, "kasten-bp.yaml")
        actions = blueprint.render("mirror", namespace, runner="kanister")["actions"]
        kanister = Kanister(tmp_path, config)
        backup = actions["backup"]
        outputs: dict[str, str] = {}
        results = []
        for phase in phases(backup):
            done, out = kanister.run(phase, {})
            assert done.returncode == 0, (phase["name"], done.stderr)
            outputs.update(out)
            # The quiesce phase writes its JSON to a file and hands on only the backup id.
            printed = (
                done.stdout if done.stdout.strip() else (tmp_path / "quiesce.json").read_text()
            )
            results.append(json.loads(printed))
        artifact = artifacts(backup, outputs)
        backup_id = artifact[".ArtifactsIn.mirrorBackup.KeyValue.backupId"]
        quiesced, snapshotted, resumed, deferred = results
        assert quiesced["backup_id"] == snapshotted["backup_id"] == backup_id
        assert resumed["status"] == "COMPLETED"
        assert deferred["status"] == "nothing to resume"
        snaps = kube.find(k.SNAPSHOTS, namespace)
        assert snaps and all(s["status"]["readyToUse"] for s in snaps)
        wait_strimzi_ready(kube, namespace)
        (delete,) = actions["delete"]["phases"]
        done, _ = kanister.run(delete, artifact)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["backup_id"] == backup_id
        assert not (tmp_path / "catalog" / "backups" / backup_id).exists()
        # The CSI snapshots kasten-bp took are gone (or going: deletion requested).
        assert all("deletionTimestamp" in s["metadata"] for s in kube.find(k.SNAPSHOTS, namespace))
    finally:
        sims.stop()
