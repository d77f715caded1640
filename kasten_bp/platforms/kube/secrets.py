"""The Kafka credentials a config names as Kubernetes secrets (Strimzi's cluster CA secret,
a KafkaUser's secret), read through the API at run time.

Values are returned to the client being built and kept in memory for this process only (one
GET per secret); never written to a file, a journal or a message. RBAC: `get` on exactly
those secrets (`secret_access`, granted by blueprints/rbac.yaml with resourceNames).
"""

from __future__ import annotations

import base64
import binascii

from kasten_bp.config import Config, KubernetesConfig, KubeSecretKey
from kasten_bp.errors import UsageError
from kasten_bp.platforms.kube import resources as r
from kasten_bp.platforms.kube.api import Kube, NotFound


class KubeSecrets:
    """A KubeSecretReader (see kasten_bp.config.use_kube_secret_reader) over one API client."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self._data: dict[tuple[str, str], dict[str, str]] = {}

    @classmethod
    def from_config(cls, cfg: KubernetesConfig) -> KubeSecrets:
        return cls(Kube.from_config(cfg), cfg.namespace)

    def __call__(self, ref: KubeSecretKey) -> bytes:
        namespace = ref.namespace or self.namespace
        data = self._secret_data(namespace, ref.name)
        if ref.key not in data:
            keys = ", ".join(sorted(data)) or "none"
            raise UsageError(
                f"Kubernetes secret {namespace}/{ref.name} has no key {ref.key} (its keys: {keys})"
            )
        try:
            return base64.b64decode(data[ref.key], validate=True)
        except (binascii.Error, ValueError):
            raise UsageError(
                f"Kubernetes secret {namespace}/{ref.name} key {ref.key} is not base64"
            ) from None

    def _secret_data(self, namespace: str, name: str) -> dict[str, str]:
        cached = self._data.get((namespace, name))
        if cached is not None:
            return cached
        try:
            secret = self.kube.get(r.SECRETS, namespace, name)
        except NotFound:
            raise UsageError(f"Kubernetes secret {namespace}/{name} not found") from None
        data = {str(k): str(v) for k, v in (secret.get("data") or {}).items()}
        self._data[(namespace, name)] = data
        return data


def secret_access(config: Config, namespace: str) -> list[r.Access]:
    """`get` on each secret the config names in `namespace` (its RBAC resourceNames)."""
    names = sorted(
        {ref.name for _, ref in config.kube_secret_refs() if ref.namespace in (None, namespace)}
    )
    return [a for name in names for a in r.access(r.SECRETS, "get", name=name)]
