"""Kafka credentials named as Kubernetes secrets, read through the REAL kube-apiserver: the
values come back as stored, a missing secret or key and a denied read are one-line usage
errors naming the secret (never a value), and the config's secrets become the exact RBAC
the platform checks. The secured-lab round trip with these secrets is in
test_secured_lab.py."""

from __future__ import annotations

import base64
import time

import pytest

from kasten_bp.config import KubernetesConfig, KubeSecretKey
from kasten_bp.errors import UsageError
from kasten_bp.platforms.kube import resources as k
from kasten_bp.platforms.kube.api import Kube
from kasten_bp.platforms.kube.secrets import KubeSecrets

from .kube_fixture import KubeEnv

pytestmark = [pytest.mark.integration, pytest.mark.kubernetes]

PASSWORD = "kube-secret-password-value"
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def create_secret(kube: Kube, ns: str, name: str, data: dict[str, str]) -> None:
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    kube.create(k.SECRETS, ns, {"metadata": {"name": name}, "type": "Opaque", "data": encoded})


def test_secrets_are_read_through_the_api(kube: Kube, namespace: str) -> None:
    create_secret(kube, namespace, "my-cluster-cluster-ca-cert", {"ca.crt": CA})
    create_secret(kube, namespace, "kasten-bp", {"password": PASSWORD, "sasl.jaas.config": "x"})
    other = f"{namespace}-other"
    kube.create(k.NAMESPACES, None, {"metadata": {"name": other}})
    create_secret(kube, other, "kasten-bp", {"password": "elsewhere"})

    read = KubeSecrets(kube, namespace)
    assert read(KubeSecretKey(name="my-cluster-cluster-ca-cert", key="ca.crt")) == CA.encode()
    assert read(KubeSecretKey(name="kasten-bp", key="password")) == PASSWORD.encode()
    ref = KubeSecretKey(name="kasten-bp", key="password", namespace=other)
    assert read(ref) == b"elsewhere"

    with pytest.raises(UsageError) as info:
        read(KubeSecretKey(name="kasten-bp", key="user.crt"))
    assert str(info.value) == (
        f"Kubernetes secret {namespace}/kasten-bp has no key user.crt "
        "(its keys: password, sasl.jaas.config)"
    )
    with pytest.raises(UsageError) as info:
        read(KubeSecretKey(name="no-such-user", key="password"))
    assert str(info.value) == f"Kubernetes secret {namespace}/no-such-user not found"


def test_a_denied_secret_is_a_one_line_usage_error(
    kube_env: KubeEnv, kube: Kube, namespace: str
) -> None:
    create_secret(kube, namespace, "kasten-bp", {"password": PASSWORD})
    limited = Kube.from_config(
        KubernetesConfig(kubeconfig=kube_env.limited_kubeconfig, namespace=namespace, cluster="x")
    )
    try:
        with pytest.raises(UsageError) as info:
            KubeSecrets(limited, namespace)(KubeSecretKey(name="kasten-bp", key="password"))
        assert str(info.value) == (
            f"forbidden: cannot get secrets in namespace {namespace} (user kasten-bp-limited)"
        )
        assert PASSWORD not in str(info.value)

        # Granted for exactly that secret (as blueprints/rbac.yaml does), it reads it.
        rbac = "rbac.authorization.k8s.io"
        role = k.Resource(rbac, "v1", "roles", "Role")
        binding = k.Resource(rbac, "v1", "rolebindings", "RoleBinding")
        kube.create(
            role,
            namespace,
            {
                "metadata": {"name": "secret-reader"},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["secrets"],
                        "resourceNames": ["kasten-bp"],
                        "verbs": ["get"],
                    }
                ],
            },
        )
        kube.create(
            binding,
            namespace,
            {
                "metadata": {"name": "secret-reader"},
                "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "secret-reader"},
                "subjects": [{"apiGroup": rbac, "kind": "User", "name": "kasten-bp-limited"}],
            },
        )
        ref = KubeSecretKey(name="kasten-bp", key="password")
        deadline = time.monotonic() + 30  # RBAC is served from an informer cache
        while True:
            try:
                assert KubeSecrets(limited, namespace)(ref) == PASSWORD.encode()
                break
            except UsageError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        create_secret(kube, namespace, "another", {"password": "x"})
        with pytest.raises(UsageError, match="forbidden: cannot get secrets"):
            KubeSecrets(limited, namespace)(KubeSecretKey(name="another", key="password"))
    finally:
        limited.close()
