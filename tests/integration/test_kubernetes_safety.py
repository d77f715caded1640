"""RBAC denials, a missing CRD and the Lease lock: reported in one line, exit 2, nothing
changed — against the REAL kube-apiserver (its RBAC, its discovery)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kasten_bp.backup import Backups
from kasten_bp.config import Config, KafkaEndpoint, KubeSecretKey, SaslConfig, SslConfig
from kasten_bp.errors import UsageError
from kasten_bp.platforms.kube import resources as k
from kasten_bp.platforms.kube.api import Kube
from kasten_bp.platforms.kube.platform import KubePlatform
from kasten_bp.platforms.statefulset import StatefulSetPlatform
from kasten_bp.platforms.strimzi import PAUSE, StrimziPlatform

from .helpers import LabHandle
from .kube_fixture import (
    GROUP_CLASS,
    ROOT,
    SNAPSHOT_CLASS,
    KubeEnv,
    create_strimzi_cluster,
    make_config,
    start_simulators,
    wait_strimzi_ready,
)

pytestmark = [pytest.mark.integration, pytest.mark.kubernetes]
LIMITED = "kasten-bp-limited"


def limited_config(
    kube_env: KubeEnv, lab: LabHandle, tmp_path: Path, namespace: str, **fields: Any
) -> Config:
    """Platform strimzi for cluster `mirror`, run as the limited user (no RBAC of its own)."""
    return make_config(
        kube_env,
        lab.config,
        tmp_path / "c",
        "strimzi",
        namespace,
        "mirror",
        limited=True,
        snapshot_class=SNAPSHOT_CLASS,
        **fields,
    )


def test_rbac_denied_is_one_line_exit_2_and_nothing_changes(
    kube_env: KubeEnv, kube: Kube, namespace: str, lab: LabHandle, tmp_path: Path
) -> None:
    create_strimzi_cluster(kube, namespace, mirrormaker=None)
    config = limited_config(kube_env, lab, tmp_path, namespace)
    with pytest.raises(UsageError) as err:
        Backups(config).backup("consistent")
    assert err.value.exit_code == 2
    assert str(err.value) == (
        "forbidden: cannot get leases.coordination.k8s.io "
        f"in namespace {namespace} (user {LIMITED})"
    )
    # With the lock allowed but not the rest, preflight names each missing permission.
    kube.create(
        k.Resource("rbac.authorization.k8s.io", "v1", "roles", "Role"),
        namespace,
        {
            "metadata": {"name": "lease-only"},
            "rules": [
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "verbs": ["get", "create", "update"],
                },
                {"apiGroups": ["kafka.strimzi.io"], "resources": ["kafkas"], "verbs": ["get"]},
            ],
        },
    )
    kube.create(
        k.Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
        namespace,
        {
            "metadata": {"name": "lease-only"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "lease-only",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": LIMITED}
            ],
        },
    )
    time.sleep(1)  # RBAC is served from an informer cache
    problems = StrimziPlatform(config).preflight()
    assert (
        f"forbidden: cannot patch kafkas.kafka.strimzi.io in namespace {namespace} (user {LIMITED})"
        in problems
    )
    assert (
        f"forbidden: cannot create pods/exec in namespace {namespace} (user {LIMITED})" in problems
    )
    assert not any("leases" in p or "cannot get kafkas" in p for p in problems)
    kube.delete(k.LEASES, namespace, "kasten-bp-mirror")  # the lock held for the attempt
    with pytest.raises(UsageError) as err:
        Backups(config).backup("consistent")
    assert err.value.exit_code == 2
    assert str(err.value).startswith("forbidden: cannot ") or str(err.value).startswith(
        "preflight failed: forbidden: cannot "
    )
    assert f"in namespace {namespace} (user {LIMITED})" in str(err.value)
    kafka = kube.get(k.KAFKAS, namespace, "mirror")
    assert PAUSE not in (kafka["metadata"].get("annotations") or {})
    assert kube.find(k.SNAPSHOTS, namespace) == []


# (scope, API group, resource[/subresource], verb, resource name or "" for any)
Grant = tuple[str, str, str, str, str]


def platforms(kube_env: KubeEnv, lab: LabHandle, tmp_path: Path, ns: str) -> list[KubePlatform]:
    """Every platform in every configuration that changes what it needs."""
    out: list[KubePlatform] = []
    for cls in (StrimziPlatform, StatefulSetPlatform):
        for group in (None, GROUP_CLASS):
            config = make_config(
                kube_env,
                lab.config,
                tmp_path / "c",
                cls.name,
                ns,
                "mirror",
                limited=True,
                snapshot_class=SNAPSHOT_CLASS,
                group_snapshot_class=group,
                mirrormaker="mm2",
            )
            out.append(cls(config))
    # A secured primary named by the secrets blueprints/rbac.yaml grants (a Strimzi cluster
    # CA secret and a KafkaUser secret).
    secured = out[0].config.model_copy(update={"primary": SECURED_BY_SECRETS})
    out.append(StrimziPlatform(secured))
    return out


SECURED_BY_SECRETS = KafkaEndpoint(
    bootstrap="my-cluster-kafka-bootstrap:9093",
    security_protocol="SASL_SSL",
    ssl=SslConfig(ca_secret_ref=KubeSecretKey(name="my-cluster-cluster-ca-cert", key="ca.crt")),
    sasl=SaslConfig(
        username="kasten-bp", password_secret_ref=KubeSecretKey(name="kasten-bp", key="password")
    ),
)


def needed(access: k.Access) -> Grant:
    scope = "namespace" if access.resource.namespaced else "cluster"
    sub = f"/{access.subresource}" if access.subresource else ""
    return (scope, access.resource.group, access.resource.plural + sub, access.verb, access.name)


def granted(docs: list[dict[str, Any]]) -> set[Grant]:
    out: set[Grant] = set()
    for doc in docs:
        if doc["kind"] not in ("Role", "ClusterRole"):
            continue
        scope = "namespace" if doc["kind"] == "Role" else "cluster"
        for rule in doc["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for name in rule.get("resourceNames") or [""]:
                        out |= {(scope, group, resource, verb, name) for verb in rule["verbs"]}
    return out


def test_shipped_rbac_grants_exactly_what_the_platforms_need(
    kube_env: KubeEnv, kube: Kube, namespace: str, lab: LabHandle, tmp_path: Path
) -> None:
    """blueprints/rbac.yaml grants every access the platforms' lists name (backup and
    restore), and nothing that none of them names; bound to the limited user, the API
    server allows each of them."""
    docs = [d for d in yaml.safe_load_all((ROOT / "blueprints" / "rbac.yaml").read_text()) if d]
    every = platforms(kube_env, lab, tmp_path, namespace)
    needs = {a for p in every for a in p.required_access() + p.restore_access()}
    want = {needed(a) for a in needs}
    have = granted(docs)
    assert sorted(want - have) == [], "needed but not granted"
    assert sorted(have - want) == [], "granted but needed by no access list"

    rbac = "rbac.authorization.k8s.io"
    suffix = namespace[-8:]
    cluster_wide: list[tuple[k.Resource, str]] = []
    for doc in docs:
        kind = doc["kind"]
        if kind == "ServiceAccount":
            continue
        doc["metadata"]["name"] += f"-{suffix}"
        if kind in ("RoleBinding", "ClusterRoleBinding"):
            doc["roleRef"]["name"] += f"-{suffix}"
            doc["subjects"] = [{"apiGroup": rbac, "kind": "User", "name": LIMITED}]
        plural = kind.lower() + "s"
        res = k.Resource(rbac, "v1", plural, kind, namespaced=kind in ("Role", "RoleBinding"))
        doc["metadata"]["namespace"] = namespace if res.namespaced else None
        kube.create(res, namespace if res.namespaced else None, doc)
        if not res.namespaced:
            cluster_wide.append((res, doc["metadata"]["name"]))
    time.sleep(1)
    try:
        limited = every[0].kube
        denied = sorted(str(a) for a in needs if not limited.allowed(a, namespace))
        assert denied == []
        # Secrets: exactly the named ones, never any other, never a list.
        for other in (
            k.Access("get", k.SECRETS, name="some-other-secret"),
            k.Access("get", k.SECRETS),
            k.Access("list", k.SECRETS),
        ):
            assert not limited.allowed(other, namespace), other
    finally:
        for res, name in cluster_wide:  # other tests expect the limited user to have nothing
            kube.delete(res, None, name)


def test_missing_crd_is_reported_before_anything_changes(
    kube_env: KubeEnv, kube: Kube, namespace: str, lab: LabHandle, tmp_path: Path
) -> None:
    create_strimzi_cluster(kube, namespace, mirrormaker=None)
    crds = k.Resource(
        "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False
    )
    name = "volumegroupsnapshots.groupsnapshot.storage.k8s.io"
    path = (
        ROOT / "tests" / "kube" / "crds" / "groupsnapshot.storage.k8s.io_volumegroupsnapshots.yaml"
    )
    kube.delete(crds, None, name)
    try:
        config = make_config(
            kube_env,
            lab.config,
            tmp_path / "c",
            "strimzi",
            namespace,
            "mirror",
            group_snapshot_class=GROUP_CLASS,
        )
        from kasten_bp.waiting import wait_for

        platform = StrimziPlatform(config)
        wait_for("the CRD to be gone", lambda: not platform.kube.served(k.GROUP_SNAPSHOTS), 60)
        with pytest.raises(UsageError) as err:
            Backups(config).backup("consistent")
        assert err.value.exit_code == 2
        assert f"CRD {name} is not installed" in str(err.value)
        assert str(err.value).startswith("preflight failed: CRD volumegroupsnapshots")
        with pytest.raises(UsageError, match=f"^CRD {name} is not installed"):
            platform.kube.find(k.GROUP_SNAPSHOTS, namespace)
        kafka = kube.get(k.KAFKAS, namespace, "mirror")
        assert PAUSE not in (kafka["metadata"].get("annotations") or {})
    finally:
        kube.create(crds, None, yaml.safe_load(path.read_text()))
        wait_for("the CRD to be served again", lambda: kube.served(k.GROUP_SNAPSHOTS), 60)


def test_lease_refuses_a_concurrent_run_and_takes_over_an_expired_one(
    kube_env: KubeEnv, kube: Kube, namespace: str, lab: LabHandle, tmp_path: Path
) -> None:
    create_strimzi_cluster(kube, namespace, mirrormaker=None)
    sims = start_simulators(kube, [namespace])
    try:
        wait_strimzi_ready(kube, namespace)
        config = make_config(
            kube_env,
            lab.config,
            tmp_path / "c",
            "strimzi",
            namespace,
            "mirror",
            snapshot_class=SNAPSHOT_CLASS,
        )
        first, second = StrimziPlatform(config), StrimziPlatform(config)
        with first.lock("backup"):
            lease = kube.get(k.LEASES, namespace, "kasten-bp-mirror")
            assert lease["spec"]["holderIdentity"].startswith("backup (")
            assert lease["spec"]["leaseDurationSeconds"] == 60
            with pytest.raises(UsageError) as err, second.lock("quiesce"):
                pass
            assert err.value.exit_code == 2
            assert f"lease {namespace}/kasten-bp-mirror is held by backup (" in str(err.value)
            # The whole CLI path refuses too, and changes nothing.
            with pytest.raises(UsageError, match="another kasten-bp run is in progress"):
                Backups(config).backup("consistent")
        assert (
            kube.get(k.LEASES, namespace, "kasten-bp-mirror")["spec"].get("holderIdentity") is None
        )
        # A holder that died: its lease expired; the next run takes over.
        lease = kube.get(k.LEASES, namespace, "kasten-bp-mirror")
        lease["spec"].update(
            holderIdentity="dead (host pid 1)",
            leaseDurationSeconds=5,
            renewTime="2020-01-01T00:00:00.000000Z",
        )
        kube.replace(k.LEASES, namespace, "kasten-bp-mirror", lease)
        with second.lock("resume"):
            spec = kube.get(k.LEASES, namespace, "kasten-bp-mirror")["spec"]
            assert spec["holderIdentity"].startswith("resume (") and spec["leaseTransitions"] >= 1
        kafka = kube.get(k.KAFKAS, namespace, "mirror")
        assert PAUSE not in (kafka["metadata"].get("annotations") or {})
    finally:
        sims.stop()


def grant(kube: Kube, ns: str, accesses: set[k.Access], name: str) -> list[tuple[k.Resource, str]]:
    """A Role (and a ClusterRole for cluster-scoped resources) granting exactly `accesses`
    to the limited user; returns the cluster-wide objects to delete afterwards."""
    rbac = "rbac.authorization.k8s.io"
    made: list[tuple[k.Resource, str]] = []
    for namespaced in (True, False):
        rules = [
            {
                "apiGroups": [a.resource.group],
                "resources": [a.resource.plural + (f"/{a.subresource}" if a.subresource else "")],
                "verbs": [a.verb],
                **({"resourceNames": [a.name]} if a.name else {}),
            }
            for a in sorted(accesses, key=str)
            if a.resource.namespaced == namespaced
        ]
        kind = "Role" if namespaced else "ClusterRole"
        role = k.Resource(rbac, "v1", kind.lower() + "s", kind, namespaced=namespaced)
        binding = k.Resource(
            rbac, "v1", kind.lower() + "bindings", kind + "Binding", namespaced=namespaced
        )
        where = ns if namespaced else None
        kube.create(role, where, {"metadata": {"name": name}, "rules": rules})
        kube.create(
            binding,
            where,
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": rbac, "kind": kind, "name": name},
                "subjects": [{"apiGroup": rbac, "kind": "User", "name": LIMITED}],
            },
        )
        if not namespaced:
            made += [(binding, name), (role, name)]
    return made


def test_403_on_volumesnapshot_creation_is_one_line_exit_2_and_nothing_changes(
    kube_env: KubeEnv, kube: Kube, namespace: str, lab: LabHandle, tmp_path: Path
) -> None:
    """Everything the Strimzi platform needs is granted except creating VolumeSnapshots: the
    API server's own answer to that one request is reported before the mirror is touched."""
    create_strimzi_cluster(kube, namespace)
    config = limited_config(kube_env, lab, tmp_path, namespace, mirrormaker="mm2")
    platform = StrimziPlatform(config)
    create_snapshots = k.Access("create", k.SNAPSHOTS)
    needs = set(platform.required_access())
    assert create_snapshots in needs
    cluster_wide = grant(kube, namespace, needs - {create_snapshots}, f"all-but-{namespace}")
    try:
        time.sleep(1)  # RBAC is served from an informer cache
        assert not platform.kube.allowed(create_snapshots, namespace)
        with pytest.raises(UsageError) as err:
            Backups(config).backup("consistent")
        assert err.value.exit_code == 2
        assert "\n" not in str(err.value)
        assert str(err.value) == (
            "preflight failed: forbidden: cannot create volumesnapshots.snapshot.storage.k8s.io "
            f"in namespace {namespace} (user {LIMITED})"
        )
        kafka = kube.get(k.KAFKAS, namespace, "mirror")
        assert PAUSE not in (kafka["metadata"].get("annotations") or {})
        assert kube.find(k.SNAPSHOTS, namespace) == []
        assert all(
            not (le.get("spec") or {}).get("holderIdentity")
            for le in kube.find(k.LEASES, namespace)
        )
        mm2 = kube.get(k.MIRRORMAKER2S, namespace, "mm2")
        assert mm2["spec"]["mirrors"][0]["sourceConnector"]["state"] == "running"
    finally:
        for res, name in cluster_wide:  # other tests expect the limited user to have nothing
            kube.delete(res, None, name)
