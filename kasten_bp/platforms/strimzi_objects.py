"""What a Strimzi restore recreates besides the volumes, saved at backup time.

- The cluster's custom resources as they were: KafkaTopics and KafkaUsers (label
  `strimzi.io/cluster`) and the KafkaMirrorMaker2 kasten-bp controls. They are applied to the
  restore namespace **paused** (`strimzi.io/pause-reconciliation`): the Topic and User
  Operators leave the restored topics, users and SCRAM credentials (which the restored
  metadata log already holds) alone, and the restored MM2 does not start mirroring into the
  restored cluster, until a person has verified it and removes the annotations.
- The cluster and clients CA secrets, **by reference only**: namespace, name, type and a
  SHA-256 of their data, never the data. On restore they are copied from where they are now
  into the restore namespace before the Kafka is created, so Strimzi keeps the CAs that
  clients already trust; a secret that is gone or changed since the backup is a warning.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kasten_bp.platforms.kube import resources as r
from kasten_bp.platforms.kube.api import Kube

PAUSE = "strimzi.io/pause-reconciliation"
CLUSTER = "strimzi.io/cluster"
TOPICS = r.Resource("kafka.strimzi.io", "v1beta2", "kafkatopics", "KafkaTopic")
USERS = r.Resource("kafka.strimzi.io", "v1beta2", "kafkausers", "KafkaUser")
_META_DROP = ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation")
_CA_SECRETS = ("cluster-ca-cert", "cluster-ca", "clients-ca-cert", "clients-ca")


def clean_object(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as it can be created again: no status, no server-set metadata."""
    meta = {key: v for key, v in obj.get("metadata", {}).items() if key not in _META_DROP}
    meta.pop("deletionTimestamp", None)
    meta.pop("deletionGracePeriodSeconds", None)
    if meta.get("annotations"):
        meta["annotations"] = {a: v for a, v in meta["annotations"].items() if a != PAUSE}
    return {"metadata": meta, "spec": obj.get("spec") or {}}


def ca_secret_names(cluster: str) -> list[str]:
    """Strimzi's CA secrets of a cluster: certificates and keys, cluster and clients CA."""
    return [f"{cluster}-{suffix}" for suffix in _CA_SECRETS]


def backup_access(cluster: str) -> list[r.Access]:
    needs = r.access(TOPICS, "list") + r.access(USERS, "list")
    for name in ca_secret_names(cluster):
        needs += r.access(r.SECRETS, "get", name=name)
    return needs


def restore_access() -> list[r.Access]:
    return (
        r.access(TOPICS, "get", "create")
        + r.access(USERS, "get", "create")
        + r.access(r.MIRRORMAKER2S, "get", "create")
        + r.access(r.SECRETS, "create")
    )


def _digest(data: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def capture(kube: Kube, namespace: str, cluster: str, mirrormaker: str | None) -> dict[str, Any]:
    """The objects to recreate, and references to the CA secrets (never their data)."""
    selector = {CLUSTER: cluster}
    secrets = []
    for name in ca_secret_names(cluster):
        secret = kube.get_optional(r.SECRETS, namespace, name)
        if secret is not None:
            secrets.append(
                {
                    "namespace": namespace,
                    "name": name,
                    "type": secret.get("type") or "Opaque",
                    "sha256": _digest(secret.get("data") or {}),
                }
            )
    mm2 = kube.get_optional(r.MIRRORMAKER2S, namespace, mirrormaker) if mirrormaker else None
    return {
        "topics": [clean_object(t) for t in kube.find(TOPICS, namespace, selector)],
        "users": [clean_object(u) for u in kube.find(USERS, namespace, selector)],
        "mirrormaker2": clean_object(mm2) if mm2 is not None else None,
        "secret_refs": secrets,
    }


def apply_secrets(kube: Kube, saved: dict[str, Any], target: str) -> list[str]:
    """Copy the referenced CA secrets into `target` (before its Kafka exists); warnings."""
    warnings = []
    for ref in saved.get("secret_refs") or []:
        where = f"{ref['namespace']}/{ref['name']}"
        if kube.get_optional(r.SECRETS, target, ref["name"]) is not None:
            continue
        source = kube.get_optional(r.SECRETS, ref["namespace"], ref["name"])
        if source is None:
            warnings.append(
                f"secret {where} is gone: Strimzi makes a new CA for the restored cluster, "
                "and its clients must trust it"
            )
            continue
        data = source.get("data") or {}
        if _digest(data) != ref["sha256"]:
            warnings.append(f"secret {where} changed since the backup: copied as it is now")
        meta = source.get("metadata") or {}
        body = {
            "metadata": {
                "name": ref["name"],
                "labels": meta.get("labels") or {},
                "annotations": meta.get("annotations") or {},
            },
            "type": source.get("type") or ref["type"],
            "data": data,
        }
        kube.create_or_get(r.SECRETS, target, body)
    return warnings


def apply_paused(kube: Kube, saved: dict[str, Any], target: str) -> dict[str, list[str]]:
    """The saved KafkaTopics, KafkaUsers and KafkaMirrorMaker2 in `target`, paused."""
    applied: dict[str, list[str]] = {"topics": [], "users": [], "mirrormaker2": []}
    mm2 = saved.get("mirrormaker2")
    kinds = [
        ("topics", TOPICS, saved.get("topics") or []),
        ("users", USERS, saved.get("users") or []),
        ("mirrormaker2", r.MIRRORMAKER2S, [mm2] if mm2 else []),
    ]
    for key, resource, objects in kinds:
        for obj in objects:
            body = json.loads(json.dumps(obj))
            meta = body["metadata"]
            meta["namespace"] = target
            meta.pop("ownerReferences", None)  # owners of the source namespace
            meta["annotations"] = {**(meta.get("annotations") or {}), PAUSE: "true"}
            kube.create_or_get(resource, target, body)
            applied[key].append(meta["name"])
    return applied
