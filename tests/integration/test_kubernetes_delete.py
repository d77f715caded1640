"""`delete` on Kubernetes reports every snapshot it could not delete (issue 27, point 7):
exit 5 with a warning, the catalog entry kept so that `delete` can be run again; against
the REAL kube-apiserver, whose RBAC refuses the deletion."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from kasten_bp.backup import Backups
from kasten_bp.config import Config
from kasten_bp.platforms.kube import resources as k
from kasten_bp.platforms.kube.api import Kube

from .helpers import KASTEN_BP, LabHandle
from .kube_fixture import KubeEnv, Sims, create_strimzi_cluster, wait_strimzi_ready
from .test_kubernetes_safety import LIMITED
from .test_kubernetes_strimzi import strimzi_config

pytestmark = [pytest.mark.integration, pytest.mark.kubernetes]
RBAC = "rbac.authorization.k8s.io"
ROLES = k.Resource(RBAC, "v1", "roles", "Role")
BINDINGS = k.Resource(RBAC, "v1", "rolebindings", "RoleBinding")


def delete_cli(config: Config, tmp_path: Path, backup_id: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "limited.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
    return subprocess.run(
        [*KASTEN_BP, "delete", backup_id, "--confirm", "--config", str(path), "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def allow(kube: Kube, namespace: str, snapshot_verbs: list[str]) -> None:
    """The limited user may take the lock and see snapshots, and do `snapshot_verbs`."""
    rules = [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"],
        },
        {
            "apiGroups": ["snapshot.storage.k8s.io", "groupsnapshot.storage.k8s.io"],
            "resources": ["volumesnapshots", "volumegroupsnapshots"],
            "verbs": snapshot_verbs,
        },
    ]
    existing = kube.get_optional(ROLES, namespace, "delete-test")
    if existing is None:
        kube.create(ROLES, namespace, {"metadata": {"name": "delete-test"}, "rules": rules})
        kube.create(
            BINDINGS,
            namespace,
            {
                "metadata": {"name": "delete-test"},
                "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "delete-test"},
                "subjects": [{"apiGroup": RBAC, "kind": "User", "name": LIMITED}],
            },
        )
    else:
        existing["rules"] = rules
        kube.replace(ROLES, namespace, "delete-test", existing)
    time.sleep(1)  # RBAC is served from an informer cache


def test_delete_reports_the_snapshots_it_could_not_delete_and_keeps_the_entry(
    kube_env: KubeEnv,
    kube: Kube,
    namespace: str,
    lab: LabHandle,
    sims: Sims,
    tmp_path: Path,
) -> None:
    create_strimzi_cluster(kube, namespace)
    wait_strimzi_ready(kube, namespace)
    config = strimzi_config(kube_env, lab, tmp_path, namespace)
    done = Backups(config).backup("consistent")
    backup_id = done["backup_id"]
    snapshots = sorted(s["metadata"]["name"] for s in kube.find(k.SNAPSHOTS, namespace))
    assert len(snapshots) == 3
    assert config.kubernetes is not None
    limited = config.model_copy(
        update={
            "kubernetes": config.kubernetes.model_copy(
                update={"kubeconfig": kube_env.limited_kubeconfig}
            )
        }
    )
    allow(kube, namespace, ["get", "list"])  # ... but not delete
    refused = delete_cli(limited, tmp_path, backup_id)
    assert refused.returncode == 5, refused.stderr[-2000:]
    result = json.loads(refused.stdout)
    assert result["deleted_keys"] == 0
    assert sorted(u.split(":")[0] for u in result["undeleted"]) == [
        f"volumesnapshot {namespace}/{name}" for name in snapshots
    ]
    assert all(
        f"forbidden: cannot delete volumesnapshots.snapshot.storage.k8s.io in namespace "
        f"{namespace} (user {LIMITED})" in u
        for u in result["undeleted"]
    )
    assert "its catalog entry is kept" in result["warnings"][0]
    assert Backups(config).store.load(backup_id) is not None
    assert len(kube.find(k.SNAPSHOTS, namespace)) == 3
    # Fixed: the same command finishes the job.
    allow(kube, namespace, ["get", "list", "delete"])
    again = delete_cli(limited, tmp_path, backup_id)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["undeleted"] == []
    assert Backups(config).store.load(backup_id) is None
