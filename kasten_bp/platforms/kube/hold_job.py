"""The hold's watchdog on Kubernetes: a Job that runs `kasten-bp hold-expire` with the hook
pod's own image, service account, environment and volumes (so it reads the same config).

The Job lives in the hook pod's namespace (a pod can only use a service account of its own
namespace). Its command waits for the hold's deadline itself; `resume` deletes the Job.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kasten_bp.platforms.kube import resources as r
from kasten_bp.platforms.kube.api import Kube

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Kubernetes mounts each pod's own token here; the Job's pod gets its own.
TOKEN_VOLUME_PREFIX = "kube-api-access-"
HOLD_JOB_ACCESS = r.access(r.PODS, "get") + r.access(r.JOBS, "create", "get", "delete")
# Pod Security "restricted" admits the watchdog's pod only with these, whatever the hook
# pod's container said (issue 28): a watchdog that admission refuses never runs.
RESTRICTED_CONTAINER = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Small and bounded, so that a ResourceQuota that requires them admits it: the watchdog
# sleeps, polls the catalog and, once, puts the mirror back.
WATCHDOG_RESOURCES = {
    "requests": {"cpu": "50m", "memory": "128Mi"},
    "limits": {"memory": "256Mi"},
}


def own_pod() -> tuple[str, str] | None:
    """(namespace, name) of the pod kasten-bp runs in, or None outside a pod.

    KASTEN_BP_POD_NAMESPACE / KASTEN_BP_POD_NAME override what a pod knows of itself (its
    service account's namespace file, and HOSTNAME, which Kubernetes sets to the pod name).
    """
    namespace = os.environ.get("KASTEN_BP_POD_NAMESPACE")
    name = os.environ.get("KASTEN_BP_POD_NAME")
    namespace_file = SERVICE_ACCOUNT_DIR / "namespace"
    if namespace_file.exists():
        namespace = namespace or namespace_file.read_text().strip()
        name = name or os.environ.get("HOSTNAME")
    return (namespace, name) if namespace and name else None


def job_name(backup_id: str) -> str:
    return r.dns_name("kasten-bp-hold", backup_id, limit=63)


def hold_job(pod: dict[str, Any], backup_id: str, command: list[str]) -> dict[str, Any]:
    spec = pod.get("spec") or {}
    container = (spec.get("containers") or [{}])[0]

    def not_token(item: dict[str, Any]) -> bool:
        return not str(item.get("name", "")).startswith(TOKEN_VOLUME_PREFIX)

    labels = {
        "app.kubernetes.io/managed-by": "kasten-bp",
        "app.kubernetes.io/component": "hold-watchdog",
        "kasten-bp/backup-id": r.label_value(backup_id),
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "OnFailure",
        "serviceAccountName": spec.get("serviceAccountName") or "default",
        "containers": [
            {
                "name": "hold-watchdog",
                "image": container.get("image"),
                "command": command,
                "env": container.get("env") or [],
                "envFrom": container.get("envFrom") or [],
                "volumeMounts": [m for m in container.get("volumeMounts") or [] if not_token(m)],
                "securityContext": {
                    **(container.get("securityContext") or {}),
                    **RESTRICTED_CONTAINER,
                },
                "resources": container.get("resources") or WATCHDOG_RESOURCES,
            }
        ],
        "volumes": [v for v in spec.get("volumes") or [] if not_token(v)],
    }
    for key in ("securityContext", "imagePullSecrets", "nodeSelector", "tolerations"):
        if key in spec:
            pod_spec[key] = spec[key]
    return {
        "metadata": {"name": job_name(backup_id), "labels": labels},
        "spec": {
            "backoffLimit": 6,
            "ttlSecondsAfterFinished": 3600,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def start_hold_job(
    kube: Kube, where: tuple[str, str], backup_id: str, command: list[str]
) -> dict[str, Any]:
    namespace, pod_name = where
    pod = kube.get(r.PODS, namespace, pod_name)
    job = kube.create_or_get(r.JOBS, namespace, hold_job(pod, backup_id, command))
    return {"kind": "job", "namespace": namespace, "name": job["metadata"]["name"]}


def stop_hold_job(kube: Kube, handle: dict[str, Any]) -> None:
    # Background: the Job's pod goes with it; a Job already gone is fine.
    kube.delete(r.JOBS, handle["namespace"], handle["name"], propagation="Background")
