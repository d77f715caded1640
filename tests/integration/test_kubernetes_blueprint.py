"""The Kanister Blueprint: the file equals `kasten-bp blueprint render`, its commands are
exactly these, and they work: the quiesce/resume/delete phases' commands are RUN here (as
the KubeTask pod would, with a stand-in `kando` that records its output) against the
Strimzi platform on the real API server with the lab's real Kafka and Connect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kasten_bp.cli import blueprint
from kasten_bp.config import write_config
from kasten_bp.platforms import kube as k
from kasten_bp.platforms.kube import Kube
from kasten_bp.platforms.strimzi import PAUSE

from .helpers import LabHandle
from .kube_fixture import (
    ROOT,
    SNAPSHOT_CLASS,
    KubeEnv,
    create_strimzi_cluster,
    make_config,
    start_simulators,
    wait_strimzi_ready,
)

pytestmark = [pytest.mark.integration, pytest.mark.kubernetes]
FILE = ROOT / "blueprints" / "kafka-mirror-blueprint.yaml"
CFG = "/etc/kasten-bp/kasten-bp.yaml"
ID = "{{ .ArtifactsIn.mirrorBackup.KeyValue.backupId }}"
QUIESCE_SCRIPT = (
    f"kasten-bp quiesce --config {CFG} --output json > /tmp/quiesce.json\n"
    "kando output backupId \"$(python3 -c 'import json; "
    'print(json.load(open("/tmp/quiesce.json"))["backup_id"])\')"\n'
)
EXPECTED = {
    "backupPrehook": [["bash", "-o", "errexit", "-o", "pipefail", "-c", QUIESCE_SCRIPT]],
    "backupPosthook": [
        ["kasten-bp", "resume", "--config", CFG, "--output", "json"],
        ["kasten-bp", "resume", "--config", CFG, "--output", "json"],  # deferPhase
    ],
    "backup": [
        ["bash", "-o", "errexit", "-o", "pipefail", "-c", QUIESCE_SCRIPT],
        ["kasten-bp", "snapshot", "--config", CFG, "--output", "json"],
        ["kasten-bp", "resume", "--config", CFG, "--output", "json"],  # deferPhase
    ],
    "restorePosthook": [["kasten-bp", "verify", ID, "--config", CFG, "--output", "json"]],
    "delete": [["kasten-bp", "delete", ID, "--confirm", "--config", CFG, "--output", "json"]],
}


def phases(action: dict) -> list[dict]:
    return list(action["phases"]) + ([action["deferPhase"]] if "deferPhase" in action else [])


def test_blueprint_file_is_the_render_and_runs_exactly_these_commands() -> None:
    text = FILE.read_text()
    doc = yaml.safe_load(text)
    assert doc == blueprint.render("my-cluster", "kafka")
    assert doc["apiVersion"] == "cr.kanister.io/v1alpha1" and doc["kind"] == "Blueprint"
    got = {name: [p["args"]["command"] for p in phases(a)] for name, a in doc["actions"].items()}
    assert got == EXPECTED
    for action in doc["actions"].values():
        for p in phases(action):
            assert p["func"] == "KubeTask"
            assert p["args"]["namespace"] == "kafka"
            assert p["args"]["image"] == blueprint.DEFAULT_IMAGE
            assert p["args"]["podOverride"]["serviceAccountName"] == "kasten-bp"
    assert (
        "deferPhase" in doc["actions"]["backupPosthook"]
        and "deferPhase" in doc["actions"]["backup"]
    )
    assert doc["actions"]["restorePosthook"]["inputArtifactNames"] == ["mirrorBackup"]
    # The CLI prints the file (text) and the same object (json); modulo substitutions.
    runner = CliRunner()
    out = runner.invoke(
        blueprint.app, ["render", "--cluster", "my-cluster", "--namespace", "kafka"]
    )
    assert out.exit_code == 0 and out.stdout.strip() == text.strip()
    out = runner.invoke(
        blueprint.app,
        ["render", "--cluster", "c2", "--namespace", "ns2", "--image", "img:1", "--output", "json"],
    )
    assert out.exit_code == 0
    other = json.loads(out.stdout)
    expected = text.replace("my-cluster", "c2").replace("namespace: kafka", "namespace: ns2")
    expected = expected.replace(blueprint.DEFAULT_IMAGE, "img:1")
    assert other == yaml.safe_load(expected)
    bad = runner.invoke(
        blueprint.app, ["render", "--cluster", "c", "--namespace", "n", "--platform", "x"]
    )
    assert bad.exit_code == 2 and "--platform must be strimzi or statefulset" in bad.stderr


def test_binding_and_rbac_documents_are_well_formed() -> None:
    binding = yaml.safe_load((ROOT / "blueprints" / "blueprint-binding.yaml").read_text())
    assert binding["apiVersion"] == "config.kio.kasten.io/v1alpha1"
    assert binding["kind"] == "BlueprintBinding"
    assert (
        binding["spec"]["blueprintRef"]["name"]
        == blueprint.render("my-cluster", "kafka")["metadata"]["name"]
    )
    kinds = [d["kind"] for d in yaml.safe_load_all((ROOT / "blueprints" / "rbac.yaml").read_text())]
    assert kinds == ["ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"]


def run_phase(
    command: list[str], config: Path, backup_id: str | None, bindir: Path, tmp: Path
) -> subprocess.CompletedProcess:
    cmd = [
        c.replace(CFG, str(config)).replace("/tmp/quiesce.json", str(tmp / "q.json"))
        for c in command
    ]
    if backup_id:
        cmd = [c.replace(ID, backup_id) for c in cmd]
    env = {**os.environ, "PATH": f"{bindir}:{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def test_blueprint_commands_quiesce_resume_delete_on_strimzi(
    kube_env: KubeEnv, kube: Kube, namespace: str, lab: LabHandle, tmp_path: Path
) -> None:
    create_strimzi_cluster(kube, namespace)
    sims = start_simulators(kube, [namespace], connect_url=lab.config.connect.url)
    try:
        wait_strimzi_ready(kube, namespace)
        config_path = tmp_path / "kasten-bp.yaml"
        write_config(
            make_config(
                kube_env,
                lab.config,
                tmp_path / "catalog",
                "strimzi",
                namespace,
                "mirror",
                mirrormaker="mm2",
                snapshot_class=SNAPSHOT_CLASS,
                timeout_seconds=30,
            ),
            config_path,
        )
        bindir = tmp_path / "bin"
        bindir.mkdir()
        kando_log = tmp_path / "kando.log"
        (bindir / "kando").write_text(f'#!/bin/sh\necho "$@" >> {kando_log}\n')
        (bindir / "kando").chmod(0o755)
        doc = blueprint.render("mirror", namespace)
        quiesce = doc["actions"]["backupPrehook"]["phases"][0]["args"]["command"]
        done = run_phase(quiesce, config_path, None, bindir, tmp_path)
        assert done.returncode == 0, done.stderr
        output = kando_log.read_text().split()
        assert output[:2] == ["output", "backupId"]
        backup_id = output[2]
        assert json.loads((tmp_path / "q.json").read_text())["status"] == "HELD"
        # Quiesced: paused, brokers' pods gone, connectors stopped — K10 snapshots now.
        assert kube.get(k.KAFKAS, namespace, "mirror")["metadata"]["annotations"][PAUSE] == "true"
        assert kube.find(k.PODS, namespace) == []
        mm2 = kube.get(k.MIRRORMAKER2S, namespace, "mm2")
        assert mm2["spec"]["mirrors"][0]["sourceConnector"]["state"] == "stopped"
        post = doc["actions"]["backupPosthook"]
        done = run_phase(post["phases"][0]["args"]["command"], config_path, None, bindir, tmp_path)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["status"] == "COMPLETED"
        again = run_phase(
            post["deferPhase"]["args"]["command"], config_path, None, bindir, tmp_path
        )
        assert again.returncode == 0 and json.loads(again.stdout)["status"] == "nothing to resume"
        wait_strimzi_ready(kube, namespace)
        assert PAUSE not in kube.get(k.KAFKAS, namespace, "mirror")["metadata"]["annotations"]
        delete = doc["actions"]["delete"]["phases"][0]["args"]["command"]
        done = run_phase(delete, config_path, backup_id, bindir, tmp_path)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["backup_id"] == backup_id
        assert not (tmp_path / "catalog" / "backups" / backup_id).exists()
    finally:
        sims.stop()
