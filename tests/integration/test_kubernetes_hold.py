"""`quiesce --hold-timeout` on Kubernetes, against a REAL kube-apiserver with the lab's real
brokers and Connect behind the simulated Strimzi: run from a hook pod, quiesce makes a
watchdog Job like that pod; `resume` deletes it; with no `resume`, the Job's own command
(run here as the kubelet would, since no kubelet exists) puts the mirror back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kasten_bp.backup import Backups
from kasten_bp.config import Config
from kasten_bp.errors import RunFailed, UsageError
from kasten_bp.platforms.kube import resources as k
from kasten_bp.platforms.kube.api import Kube
from kasten_bp.platforms.kube.hold_job import hold_job, job_name
from kasten_bp.platforms.strimzi import PAUSE
from kasten_bp.waiting import wait_for
from kasten_bp.workflow.states import RunState

from .helpers import LabHandle
from .kube_fixture import (
    KubeEnv,
    Sims,
    create_strimzi_cluster,
    wait_all_deleted,
    wait_strimzi_ready,
)
from .test_kubernetes_strimzi import assert_cluster_back, strimzi_config

pytestmark = [pytest.mark.integration, pytest.mark.kubernetes]
HOOK_POD = "kanister-job-quiesce"
HOOK_IMAGE = "ghcr.io/kasten-bp/kasten-bp:0.1.0"


@pytest.fixture
def hook_pod(kube: Kube, namespace: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The pod a K10 hook runs in (KubeTask with podOverride), as the API server has it;
    kasten-bp is told it runs there, as a pod knows from its HOSTNAME."""
    kube.create(
        k.PODS,
        namespace,
        {
            "metadata": {"name": HOOK_POD},
            "spec": {
                "serviceAccountName": "kasten-bp",
                "containers": [
                    {
                        "name": "container",
                        "image": HOOK_IMAGE,
                        "env": [{"name": "KASTEN_BP_CATALOG", "value": "s3://b/p"}],
                        "volumeMounts": [
                            {"name": "config", "mountPath": "/etc/kasten-bp"},
                            {
                                "name": "kube-api-access-x1",
                                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                            },
                        ],
                    }
                ],
                "volumes": [
                    {"name": "config", "configMap": {"name": "kasten-bp-mirror"}},
                    {"name": "kube-api-access-x1", "emptyDir": {}},
                ],
            },
        },
    )
    monkeypatch.setenv("KASTEN_BP_POD_NAMESPACE", namespace)
    monkeypatch.setenv("KASTEN_BP_POD_NAME", HOOK_POD)
    yield HOOK_POD


