"""The only module that imports the Kubernetes client.

One small REST helper (`Kube`) over the official client's transport: every call names its
verb, resource and namespace, so an error says exactly what was refused:

- 403 -> UsageError "forbidden: cannot patch kafkas.kafka.strimzi.io in namespace kafka
  (user alice)";
- 404 for a resource type the API server does not serve -> UsageError "CRD
  volumesnapshots.snapshot.storage.k8s.io is not installed";
- 404 for an object -> `NotFound` (callers decide whether that is fine);
- 409 -> `Conflict`;
- 429, 5xx and connection errors are retried (tenacity, jittered, bounded by time).

Also: the checks a platform runs before changing anything (CRDs served, RBAC verbs allowed
via SelfSubjectAccessReview) and a `coordination.k8s.io/v1` Lease used as the run lock.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException
from kubernetes.stream import stream
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from kasten_bp.config import KubernetesConfig
from kasten_bp.errors import KastenBpError, UsageError

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 30.0
RETRY_SECONDS = float(os.environ.get("KASTEN_BP_KUBE_RETRY_SECONDS", "60"))
BUILTIN_GROUPS = {
    "",
    "apps",
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
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
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


class NotFound(KastenBpError):
    """The object does not exist (the resource type does)."""


class Conflict(KastenBpError):
    """409: already exists, or the object changed under us (resourceVersion)."""


class _Retriable(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class Access:
    """One thing a platform will do, checked up front with a SelfSubjectAccessReview."""

    verb: str
    resource: Resource
    subresource: str = ""
    cluster_scoped: bool = False


def _retriable(exc: BaseException) -> bool:
    return isinstance(
        exc, _Retriable | urllib3.exceptions.HTTPError | ConnectionError | TimeoutError
    )


_retry = retry(
    retry=retry_if_exception(_retriable),
    wait=wait_exponential_jitter(multiplier=0.2, max=3),
    stop=stop_after_delay(RETRY_SECONDS),
    reraise=True,
)


def now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    """The status condition of type `kind`, if any."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def condition_true(obj: dict[str, Any] | None, kind: str) -> bool:
    cond = condition(obj, kind)
    return cond is not None and cond.get("status") == "True"


def labels_selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def dns_name(*parts: str, limit: int = 253) -> str:
    """A DNS-1123 name from parts: lower case, [a-z0-9-.], trimmed to `limit`."""
    raw = "-".join(p for p in parts if p).lower()
    name = re.sub(r"[^a-z0-9.-]+", "-", raw).strip("-.")
    if len(name) > limit:
        import hashlib

        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        name = name[: limit - 9].rstrip("-.") + "-" + digest
    return name


def label_value(value: str) -> str:
    return dns_name(value, limit=63).replace(".", "-")


