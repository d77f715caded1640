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
    wait=wait_exponential_jitter(initial=0.2, max=3),
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
                        f"CRD {resource.qualified} is not installed (API {resource.api_version} is not served)"
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

    def list(
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
                    f"CRD {resource.qualified} is not installed (API {resource.api_version} is not served)"
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
            text = f"{exc.status} {exc.reason} {exc.body or ''}".strip()
            if exc.status == 403:
                raise UsageError(
                    f"forbidden: cannot create pods/exec in namespace {namespace} (user {self.user()})"
                ) from None
            raise ExecUnavailable(f"pod {namespace}/{pod}: exec unavailable: {text}") from None
        except Exception as exc:  # noqa: BLE001 - websocket handshake errors vary by version
            raise ExecUnavailable(f"pod {namespace}/{pod}: exec unavailable: {exc}") from None
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
                    f"pod {namespace}/{pod}: `{' '.join(command)}` did not finish within {timeout:.0f}s"
                )
            return resp.returncode, "".join(output)
        finally:
            resp.close()


class ExecUnavailable(KastenBpError):
    """The API server could not open an exec stream (no kubelet reachable for the pod)."""


# --- the run lock: a Lease ------------------------------------------------------------------


def holder_identity(owner: str) -> str:
    return f"{owner} ({socket.gethostname()} pid {os.getpid()})"


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