def run_watchdog_job(kube: Kube, namespace: str, backup_id: str) -> Any:
    """The kubelet's part (no kubelet exists here): run the container command of the run's
    watchdog Job, with its environment; returns what it printed as JSON."""
    job = kube.get(k.JOBS, namespace, job_name(backup_id))
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {**os.environ, **{e["name"]: e["value"] for e in container["env"]}}
    env.pop("KASTEN_BP_CATALOG")  # the hook pod's S3 catalog is not this test's
    watchdog = subprocess.run(
        [*container["command"], "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert watchdog.returncode == 0, watchdog.stderr[-2000:]
    return json.loads(watchdog.stdout)


def written(config: Config, tmp_path: Path) -> Path:
    path = tmp_path / "kasten-bp.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
    return path


def test_quiesce_from_a_hook_pod_makes_a_watchdog_job_and_resume_deletes_it(
    kube_env: KubeEnv,
    kube: Kube,
    namespace: str,
    lab: LabHandle,
    sims: Sims,
    hook_pod: str,
    tmp_path: Path,
) -> None:
    create_strimzi_cluster(kube, namespace)
    wait_strimzi_ready(kube, namespace)
    config = strimzi_config(kube_env, lab, tmp_path, namespace)
    path = written(config, tmp_path)
    held = Backups(config, config_file=path).quiesce(hold_seconds=600)
    assert held["status"] == RunState.HELD and held["hold_deadline"]
    job = kube.get(k.JOBS, namespace, job_name(held["backup_id"]))
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # Like the hook pod: its image, service account, environment and config volume...
    assert container["image"] == HOOK_IMAGE and pod["serviceAccountName"] == "kasten-bp"
    assert container["env"] == [{"name": "KASTEN_BP_CATALOG", "value": "s3://b/p"}]
    assert [v["name"] for v in pod["volumes"]] == ["config"]  # ... not its own token
    assert container["command"][-3:] == [held["backup_id"], "--config", str(path.resolve())]
    assert "hold-expire" in container["command"]
    done = Backups(config, config_file=path).resume(snapshot_taken=True)
    assert done["status"] == RunState.COMPLETED
    assert kube.get_optional(k.JOBS, namespace, job_name(held["backup_id"])) is None
    assert_cluster_back(kube, namespace, sims, lab)


def test_the_watchdog_jobs_command_puts_the_mirror_back_at_the_deadline(
    kube_env: KubeEnv,
    kube: Kube,
    namespace: str,
    lab: LabHandle,
    sims: Sims,
    hook_pod: str,
    tmp_path: Path,
) -> None:
    create_strimzi_cluster(kube, namespace)
    wait_strimzi_ready(kube, namespace)
    config = strimzi_config(kube_env, lab, tmp_path, namespace)
    path = written(config, tmp_path)
    held = Backups(config, config_file=path).quiesce(hold_seconds=10)
    watchdog = run_watchdog_job(kube, namespace, held["backup_id"])
    assert watchdog["status"] == RunState.FAILED_ROLLED_BACK and watchdog["hold_expired"]
    journal = Backups(config).store.load(held["backup_id"])
    assert journal is not None and journal.hold_expired
    assert journal.state == RunState.FAILED_ROLLED_BACK
    assert_cluster_back(kube, namespace, sims, lab)


# (command, step, its status when the hook pod dies, the run's end). A killed `quiesce`
# is the report; the kept case proves a complete snapshot survives the kill.
POD_KILLS = [
    ("quiesce", "wait_caught_up", "running", RunState.FAILED_ROLLED_BACK),
    ("backup", "stop_brokers", "done", RunState.FAILED_ROLLED_BACK),
    ("backup", "snapshot_volumes", "done", RunState.COMPLETED_WITH_WARNINGS),
]


@pytest.mark.parametrize(("command", "step", "status", "final"), POD_KILLS)
def test_a_run_killed_with_its_hook_pod_is_finished_by_its_watchdog_job(
    kube_env: KubeEnv,
    kube: Kube,
    namespace: str,
    lab: LabHandle,
    sims: Sims,
    hook_pod: str,
    tmp_path: Path,
    command: str,
    step: str,
    status: str,
    final: RunState,
) -> None:
    """Issue 27: a hook pod evicted mid-run. Its watchdog Job (armed before the first step)
    takes over the run's Lease at once, since the pod that held it is gone, and puts the
    mirror back; nobody calls `status` or `resume`."""
    create_strimzi_cluster(kube, namespace)
    wait_strimzi_ready(kube, namespace)
    config = strimzi_config(kube_env, lab, tmp_path, namespace)
    path = written(config, tmp_path)
    backups = Backups(config)
    run = subprocess.Popen(
        [sys.executable, "-m", "kasten_bp.cli", command, "--config", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def reached() -> str | None:
        for journal in backups.store.all():
            if any(s.name == step and s.status == status for s in journal.steps):
                return journal.backup_id
        return None

    backup_id = wait_for(f"the {command} to reach {step} {status}", reached, 300, 0.05, 0.1)
    run.send_signal(signal.SIGKILL)  # the eviction: no clean-up of its own
    run.wait(30)
    kube.delete(k.PODS, namespace, hook_pod)
    lease = kube.get(k.LEASES, namespace, "kasten-bp-mirror")["spec"]
    assert f"pod {namespace}/{hook_pod}" in lease["holderIdentity"]  # held by the dead pod
    watchdog = run_watchdog_job(kube, namespace, backup_id)
    assert watchdog["status"] == final
    journal = backups.store.load(backup_id)
    assert journal is not None and journal.state == final
    assert all(d.status == "done" for d in journal.deferred)
    if final == RunState.FAILED_ROLLED_BACK:
        assert "crashed run found by its watchdog" in journal.events[-2]["note"]
        wait_all_deleted(kube, k.SNAPSHOTS, namespace)  # any begun were deleted
    else:
        assert "crashed run found by its watchdog" in journal.warnings[0]
        assert len(kube.find(k.SNAPSHOTS, namespace)) == 3  # the complete snapshot is kept
    assert_cluster_back(kube, namespace, sims, lab)


def test_the_watchdog_pod_is_admitted_under_pod_security_restricted(kube: Kube) -> None:
    """Issue 28: the watchdog Job's pod sets the restricted container securityContext and
    resources, whatever the hook pod's container said, so the REAL PodSecurity admission of
    a `restricted` namespace admits it; the hook pod as written is refused there."""
    namespace = f"kbp-restricted-{os.urandom(3).hex()}"
    kube.create(
        k.NAMESPACES,
        None,
        {
            "metadata": {
                "name": namespace,
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            }
        },
    )
    hook = {
        "metadata": {"name": HOOK_POD},
        "spec": {
            "serviceAccountName": "kasten-bp",
            "containers": [
                {
                    "name": "container",
                    "image": HOOK_IMAGE,
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/kasten-bp"}],
                }
            ],
            "volumes": [{"name": "config", "configMap": {"name": "kasten-bp-mirror"}}],
        },
    }
    with pytest.raises(UsageError, match="forbidden: cannot create pods"):
        kube.create(k.PODS, namespace, hook)  # the control: admission does enforce
    job = hold_job(hook, "bk-20261208T000000Z-abcd", ["kasten-bp", "hold-expire"])
    template = job["spec"]["template"]
    created = kube.create(
        k.PODS, namespace, {"metadata": {"name": "watchdog"}, "spec": template["spec"]}
    )
    (container,) = created["spec"]["containers"]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["resources"]["limits"]["memory"] == "256Mi"


def test_a_quiesce_whose_watchdog_cannot_be_made_fails_before_acting(
    kube_env: KubeEnv,
    kube: Kube,
    namespace: str,
    lab: LabHandle,
    sims: Sims,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 28: no watchdog, no hold. A hook pod the API server does not know (so no Job
    can be made like it) fails the quiesce, rolled back (exit 3), before anything acted."""
    create_strimzi_cluster(kube, namespace)
    wait_strimzi_ready(kube, namespace)
    monkeypatch.setenv("KASTEN_BP_POD_NAMESPACE", namespace)
    monkeypatch.setenv("KASTEN_BP_POD_NAME", "kanister-job-gone")
    config = strimzi_config(kube_env, lab, tmp_path, namespace)
    backups = Backups(config, config_file=written(config, tmp_path))
    mm2_before = kube.get(k.MIRRORMAKER2S, namespace, "mm2")["spec"]
    with pytest.raises(RunFailed, match="failed and was rolled back: pod .*kanister-job-gone"):
        backups.quiesce(hold_seconds=600)
    (journal,) = backups.store.all()
    assert journal.state == RunState.FAILED_ROLLED_BACK
    assert all(s.status == "pending" for s in journal.steps)  # nothing acted
    kafka = kube.get(k.KAFKAS, namespace, "mirror")
    assert PAUSE not in (kafka["metadata"].get("annotations") or {})
    assert [p["metadata"]["name"] for p in kube.find(k.PODSETS, namespace)] == ["mirror-dual"]
    assert kube.get(k.MIRRORMAKER2S, namespace, "mm2")["spec"] == mm2_before  # never stopped
