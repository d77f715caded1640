"""The resource catalogue: the Kubernetes types the platforms touch, how to name them in
paths and messages, and the small value formats they share (conditions, DNS names, label
selectors, quantities)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from kasten_bp.errors import KastenBpError

BUILTIN_GROUPS = {
    "",
    "apps",
    "batch",
    "coordination.k8s.io",
    "authorization.k8s.io",
    "authentication.k8s.io",
}


@dataclass(frozen=True)
class Resource:
    """A resource type: enough to build its paths and to name it in messages."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def qualified(self) -> str:
        """`kafkas.kafka.strimzi.io`, or `pods` for the core group (as kubectl spells it)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def is_crd(self) -> bool:
        return self.group not in BUILTIN_GROUPS

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            root += f"/namespaces/{namespace}"
        root += f"/{self.plural}"
        if name:
            root += f"/{name}"
        if sub:
            root += f"/{sub}"
        return root


PODS = Resource("", "v1", "pods", "Pod")
PVCS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
PVS = Resource("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False)
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
JOBS = Resource("batch", "v1", "jobs", "Job")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
KAFKAS = Resource("kafka.strimzi.io", "v1beta2", "kafkas", "Kafka")
NODE_POOLS = Resource("kafka.strimzi.io", "v1beta2", "kafkanodepools", "KafkaNodePool")
MIRRORMAKER2S = Resource("kafka.strimzi.io", "v1beta2", "kafkamirrormaker2s", "KafkaMirrorMaker2")
PODSETS = Resource("core.strimzi.io", "v1beta2", "strimzipodsets", "StrimziPodSet")
SNAPSHOTS = Resource("snapshot.storage.k8s.io", "v1", "volumesnapshots", "VolumeSnapshot")
SNAPSHOT_CONTENTS = Resource(
    "snapshot.storage.k8s.io", "v1", "volumesnapshotcontents", "VolumeSnapshotContent", False
)
SNAPSHOT_CLASSES = Resource(
    "snapshot.storage.k8s.io", "v1", "volumesnapshotclasses", "VolumeSnapshotClass", False
)
GROUP_SNAPSHOTS = Resource(
    "groupsnapshot.storage.k8s.io", "v1beta2", "volumegroupsnapshots", "VolumeGroupSnapshot"
)
GROUP_SNAPSHOT_CONTENTS = Resource(
    "groupsnapshot.storage.k8s.io",
    "v1beta2",
    "volumegroupsnapshotcontents",
    "VolumeGroupSnapshotContent",
    False,
)
GROUP_SNAPSHOT_CLASSES = Resource(
    "groupsnapshot.storage.k8s.io",
    "v1beta2",
    "volumegroupsnapshotclasses",
    "VolumeGroupSnapshotClass",
    False,
)

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True)
class Access:
    """One thing a platform will do, checked up front with a SelfSubjectAccessReview."""

    verb: str
    resource: Resource
    subresource: str = ""
    name: str = ""  # one object only (an RBAC rule's resourceNames), e.g. a secret

    def __str__(self) -> str:
        sub = f"/{self.subresource}" if self.subresource else ""
        named = f" {self.name}" if self.name else ""
        return f"{self.verb} {self.resource.qualified}{sub}{named}"


def access(resource: Resource, *verbs: str, sub: str = "", name: str = "") -> list[Access]:
    return [Access(verb, resource, sub, name) for verb in verbs]


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    """The status condition of type `kind`, if any."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def condition_true(obj: dict[str, Any] | None, kind: str) -> bool:
    cond = condition(obj, kind)
    return cond is not None and cond.get("status") == "True"


def pod_ready(pod: dict[str, Any]) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and condition_true(pod, "Ready")


def labels_selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def dns_name(*parts: str, limit: int = 253) -> str:
    """A DNS-1123 name from parts: lower case, [a-z0-9-.], trimmed to `limit`."""
    raw = "-".join(p for p in parts if p).lower()
    name = re.sub(r"[^a-z0-9.-]+", "-", raw).strip("-.")
    if len(name) > limit:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        name = name[: limit - 9].rstrip("-.") + "-" + digest
    return name


def label_value(value: str) -> str:
    return dns_name(value, limit=63).replace(".", "-")


_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
}


def parse_quantity(value: Any) -> int:
    """A Kubernetes quantity ("10Gi", "500M", 1073741824) in bytes; 0 if absent."""
    if value is None or value == "":
        return 0
    if isinstance(value, int | float):
        return int(value)
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value).strip())
    if not match or match.group(2) not in _UNITS:
        raise KastenBpError(f"cannot parse quantity {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2)])