class Kube:
    """A typed, error-translating REST helper around one Kubernetes API client."""

    def __init__(self, api_client: Any, describe: str = "") -> None:
        self.api = api_client
        self.describe = describe
        self._user: str | None = None

    # --- construction -------------------------------------------------------------------

    @classmethod
    def from_config(cls, cfg: KubernetesConfig) -> Kube:
        """kubeconfig/context from the config; else $KUBECONFIG or ~/.kube/config; else the
        in-cluster service account (the blueprint's KubeTask pod)."""
        kubeconfig = cfg.kubeconfig or os.environ.get("KUBECONFIG")
        default = os.path.expanduser("~/.kube/config")
        try:
            if kubeconfig or (
                os.path.exists(default) and not os.environ.get("KUBERNETES_SERVICE_HOST")
            ):
                path = os.path.expanduser(kubeconfig or default)
                if not os.path.exists(path):
                    raise UsageError(f"kubeconfig {path} not found (kubernetes.kubeconfig)")
                api = k8s_config.new_client_from_config(config_file=path, context=cfg.context)
                return cls(
                    api, f"kubeconfig {path}" + (f" context {cfg.context}" if cfg.context else "")
                )
            configuration = k8s_client.Configuration()
            k8s_config.load_incluster_config(client_configuration=configuration)
            return cls(k8s_client.ApiClient(configuration), "in-cluster service account")
        except ConfigException as exc:
            raise UsageError(f"cannot configure the Kubernetes client: {exc}") from None

    def close(self) -> None:
        self.api.close()

    # --- the one request function -------------------------------------------------------

    def request(
        self,
        verb: str,
        resource: Resource,
        namespace: str | None = None,
        name: str | None = None,
        *,
        sub: str = "",
        body: Any = None,
        query: Sequence[tuple[str, str]] = (),
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """`verb` is the RBAC verb (get, list, create, patch, update, delete): it names the
        action in errors and picks the HTTP method."""
        method = {
            "get": "GET",
            "list": "GET",
            "create": "POST",
            "patch": "PATCH",
            "update": "PUT",
            "delete": "DELETE",
        }[verb]
        path = resource.path(namespace, name, sub)
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or (
                MERGE_PATCH if verb == "patch" else "application/json"
            )
        status, data = self._send(method, path, headers, body, list(query))
        if 200 <= status < 300:
            return dict(json.loads(data)) if data else {}
        self._raise(status, data, verb, resource, namespace, name, sub)
        raise AssertionError("unreachable")

    @_retry
    def _send(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any,
        query: list[tuple[str, str]],
    ) -> tuple[int, bytes]:
        args = self.api.param_serialize(
            method,
            path,
            query_params=query or None,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*args, _request_timeout=REQUEST_TIMEOUT)
        response.read()
        status = int(response.status)
        data = response.data or b""
        if status == 429 or status >= 500:
            raise _Retriable(f"HTTP {status} from {method} {path}: {data[:200]!r}")
        return status, data

    def _raise(
        self,
        status: int,
        data: bytes,
        verb: str,
        resource: Resource,
        namespace: str | None,
        name: str | None,
        sub: str,
    ) -> None:
        try:
            body = json.loads(data)
        except ValueError:
            body = None
        message = (
            str(body.get("message", ""))
            if isinstance(body, dict)
            else data.decode(errors="replace").strip()
        )
        what = resource.qualified + (f"/{sub}" if sub else "")
        where = f" in namespace {namespace}" if namespace and resource.namespaced else ""
        obj = (
            f"{resource.kind.lower()} {namespace}/{name}"
            if namespace and name
            else f"{resource.kind.lower()} {name}"
        )
        if status == 403:
            user = re.search(r'User "([^"]+)"', message)
            who = user.group(1) if user else self.user()
            raise UsageError(f"forbidden: cannot {verb} {what}{where} (user {who})")
        if status == 404:
            if not isinstance(body, dict) or body.get("kind") != "Status":
                if resource.is_crd:
                    raise UsageError(
                        f"CRD {resource.qualified} is not installed "
                        f"(API {resource.api_version} is not served)"
                    )
                raise UsageError(
                    f"API {resource.api_version} {resource.plural} is not served by the API server"
                )
            raise NotFound(f"{obj} not found" if name else message)
        if status == 409:
            raise Conflict(f"{obj}: {message}")
        raise KastenBpError(
            f"{verb} {what}{where}{' ' + name if name else ''} failed: HTTP {status}: {message}"
        )

    # --- typed helpers ------------------------------------------------------------------

    def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        return self.request("get", resource, namespace, name)

    def get_optional(
        self, resource: Resource, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        try:
            return self.get(resource, namespace, name)
        except NotFound:
            return None

    def find(
        self, resource: Resource, namespace: str | None, labels: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        query = [("labelSelector", labels_selector(labels))] if labels else []
        items = self.request("list", resource, namespace, query=query).get("items") or []
        return [dict(i) for i in items]

    def create(
        self, resource: Resource, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        body = {"apiVersion": resource.api_version, "kind": resource.kind, **body}
        return self.request("create", resource, namespace, body=body)

    def create_or_get(
        self, resource: Resource, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Create; if it exists already (a retried run), return the existing object."""
        try:
            return self.create(resource, namespace, body)
        except Conflict:
            return self.get(resource, namespace, body["metadata"]["name"])

    def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        sub: str = "",
        content_type: str = MERGE_PATCH,
    ) -> dict[str, Any]:
        return self.request(
            "patch", resource, namespace, name, sub=sub, body=body, content_type=content_type
        )

    def replace(
        self, resource: Resource, namespace: str | None, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        return self.request("update", resource, namespace, name, body=body)

    def delete(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        propagation: str | None = None,
        resource_version: str | None = None,
    ) -> bool:
        """Delete; False if it was already gone."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if propagation:
            body["propagationPolicy"] = propagation
        if resource_version:
            body["preconditions"] = {"resourceVersion": resource_version}
        try:
            self.request("delete", resource, namespace, name, body=body)
            return True
        except NotFound:
            return False

    def set_annotation(
        self, resource: Resource, namespace: str, name: str, key: str, value: str | None
    ) -> dict[str, Any]:
        """Set (or with None remove) one annotation."""
        return self.patch(resource, namespace, name, {"metadata": {"annotations": {key: value}}})

    # --- who am I, what may I do ---------------------------------------------------------

    def user(self) -> str:
        if self._user is None:
            try:
                review = self.request(
                    "create",
                    Resource(
                        "authentication.k8s.io",
                        "v1",
                        "selfsubjectreviews",
                        "SelfSubjectReview",
                        False,
                    ),
                    body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                )
                self._user = str(review["status"]["userInfo"]["username"])
            except (KastenBpError, KeyError):
                self._user = "current user"
        return self._user

    def served(self, resource: Resource) -> bool:
        """Whether the API server serves this resource type (the CRD is installed)."""
        root = (
            f"/apis/{resource.group}/{resource.version}"
            if resource.group
            else f"/api/{resource.version}"
        )
        status, data = self._send("GET", root, {"Accept": "application/json"}, None, [])
        if status == 404:
            return False
        if status >= 300:
            raise KastenBpError(f"discovery of {resource.api_version} failed: HTTP {status}")
        return any(r.get("name") == resource.plural for r in json.loads(data).get("resources", []))

    def allowed(self, access: Access, namespace: str) -> bool:
        attrs: dict[str, Any] = {
            "verb": access.verb,
            "group": access.resource.group,
            "resource": access.resource.plural,
        }
        if access.subresource:
            attrs["subresource"] = access.subresource
        if access.resource.namespaced and not access.cluster_scoped:
            attrs["namespace"] = namespace
        review = self.request(
            "create",
            Resource(
                "authorization.k8s.io",
                "v1",
                "selfsubjectaccessreviews",
                "SelfSubjectAccessReview",
                False,
            ),
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attrs},
            },
        )
        return bool(review.get("status", {}).get("allowed"))

    def check(self, needs: Sequence[Access], namespace: str, crds: Sequence[Resource]) -> list[str]:
        """One line per problem, before anything is changed: CRDs first, then RBAC."""
        problems: list[str] = []
        for resource in crds:
            if not self.served(resource):
                problems.append(
                    f"CRD {resource.qualified} is not installed "
                    f"(API {resource.api_version} is not served)"
                )
        for need in needs:
            if need.resource.is_crd and need.resource in crds and not self.served(need.resource):
                continue
            if not self.allowed(need, namespace):
                what = need.resource.qualified + (
                    f"/{need.subresource}" if need.subresource else ""
                )
                where = (
                    f" in namespace {namespace}"
                    if need.resource.namespaced and not need.cluster_scoped
                    else " (cluster-wide)"
                )
                problems.append(f"forbidden: cannot {need.verb} {what}{where} (user {self.user()})")
        return problems

    # --- pods/exec --------------------------------------------------------------------------

    def exec(
        self, namespace: str, pod: str, container: str | None, command: list[str], timeout: float
    ) -> tuple[int | None, str]:
        """Run a command in a pod; (exit code or None if unknown, output). Raises
        ExecUnavailable when the API server cannot reach a kubelet for this pod."""
        core = k8s_client.CoreV1Api(self.api)
        kwargs: dict[str, Any] = {
            "command": command,
            "stderr": True,
            "stdout": True,
            "stdin": False,
            "tty": False,
            "_preload_content": False,
        }
        if container:
            kwargs["container"] = container
        try:
            resp = stream(core.connect_get_namespaced_pod_exec, pod, namespace, **kwargs)
        except k8s_client.ApiException as exc:
            raw = f"{exc.status} {exc.reason} {exc.body or ''}"
            found = re.search(r'"message":"([^"]*)"', raw)
            text = found.group(1) if found else raw.strip().splitlines()[0][:200]
            if exc.status == 403:
                raise UsageError(
                    f"forbidden: cannot create pods/exec in namespace {namespace} "
                    f"(user {self.user()})"
                ) from None
            raise ExecUnavailable(f"pod {namespace}/{pod}: exec unavailable: {text}") from None
        except Exception as exc:  # noqa: BLE001 - websocket handshake errors vary by version
            text = str(exc)
            found = re.search(r'"message":"([^"]*)"', text)
            reason = found.group(1) if found else text.splitlines()[0][:200]
            raise ExecUnavailable(f"pod {namespace}/{pod}: exec unavailable: {reason}") from None
        output: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            while resp.is_open() and time.monotonic() < deadline:
                resp.update(timeout=1)
                if resp.peek_stdout():
                    output.append(resp.read_stdout())
                if resp.peek_stderr():
                    output.append(resp.read_stderr())
            if resp.is_open():
                raise KastenBpError(
                    f"pod {namespace}/{pod}: `{' '.join(command)}` did not finish "
                    f"within {timeout:.0f}s"
                )
            return resp.returncode, "".join(output)
        finally:
            resp.close()


class ExecUnavailable(KastenBpError):
    """The API server could not open an exec stream (no kubelet reachable for the pod)."""


# --- the run lock: a Lease ------------------------------------------------------------------


def holder_identity(owner: str) -> str:
    """Unique per acquisition: two runs in one process must not share the lock."""
    return f"{owner} ({socket.gethostname()} pid {os.getpid()} {uuid.uuid4().hex[:6]})"


@contextmanager
def lease_lock(
    kube: Kube,
    namespace: str,
    name: str,
    owner: str,
    duration_seconds: int = 60,
) -> Iterator[None]:
    """Hold the Lease `namespace/name` while the body runs, renewing it in the background.

    A live lease held by someone else -> UsageError (exit 2). An expired one (its holder
    died without releasing it) is taken over. Released (holder cleared) on exit.
    """
    identity = holder_identity(owner)
    lease = _acquire(kube, namespace, name, identity, duration_seconds)
    stop = threading.Event()
    lost: list[str] = []

    def renew() -> None:
        current = lease
        while not stop.wait(max(1.0, duration_seconds / 3)):
            try:
                current["spec"]["renewTime"] = now_micro()
                current = kube.replace(LEASES, namespace, name, current)
            except KastenBpError as exc:
                log.warning("lease %s/%s: renewal failed: %s", namespace, name, exc)
                try:
                    fresh = kube.get(LEASES, namespace, name)
                except KastenBpError:
                    continue
                if fresh.get("spec", {}).get("holderIdentity") != identity:
                    lost.append(str(fresh.get("spec", {}).get("holderIdentity")))
                    return
                current = fresh

    thread = threading.Thread(target=renew, name=f"lease-{name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=REQUEST_TIMEOUT)
        _release(kube, namespace, name, identity)
        if lost:
            log.warning("lease %s/%s was taken over by %s during the run", namespace, name, lost[0])


def _acquire(kube: Kube, namespace: str, name: str, identity: str, duration: int) -> dict[str, Any]:
    now = now_micro()
    spec = {
        "holderIdentity": identity,
        "leaseDurationSeconds": duration,
        "acquireTime": now,
        "renewTime": now,
    }
    existing = kube.get_optional(LEASES, namespace, name)
    if existing is None:
        try:
            return kube.create(LEASES, namespace, {"metadata": {"name": name}, "spec": spec})
        except Conflict:
            existing = kube.get(LEASES, namespace, name)
    current = existing.get("spec") or {}
    holder = current.get("holderIdentity")
    renewed = parse_time(current.get("renewTime")) or parse_time(current.get("acquireTime")) or 0.0
    expires = renewed + float(current.get("leaseDurationSeconds") or 0)
    if holder and holder != identity and expires > time.time():
        until = datetime.fromtimestamp(expires, UTC).strftime("%H:%M:%SZ")
        raise UsageError(
            f"lease {namespace}/{name} is held by {holder} (renewed until {until}): another "
            f"kasten-bp run is in progress against this cluster; wait for it or check "
            f"`kasten-bp status`"
        )
    if holder and holder != identity:
        log.warning("lease %s/%s: taking over the expired lease of %s", namespace, name, holder)
    existing["spec"] = {
        **current,
        **spec,
        "leaseTransitions": int(current.get("leaseTransitions") or 0) + 1,
    }
    try:
        return kube.replace(LEASES, namespace, name, existing)
    except Conflict:
        raise UsageError(
            f"lease {namespace}/{name} was taken by another kasten-bp run at the same moment"
        ) from None


def _release(kube: Kube, namespace: str, name: str, identity: str) -> None:
    try:
        lease = kube.get(LEASES, namespace, name)
        if (lease.get("spec") or {}).get("holderIdentity") != identity:
            return
        lease["spec"]["holderIdentity"] = None
        lease["spec"]["leaseDurationSeconds"] = 1
        kube.replace(LEASES, namespace, name, lease)
    except KastenBpError as exc:
        log.warning("lease %s/%s: release failed (it expires by itself): %s", namespace, name, exc)


# --- volumes: CSI snapshots of PVCs, and PVCs restored from them -----------------------------

BACKUP_LABEL = "kasten-bp.io/backup-id"
BACKUP_ANNOTATION = "kasten-bp.io/backup-id"
GROUP_MEMBER_LABEL = "groupsnapshot.storage.k8s.io/volumeGroupSnapshotName"
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


@dataclass
class Volume:
    """A broker PVC to snapshot, with where it belongs."""

    pvc: dict[str, Any]
    broker_id: int
    details: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.pvc["metadata"]["name"])


def pvc_template(pvc: dict[str, Any], keep_labels: Sequence[str] = ()) -> dict[str, Any]:
    """What a restored PVC needs of the original."""
    spec = pvc.get("spec") or {}
    labels = {
        k: v
        for k, v in ((pvc.get("metadata") or {}).get("labels") or {}).items()
        if k in keep_labels
    }
    return {
        "labels": labels,
        "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
        "storageClassName": spec.get("storageClassName"),
        "volumeMode": spec.get("volumeMode") or "Filesystem",
        "storage": ((spec.get("resources") or {}).get("requests") or {}).get("storage"),
    }


def _snapshot_error(vs: dict[str, Any]) -> str | None:
    error = (vs.get("status") or {}).get("error") or {}
    return str(error["message"]) if error.get("message") else None


def snapshot_volumes(
    kube: Kube,
    namespace: str,
    volumes: Sequence[Volume],
    backup_id: str,
    snapshot_class: str | None,
    timeout: float,
    extra_labels: dict[str, str],
) -> list[dict[str, Any]]:
    """One VolumeSnapshot per PVC; wait until all are readyToUse, failing at once on a
    reported error. Returns, per volume, the details to record in the manifest."""
    from kasten_bp.waiting import StopWaiting, announce, wait_for

    labels = {BACKUP_LABEL: label_value(backup_id), **extra_labels}
    names = {}
    for vol in volumes:
        name = dns_name(backup_id, vol.name)
        spec: dict[str, Any] = {"source": {"persistentVolumeClaimName": vol.name}}
        if snapshot_class:
            spec["volumeSnapshotClassName"] = snapshot_class
        body = {
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {BACKUP_ANNOTATION: backup_id},
            },
            "spec": spec,
        }
        kube.create_or_get(SNAPSHOTS, namespace, body)
        announce(f"created volumesnapshot {namespace}/{name} of pvc {namespace}/{vol.name}")
        names[vol.name] = name

    def all_ready() -> dict[str, dict[str, Any]] | None:
        got = {}
        for pvc, name in names.items():
            vs = kube.get(SNAPSHOTS, namespace, name)
            error = _snapshot_error(vs)
            if error:
                raise StopWaiting(f"volumesnapshot {namespace}/{name} of pvc {pvc} failed: {error}")
            if not (vs.get("status") or {}).get("readyToUse"):
                return None
            got[pvc] = vs
        return got

    ready = wait_for(
        f"{len(names)} volumesnapshots in {namespace} to be readyToUse", all_ready, timeout
    )
    return [_snapshot_details(kube, namespace, vol, ready[vol.name]) for vol in volumes]


def _snapshot_details(
    kube: Kube, namespace: str, vol: Volume, vs: dict[str, Any]
) -> dict[str, Any]:
    status = vs.get("status") or {}
    content_name = status.get("boundVolumeSnapshotContentName")
    content = kube.get_optional(SNAPSHOT_CONTENTS, None, content_name) if content_name else None
    cstatus = (content or {}).get("status") or {}
    cspec = (content or {}).get("spec") or {}
    restore_size = status.get("restoreSize") or cstatus.get("restoreSize")
    return {
        **vol.details,
        "kind": "VolumeSnapshot",
        "namespace": namespace,
        "snapshot": vs["metadata"]["name"],
        "pvc": vol.name,
        "restoreSize": str(restore_size) if restore_size is not None else None,
        "restore_bytes": parse_quantity(restore_size),
        "boundVolumeSnapshotContentName": content_name,
        "snapshotHandle": cstatus.get("snapshotHandle"),
        "driver": cspec.get("driver"),
        "volumeSnapshotClassName": (vs.get("spec") or {}).get("volumeSnapshotClassName")
        or cspec.get("volumeSnapshotClassName"),
        "creationTime": status.get("creationTime"),
    }


def group_snapshot(
    kube: Kube,
    namespace: str,
    volumes: Sequence[Volume],
    selector: dict[str, str],
    backup_id: str,
    group_class: str,
    timeout: float,
    extra_labels: dict[str, str],
) -> list[dict[str, Any]]:
    """One VolumeGroupSnapshot over the PVCs matching `selector` (crash-consistent across
    them); member VolumeSnapshots are mapped back to PVCs through their contents' volume
    handles and the PVs (v1beta2 no longer lists PVC -> snapshot pairs in the status)."""
    from kasten_bp.waiting import StopWaiting, announce, wait_for

    name = dns_name(backup_id, "group")
    body = {
        "metadata": {
            "name": name,
            "labels": {BACKUP_LABEL: label_value(backup_id), **extra_labels},
            "annotations": {BACKUP_ANNOTATION: backup_id},
        },
        "spec": {
            "volumeGroupSnapshotClassName": group_class,
            "source": {"selector": {"matchLabels": selector}},
        },
    }
    kube.create_or_get(GROUP_SNAPSHOTS, namespace, body)
    announce(f"created volumegroupsnapshot {namespace}/{name} of pvcs {labels_selector(selector)}")

    def ready() -> dict[str, Any] | None:
        vgs = kube.get(GROUP_SNAPSHOTS, namespace, name)
        error = _snapshot_error(vgs)
        if error:
            raise StopWaiting(f"volumegroupsnapshot {namespace}/{name} failed: {error}")
        return vgs if (vgs.get("status") or {}).get("readyToUse") else None

    vgs = wait_for(f"volumegroupsnapshot {namespace}/{name} to be readyToUse", ready, timeout)
    uid = vgs["metadata"]["uid"]
    by_pvc: dict[str, dict[str, Any]] = {}
    for pair in (vgs.get("status") or {}).get("pvcVolumeSnapshotRefList") or []:  # v1beta1
        pvc = (pair.get("persistentVolumeClaimRef") or {}).get("name")
        snap = (pair.get("volumeSnapshotRef") or {}).get("name")
        if pvc and snap:
            by_pvc[pvc] = kube.get(SNAPSHOTS, namespace, snap)
    if not by_pvc:
        members = [
            vs
            for vs in kube.find(SNAPSHOTS, namespace)
            if any(o.get("uid") == uid for o in vs["metadata"].get("ownerReferences") or [])
        ]
        handle_to_pvc = {}
        for vol in volumes:
            pv_name = (vol.pvc.get("spec") or {}).get("volumeName")
            pv = kube.get_optional(PVS, None, pv_name) if pv_name else None
            handle = (((pv or {}).get("spec") or {}).get("csi") or {}).get("volumeHandle")
            if handle:
                handle_to_pvc[handle] = vol.name
        # v1beta2 lists (volumeHandle, snapshotHandle) per member on the group content;
        # v1beta1 called it volumeSnapshotHandlePairList.
        snap_to_volume: dict[str, str] = {}
        gcontent_name = (vgs.get("status") or {}).get("boundVolumeGroupSnapshotContentName")
        gcontent = (
            kube.get_optional(GROUP_SNAPSHOT_CONTENTS, None, gcontent_name)
            if gcontent_name
            else None
        )
        gstatus = (gcontent or {}).get("status") or {}
        for info in (gstatus.get("volumeSnapshotInfoList") or []) + (
            gstatus.get("volumeSnapshotHandlePairList") or []
        ):
            if info.get("snapshotHandle") and info.get("volumeHandle"):
                snap_to_volume[info["snapshotHandle"]] = info["volumeHandle"]
        for vs in members:
            content_name = (vs.get("status") or {}).get("boundVolumeSnapshotContentName")
            content = (
                kube.get_optional(SNAPSHOT_CONTENTS, None, content_name) if content_name else None
            )
            content = content or {}
            handle = ((content.get("spec") or {}).get("source") or {}).get("volumeHandle")
            if not handle:
                snap_handle = (content.get("status") or {}).get("snapshotHandle") or (
                    (content.get("spec") or {}).get("source") or {}
                ).get("snapshotHandle")
                handle = snap_to_volume.get(snap_handle or "")
            if handle in handle_to_pvc:
                by_pvc[handle_to_pvc[handle]] = vs
    missing = [v.name for v in volumes if v.name not in by_pvc]
    if missing:
        raise KastenBpError(
            f"volumegroupsnapshot {namespace}/{name} is ready but holds no snapshot of pvcs "
            f"{missing} (do their labels match {labels_selector(selector)}?)"
        )
    out = []
    for vol in volumes:
        details = _snapshot_details(kube, namespace, vol, by_pvc[vol.name])
        details["group_snapshot"] = name
        details["boundVolumeGroupSnapshotContentName"] = (vgs.get("status") or {}).get(
            "boundVolumeGroupSnapshotContentName"
        )
        out.append(details)
    return out


def delete_backup_snapshots(kube: Kube, namespace: str, backup_id: str) -> list[str]:
    """Delete the backup's VolumeGroupSnapshots and VolumeSnapshots (idempotent)."""
    labels = {BACKUP_LABEL: label_value(backup_id)}
    deleted = []
    for resource in (GROUP_SNAPSHOTS, SNAPSHOTS):
        try:
            items = kube.find(resource, namespace, labels)
        except UsageError:
            if resource is GROUP_SNAPSHOTS:
                continue  # group snapshots not installed: there are none to delete
            raise
        for item in items:
            if (item["metadata"].get("annotations") or {}).get(BACKUP_ANNOTATION) not in (
                None,
                backup_id,
            ):
                continue
            if kube.delete(resource, namespace, item["metadata"]["name"]):
                deleted.append(f"{resource.kind.lower()} {namespace}/{item['metadata']['name']}")
    return deleted


def restore_pvcs(
    kube: Kube,
    target_namespace: str,
    backup_id: str,
    refs: Sequence[dict[str, Any]],
    timeout: float,
) -> list[str]:
    """PVCs named as the originals, in `target_namespace`, each with a VolumeSnapshot
    `dataSource`. A snapshot in another namespace is made available there the way CSI
    supports it: a pre-provisioned VolumeSnapshotContent (same snapshotHandle, Retain)
    bound to a new VolumeSnapshot in the target namespace."""
    from kasten_bp.waiting import StopWaiting, wait_for

    if kube.get_optional(NAMESPACES, None, target_namespace) is None:
        raise UsageError(f"namespace {target_namespace} does not exist: create it first")
    labels = {BACKUP_LABEL: label_value(backup_id)}
    snapshots: dict[str, str] = {}
    for d in refs:
        if d.get("namespace") == target_namespace:
            snapshots[d["pvc"]] = d["snapshot"]
            continue
        if not d.get("snapshotHandle") or not d.get("driver"):
            raise UsageError(
                f"snapshot {d.get('namespace')}/{d.get('snapshot')} of pvc {d.get('pvc')} has no "
                f"recorded snapshotHandle/driver: cannot restore it into {target_namespace}"
            )
        vs_name = dns_name("restore", backup_id, d["pvc"])
        content_name = dns_name("kasten-bp", target_namespace, vs_name)
        content_spec: dict[str, Any] = {
            "deletionPolicy": "Retain",
            "driver": d["driver"],
            "source": {"snapshotHandle": d["snapshotHandle"]},
            "volumeSnapshotRef": {"name": vs_name, "namespace": target_namespace},
        }
        if d.get("volumeSnapshotClassName"):
            content_spec["volumeSnapshotClassName"] = d["volumeSnapshotClassName"]
        kube.create_or_get(
            SNAPSHOT_CONTENTS,
            None,
            {"metadata": {"name": content_name, "labels": labels}, "spec": content_spec},
        )
        vs_spec: dict[str, Any] = {"source": {"volumeSnapshotContentName": content_name}}
        if d.get("volumeSnapshotClassName"):
            vs_spec["volumeSnapshotClassName"] = d["volumeSnapshotClassName"]
        kube.create_or_get(
            SNAPSHOTS,
            target_namespace,
            {
                "metadata": {
                    "name": vs_name,
                    "labels": labels,
                    "annotations": {BACKUP_ANNOTATION: backup_id},
                },
                "spec": vs_spec,
            },
        )
        snapshots[d["pvc"]] = vs_name

    def ready() -> bool:
        for pvc, name in snapshots.items():
            vs = kube.get(SNAPSHOTS, target_namespace, name)
            error = _snapshot_error(vs)
            if error:
                raise StopWaiting(
                    f"volumesnapshot {target_namespace}/{name} (for pvc {pvc}) failed: {error}"
                )
            if not (vs.get("status") or {}).get("readyToUse"):
                return False
        return True

    wait_for(
        f"{len(snapshots)} volumesnapshots in {target_namespace} to be readyToUse", ready, timeout
    )
    created = []
    for d in refs:
        template = d.get("pvc_template") or {}
        size = max(parse_quantity(template.get("storage")), int(d.get("restore_bytes") or 0))
        spec: dict[str, Any] = {
            "accessModes": template.get("accessModes") or ["ReadWriteOnce"],
            "volumeMode": template.get("volumeMode") or "Filesystem",
            "resources": {"requests": {"storage": str(size) if size else "1Gi"}},
            "dataSource": {
                "apiGroup": "snapshot.storage.k8s.io",
                "kind": "VolumeSnapshot",
                "name": snapshots[d["pvc"]],
            },
        }
        if template.get("storageClassName"):
            spec["storageClassName"] = template["storageClassName"]
        body = {
            "metadata": {
                "name": d["pvc"],
                "labels": {**(template.get("labels") or {}), **labels},
                "annotations": {BACKUP_ANNOTATION: backup_id},
            },
            "spec": spec,
        }
        existing = kube.get_optional(PVCS, target_namespace, d["pvc"])
        if existing is None:
            kube.create(PVCS, target_namespace, body)
        elif ((existing.get("spec") or {}).get("dataSource") or {}).get("name") != snapshots[
            d["pvc"]
        ]:
            raise UsageError(
                f"pvc {target_namespace}/{d['pvc']} already exists and was not restored from "
                f"backup {backup_id}: choose another restore namespace or delete it"
            )
        created.append(f"{target_namespace}/{d['pvc']}")
    return created
