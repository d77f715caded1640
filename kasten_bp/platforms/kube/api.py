"""The Kubernetes REST helper: the only module that talks to the API server.

`Kube` works over the official client's transport: every call names its verb, resource and
namespace, so an error says exactly what was refused:

- 403 -> UsageError "forbidden: cannot patch kafkas.kafka.strimzi.io in namespace kafka
  (user alice)";
- 404 for a resource type the API server does not serve -> UsageError "CRD
  volumesnapshots.snapshot.storage.k8s.io is not installed";
- 404 for an object -> `NotFound` (callers decide whether that is fine);
- 409 -> `Conflict`;
- 429, 5xx and connection errors are temporary (`transience.is_temporary`) and retried
  (tenacity, jittered, bounded by time).

Also the checks a platform runs before changing anything: CRDs served, RBAC verbs allowed
(SelfSubjectAccessReview).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Sequence
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential_jitter

from kasten_bp.config import KubernetesConfig
from kasten_bp.errors import KastenBpError, TemporaryError, UsageError
from kasten_bp.platforms.kube.resources import (
    MERGE_PATCH,
    Access,
    Resource,
    labels_selector,
)
from kasten_bp.transience import is_temporary, temporary_http_status
from kasten_bp.waiting import time_left

REQUEST_TIMEOUT = 30.0
# A request inside a wait that is about to end still gets this long.
MIN_REQUEST_SECONDS = 2.0
RETRY_SECONDS = float(os.environ.get("KASTEN_BP_KUBE_RETRY_SECONDS", "60"))


class NotFound(KastenBpError):
    """The object does not exist (the resource type does)."""


class Conflict(KastenBpError):
    """409: already exists, or the object changed under us (resourceVersion)."""


_retry = retry(
    retry=retry_if_exception(is_temporary),
    wait=wait_exponential_jitter(multiplier=0.2, max=3),
    stop=stop_after_delay(RETRY_SECONDS),
    reraise=True,
)


class Kube:
    """A typed, error-translating REST helper around one Kubernetes API client."""

    def __init__(self, api_client: Any, describe: str = "") -> None:
        self.api = api_client
        self.describe = describe
        self._user: str | None = None
        self._timeout = REQUEST_TIMEOUT
        self._retrying = True

    def bounded(self, seconds: float) -> Kube:
        """This client with each request tried once, bounded by `seconds` end to end: a
        Lease renewal must fail in time, not retry past the Lease."""
        other = copy.copy(self)
        other._timeout = seconds
        other._retrying = False
        return other

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
        left = time_left()
        if left is not None and self._retrying:
            # Inside a wait: one try, bounded by the time the wait has left; the wait
            # itself tries again (a retry here could outlast it).
            bounded = self.bounded(min(self._timeout, max(MIN_REQUEST_SECONDS, left)))
            status, data = bounded._send_once(method, path, headers, body, list(query))
        else:
            send = self._send if self._retrying else self._send_once
            status, data = send(method, path, headers, body, list(query))
        if 200 <= status < 300:
            return dict(json.loads(data)) if data else {}
        self._raise(status, data, verb, resource, namespace, name, sub)
        raise AssertionError("unreachable")

    def _send_once(
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
        # (connect, read): together within the bound.
        timeout = (self._timeout / 2, self._timeout / 2)
        response = self.api.call_api(*args, _request_timeout=timeout)
        response.read()
        status = int(response.status)
        data = response.data or b""
        # Kubernetes answers 409 for a conflict (exists, changed), which waiting cannot fix.
        if status != 409 and temporary_http_status(status):
            raise TemporaryError(f"HTTP {status} from {method} {path}: {data[:200]!r}")
        return status, data

    _send = _retry(_send_once)

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
        if access.name:
            attrs["name"] = access.name
        if access.resource.namespaced:
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
                where = (
                    f" in namespace {namespace}" if need.resource.namespaced else " (cluster-wide)"
                )
                problems.append(f"forbidden: cannot {need}{where} (user {self.user()})")
        return problems
