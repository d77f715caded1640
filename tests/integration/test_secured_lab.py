"""`kasten-bp lab up --secure`: TLS + SCRAM-SHA-512 + ACLs on both clusters, MM2 and Connect
REST over TLS, and the whole backup -> restore -> verify round trip on it through the CLI.

Its own lab (module-scoped, separate workdir), torn down at the end; it never touches the
session's plain lab.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from kasten_bp.config import ClientSecurity, SaslConfig, SslConfig, load_config
from kasten_bp.errors import KastenBpError, UsageError
from kasten_bp.kafka import access, admin, clients, groups, producing
from kasten_bp.lab import security
from kasten_bp.lab.lab import Lab, LabState, use_cluster_security
from kasten_bp.platforms.kube import resources as k8s
from kasten_bp.platforms.kube.api import Kube
from kasten_bp.records import Record
from kasten_bp.waiting import wait_for

from ..certs import self_signed
from .helpers import contents, fresh, partition_records, wait_mirrored, write_spec
from .kube_fixture import KubeEnv

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "kasten_bp.cli"]


class SecureLab:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.state: LabState = lab.require_state()
        assert self.state.security is not None
        self.sec = self.state.security

    @property
    def primary(self) -> str:
        return self.state.primary.bootstrap

    @property
    def mirror(self) -> str:
        return self.state.mirror.bootstrap

    @property
    def config_path(self) -> Path:
        return self.lab.config_path

    @contextmanager
    def as_user(self, user: str) -> Iterator[None]:
        """This process's clients reach both clusters as `user`, then as admin again."""
        for bootstrap in (self.primary, self.mirror):
            use_cluster_security(bootstrap, self.sec, user)
        try:
            yield
        finally:
            self.lab.use_admin(self.state)

    def cli(self, *args: str, expect: int = 0) -> Any:
        result = subprocess.run(
            [*CLI, *args, "--config", str(self.config_path), "--output", "json"],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == expect, (result.stdout[-2000:], result.stderr[-3000:])
        return json.loads(result.stdout)


@pytest.fixture(scope="module")
def secure_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureLab]:
    workdir = tmp_path_factory.mktemp("secure-lab")
    the_lab = Lab(workdir)
    try:
        # Through the CLI: `lab up --secure` is what is under test.
        result = subprocess.run(
            [*CLI, "lab", "up", "--secure", "--workdir", str(workdir), "--output", "json"],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        info = json.loads(result.stdout)
        assert info["connect"]["url"].startswith("https://")
        assert info["security"]["security_protocol"] == "SASL_SSL"
        handle = SecureLab(the_lab)
        the_lab.use_admin(handle.state)
        yield handle
    finally:
        clients.clear_security()
        if not os.environ.get("KASTEN_BP_KEEP_LAB"):
            the_lab.down()


def _records(topic: str, count: int, tag: str = "r") -> list[Record]:
    now = int(time.time() * 1000)
    return [
        Record(topic, i % 3, -1, now, f"k{i}".encode(), f"{tag}-{i}".encode(), (("h", b"1"),))
        for i in range(count)
    ]


def test_secure_lab_is_up_healthy_and_names_secrets_only_by_file(secure_lab: SecureLab) -> None:
    status = subprocess.run(
        [*CLI, "lab", "status", "--workdir", str(secure_lab.lab.workdir), "--output", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stderr[-2000:]
    info = json.loads(status.stdout)
    assert info["healthy"], info
    assert set(info["connect"]["connector_states"].values()) == {"RUNNING"}

    sec = secure_lab.sec
    secrets = [sec.password_file(u) for u in security.USERS]
    secrets += [sec.broker_keystore, sec.connect_keystore, sec.connect_keystore_password_file]
    for path in secrets:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for b in [*secure_lab.state.primary.brokers, *secure_lab.state.mirror.brokers]:
        props = b.config_path.read_text()
        assert f"listeners=SASL_SSL://127.0.0.1:{b.port}," in props
        assert "authorizer.class.name=" in props
        assert stat.S_IMODE(b.config_path.stat().st_mode) == 0o600

    # kasten-bp.yaml and the Connect worker's config name the password files, never a secret.
    raw = yaml.safe_load(secure_lab.config_path.read_text())
    assert raw["primary"]["sasl"] == {
        "mechanism": "SCRAM-SHA-512",
        "username": "kasten-bp",
        "password_file": str(sec.password_file(security.KASTEN_BP)),
    }
    assert raw["mirror"]["security_protocol"] == "SASL_SSL"
    assert raw["connect"]["ssl"] == {"ca_file": str(sec.ca_file)}
    loaded = load_config(secure_lab.config_path)  # the config model accepts it
    assert loaded.connect.url.startswith("https://127.0.0.1:")
    worker = secure_lab.state.connect.config_path.read_text()
    for user in security.USERS:
        password = sec.password(user)
        assert password not in secure_lab.config_path.read_text()
        assert password not in worker
        assert password not in (secure_lab.lab.workdir / "lab.json").read_text()


def test_plaintext_and_bad_password_clients_are_refused(
    secure_lab: SecureLab, tmp_path: Path
) -> None:
    try:
        clients.use_security(secure_lab.primary, ClientSecurity())  # PLAINTEXT
        with pytest.raises(Exception, match="transport|Timed out|timed out"):
            admin.topics(secure_lab.primary, timeout=5)

        wrong = tmp_path / "wrong.password"
        wrong.write_text("not-the-password")
        clients.use_security(
            secure_lab.primary,
            ClientSecurity(
                security_protocol="SASL_SSL",
                ssl=SslConfig(ca_file=str(secure_lab.sec.ca_file)),
                sasl=SaslConfig(username="kasten-bp", password_file=str(wrong)),
            ),
        )
        with pytest.raises(Exception, match="(?i)authentication|transport|timed out"):
            admin.topics(secure_lab.primary, timeout=10)
    finally:
        secure_lab.lab.use_admin(secure_lab.state)


def test_kasten_bp_user_reads_the_primary_but_cannot_write_it(secure_lab: SecureLab) -> None:
    topic = f"t-{uuid.uuid4().hex[:10]}"
    admin.create_topic(secure_lab.primary, topic, 3)  # as admin
    producing.produce(secure_lab.primary, _records(topic, 30))
    with secure_lab.as_user(security.KASTEN_BP):
        assert admin.topics(secure_lab.primary)[topic] == 3
        read = [r for p in range(3) for r in partition_records(secure_lab.primary, topic, p)]
        assert sorted(r.value or b"" for r in read) == sorted(f"r-{i}".encode() for i in range(30))
        with pytest.raises(KastenBpError, match="(?i)authoriz"):
            producing.produce(
                secure_lab.primary,
                _records(topic, 1, "forbidden"),
                extra={"enable.idempotence": False, "message.timeout.ms": 15000},
            )
        with pytest.raises(UsageError, match="(?i)authoriz"):
            admin.create_topic(secure_lab.primary, f"{topic}-new", 1)
    # Nothing was written by the refused producer.
    after = [r for p in range(3) for r in partition_records(secure_lab.primary, topic, p)]
    assert len(after) == 30


def test_mm2_mirrors_a_topic_over_sasl_ssl(secure_lab: SecureLab) -> None:
    topic = f"t-{uuid.uuid4().hex[:10]}"
    admin.create_topic(secure_lab.primary, topic, 3)
    producing.produce(secure_lab.primary, _records(topic, 60))
    with secure_lab.as_user(security.KASTEN_BP):
        wait_mirrored(secure_lab.primary, secure_lab.mirror, topic)
        for p in range(3):
            assert contents(partition_records(secure_lab.mirror, topic, p)) == contents(
                partition_records(secure_lab.primary, topic, p)
            )


# --- bad credentials: one line, exit 2, nothing changed -----------------------------------

GROUP_DESCRIBE = ("User:kasten-bp", "GROUP", "*", "DESCRIBE")
TOPIC_READ = ("User:kasten-bp", "TOPIC", "*", "READ")


def _run(
    *args: str, config: Path, env: dict[str, str] | None = None, output: str = "json"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args, "--config", str(config), "--output", output],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **(env or {})},
    )


def _error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def _catalog_backups(catalog: Path) -> dict[str, dict[str, Any]]:
    """backup id -> its journal; manifests are listed as journal["manifest"]."""
    out = {}
    for journal in sorted(catalog.glob("backups/*/journal.json")):
        data = json.loads(journal.read_text())
        data["manifest"] = (journal.parent / "manifest.json").exists()
        out[journal.parent.name] = data
    return out


def _ensure_group_coordinator(primary: str) -> None:
    """As admin: a group lookup makes the primary create __consumer_offsets, without which
    there are no groups to read and the probe does not check group permissions."""
    if access.CONSUMER_OFFSETS in admin.topics(primary):
        return
    client = clients.admin(primary)
    client.describe_consumer_groups(["kasten-bp-test-coordinator"], request_timeout=15)
    wait_for(
        "__consumer_offsets on the primary",
        lambda: access.CONSUMER_OFFSETS in admin.topics(primary),
        60,
    )


@contextmanager
def _denied(lab: SecureLab, acl: tuple[str, str, str, str]) -> Iterator[None]:
    """Without one of kasten-bp's ACLs on the primary for a while (as admin)."""
    _ensure_group_coordinator(lab.primary)

    def probe() -> list[str]:
        with lab.as_user(security.KASTEN_BP):
            return access.permission_problems(lab.primary, access.reach(lab.primary))

    assert admin.delete_acls(lab.primary, [acl]) == 1
    try:
        wait_for("the ACL deletion to apply", probe, 30)
        yield
    finally:
        admin.create_acls(lab.primary, [acl])
        wait_for("the ACL to apply again", lambda: not probe(), 30)


@pytest.mark.parametrize(
    "case", ["wrong_password", "untrusted_ca", "group_describe_denied", "topic_read_denied"]
)
def test_bad_credentials_fail_preflight_in_one_line_and_change_nothing(
    secure_lab: SecureLab, tmp_path: Path, case: str
) -> None:
    primary = secure_lab.primary
    env: dict[str, str] = {}
    wrong = f"not-the-password-{uuid.uuid4().hex}"
    if case == "wrong_password":
        (tmp_path / "wrong.password").write_text(wrong)
        env["KASTEN_BP_PRIMARY__SASL__PASSWORD_FILE"] = str(tmp_path / "wrong.password")
        expected = (
            f"primary cluster {primary}: SASL authentication failed for user kasten-bp "
            "(wrong password or unknown user)"
        )
    elif case == "untrusted_ca":
        other = security.generate(tmp_path / "other-ca")  # a CA that signed no broker
        env["KASTEN_BP_PRIMARY__SSL__CA_FILE"] = str(other.ca_file)
        expected = (
            f"primary cluster {primary}: TLS handshake failed: certificate verify failed "
            "(is ssl.ca_file the cluster's CA?)"
        )
    elif case == "group_describe_denied":
        expected = (
            f"primary cluster {primary}: user kasten-bp may not describe consumer groups "
            "(GROUP_AUTHORIZATION_FAILED): grant DESCRIBE on groups"
        )
    else:
        topic = f"t-{uuid.uuid4().hex[:10]}"
        admin.create_topic(primary, topic, 1)
        # Every topic of the primary is named, the list cut after five.
        expected = (
            rf"primary cluster {re.escape(primary)}: user kasten-bp may not read topics "
            r"[^;]+: grant READ on topics"
        )
    denied = {"group_describe_denied": GROUP_DESCRIBE, "topic_read_denied": TOPIC_READ}
    before = _catalog_backups(secure_lab.lab.catalog_dir)
    with _denied(secure_lab, denied[case]) if case in denied else nullcontext():
        result = _run("backup", config=secure_lab.config_path, env=env, output="text")

    assert result.returncode == 2, (result.stdout[-2000:], result.stderr[-3000:])
    (line,) = _error_lines(result)  # one line, naming the cluster and the cause
    if case == "topic_read_denied":
        assert re.fullmatch(f"error: preflight failed: {expected}", line), line
        assert topic in line or "more" in line, line
    else:
        assert line == f"error: preflight failed: {expected}", line
    assert wrong not in result.stdout + result.stderr
    assert secure_lab.sec.password(security.KASTEN_BP) not in result.stdout + result.stderr

    # Nothing changed: MM2 never paused, the mirror's brokers up, no backup kept.
    status = secure_lab.lab.status()
    assert status["healthy"], status
    assert set(status["connect"]["connector_states"].values()) == {"RUNNING"}
    after = _catalog_backups(secure_lab.lab.catalog_dir)
    assert not any(j["manifest"] for i, j in after.items() if i not in before)
    for backup_id in set(after) - set(before):  # the refused run's journal, if any
        steps = {s["name"]: s["status"] for s in after[backup_id]["steps"]}
        assert after[backup_id]["state"] == "FAILED_ROLLED_BACK", after[backup_id]
        assert steps["preflight"] in ("failed", "undone")  # the failed step is undone too
        assert steps["pause_mirrormaker"] == "pending", steps


# --- the primary is only read --------------------------------------------------------------


def _primary_end_offsets(primary: str) -> dict[tuple[str, int], int]:
    """Every partition's end offset, as admin through ListOffsets: no consumer, so measuring
    looks up no group coordinator of its own."""
    md = clients.admin(primary).list_topics(timeout=15)
    partitions = [(str(t.topic), p) for t in md.topics.values() for p in t.partitions]
    return admin.end_offsets(primary, partitions)


def test_backup_restore_verify_through_the_cli_write_nothing_to_the_primary(
    secure_lab: SecureLab,
) -> None:
    """The round trip with the config `lab up --secure` generated, over SASL_SSL; all the
    while no producer writes to the primary, so every end offset must stay put."""
    topic = f"t-{uuid.uuid4().hex[:10]}"
    admin.create_topic(secure_lab.primary, topic, 3)
    producing.produce(secure_lab.primary, _records(topic, 45))
    wait_mirrored(secure_lab.primary, secure_lab.mirror, topic)
    offsets_before = _primary_end_offsets(secure_lab.primary)
    groups_before = groups.group_ids(secure_lab.primary)

    backup = secure_lab.cli("backup")
    assert backup["status"] == "COMPLETED", backup
    backup_id = backup["backup_id"]
    restored = secure_lab.cli("restore", backup_id)
    bootstrap = restored["bootstrap"]
    state = secure_lab.lab.require_state()
    for b in state.restored[backup_id].brokers:
        assert f"listeners=SASL_SSL://127.0.0.1:{b.port}," in b.config_path.read_text()
    report = secure_lab.cli("verify", backup_id)
    assert report["restored_bootstrap"] == bootstrap
    assert report["verdict"] == "consistent", report
    statuses = {p["status"] for p in report["partitions"]}
    assert statuses <= {"consistent", "behind"}, report
    assert any(p["topic"] == topic for p in report["partitions"])

    offsets_after = _primary_end_offsets(secure_lab.primary)
    # kasten-bp's readers carry group.id kasten-bp-reader: librdkafka looks up its
    # coordinator (FindCoordinator), which creates __consumer_offsets on a primary that never
    # had a group. That is the only new topic allowed, and it must hold no record: no join,
    # no commit.
    new = {key for key in offsets_after if key not in offsets_before}
    assert {t for t, _ in new} <= {access.CONSUMER_OFFSETS}, sorted(new)
    assert all(offsets_after[key] == 0 for key in new), {k: offsets_after[k] for k in new}
    assert {k: offsets_after[k] for k in offsets_before} == offsets_before
    groups_after = groups.group_ids(secure_lab.primary)
    assert groups_after == groups_before
    assert not [g for g in groups_after if g.startswith("kasten-bp")]


# --- secrets are never stored or shown -----------------------------------------------------

PASSWORD_ENV = "KASTEN_BP_TEST_KASTEN_BP_PASSWORD"
KEY_PASSWORD_ENV = "KASTEN_BP_TEST_CLIENT_KEY_PASSWORD"
# Record data and offset indexes: fixed-width offset -> position entries, no record bytes;
# preallocated sparse (10 MB each), so reading them would only read zeros.
_INDEXES = (".index", ".timeindex")


def _client_key_pair(root: Path, key_password: str) -> tuple[Path, Path]:
    """A client certificate and its key, encrypted with `key_password`. The lab's listeners
    ask for no client certificate, but librdkafka loads (decrypts) the key whenever a
    client is created: a wrong key password fails every command."""
    return self_signed(root, key_password, "kasten-bp-client", x509.random_serial_number())


def _files_holding(root: Path, secrets: list[str], skip: Path | None = None) -> list[str]:
    """Every file under `root` (recursively, binary too) holding one of `secrets`."""
    wanted = [s.encode() for s in secrets]
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix in _INDEXES:
            continue
        if skip is not None and path.is_relative_to(skip):
            continue
        data = path.read_bytes()
        found += [f"{path}: secret #{i}" for i, s in enumerate(wanted) if s in data]
    return found


def test_secrets_are_never_stored_or_shown(secure_lab: SecureLab, tmp_path: Path) -> None:
    password = secure_lab.sec.password(security.KASTEN_BP)  # the real one: it must work
    key_password = f"key-{uuid.uuid4().hex}"
    cert_file, key_file = _client_key_pair(tmp_path, key_password)
    raw = yaml.safe_load(secure_lab.config_path.read_text())
    for cluster in ("primary", "mirror"):
        raw[cluster]["sasl"] = {
            "mechanism": "SCRAM-SHA-512",
            "username": security.KASTEN_BP,
            "password_env": PASSWORD_ENV,
        }
        raw[cluster]["ssl"] = {
            "ca_file": str(secure_lab.sec.ca_file),
            "cert_file": str(cert_file),
            "key_file": str(key_file),
            "key_password_env": KEY_PASSWORD_ENV,
        }
    catalog = tmp_path / "catalog"  # this test's own: every file in it is ours to search
    raw["catalog"] = str(catalog)
    config = tmp_path / "kasten-bp.yaml"
    config.write_text(yaml.safe_dump(raw))
    env = {PASSWORD_ENV: password, KEY_PASSWORD_ENV: key_password}
    secrets = [password, key_password]

    topic = f"t-{uuid.uuid4().hex[:10]}"
    admin.create_topic(secure_lab.primary, topic, 3)
    producing.produce(secure_lab.primary, _records(topic, 30))
    wait_mirrored(secure_lab.primary, secure_lab.mirror, topic)

    outputs: list[subprocess.CompletedProcess[str]] = []

    def run(*args: str, output: str = "json", expect: int = 0) -> str:
        result = _run(*args, config=config, env=env, output=output)
        outputs.append(result)
        assert result.returncode == expect, (args, result.stdout[-2000:], result.stderr[-3000:])
        return result.stdout

    backup_id = json.loads(run("backup"))["backup_id"]
    run("restore", backup_id, output="text")
    assert json.loads(run("verify", backup_id))["verdict"] == "consistent"
    run("verify", backup_id, output="text")
    run("show", backup_id)
    run("show", backup_id, output="text")
    run("list", output="text")
    run("quiesce", "--hold-timeout", "10m")  # arms the watchdog: its hold log is ours too
    run("resume", "--snapshot-taken", output="text")
    # A refused command: the wrong key password is not echoed back.
    wrong = f"wrong-{uuid.uuid4().hex}"
    refused = _run("backup", config=config, env={**env, KEY_PASSWORD_ENV: wrong})
    outputs.append(refused)
    assert refused.returncode == 2, refused.stderr[-3000:]

    for result in outputs:
        for secret in [*secrets, wrong]:
            assert secret not in result.stdout, result.args
            assert secret not in result.stderr, result.args
    assert _files_holding(catalog, secrets) == []
    # The whole lab workdir: kasten-bp.yaml, lab.json, lock and hold logs, broker and
    # Connect logs, broker data and restored clusters. Excluded: security/, where the lab
    # keeps each user's password file: the source the planted password was read from.
    lab_dir = secure_lab.lab.workdir
    assert _files_holding(lab_dir, secrets, skip=lab_dir / "security") == []
    # This test's own files: the config names the secrets, the key file holds the key
    # encrypted, never its password.
    assert _files_holding(tmp_path, secrets) == []


# --- Kubernetes secrets: the CA and the SCRAM password read through the real API server ----


def _kube_secret(kube: Kube, ns: str, name: str, data: dict[str, bytes]) -> None:
    encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
    kube.create(k8s.SECRETS, ns, {"metadata": {"name": name}, "type": "Opaque", "data": encoded})


def test_backup_restore_verify_with_credentials_from_kubernetes_secrets(
    secure_lab: SecureLab, kube_env: KubeEnv, tmp_path: Path
) -> None:
    """As on Strimzi: the cluster CA from `<cluster>-cluster-ca-cert` (ca.crt) and kasten-bp's
    password from its KafkaUser secret (password), named in kasten-bp.yaml and read through
    the real kube-apiserver; no file or environment variable holds either."""
    kube = kube_env.kube()
    ns = f"sec-{uuid.uuid4().hex[:8]}"
    kube.create(k8s.NAMESPACES, None, {"metadata": {"name": ns}})
    password = secure_lab.sec.password(security.KASTEN_BP)
    _kube_secret(kube, ns, "lab-cluster-ca-cert", {"ca.crt": secure_lab.sec.ca_file.read_bytes()})
    _kube_secret(kube, ns, "kasten-bp", {"password": password.encode()})

    raw = yaml.safe_load(secure_lab.config_path.read_text())
    for cluster in ("primary", "mirror"):
        raw[cluster]["ssl"] = {"ca_secret_ref": {"name": "lab-cluster-ca-cert", "key": "ca.crt"}}
        raw[cluster]["sasl"] = {
            "mechanism": "SCRAM-SHA-512",
            "username": "kasten-bp",
            "password_secret_ref": {"name": "kasten-bp", "key": "password"},
        }
    raw["kubernetes"] = {"kubeconfig": kube_env.kubeconfig, "namespace": ns, "cluster": "unused"}
    config = tmp_path / "kasten-bp.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert password not in config.read_text()

    topic = f"t-{uuid.uuid4().hex[:10]}"
    admin.create_topic(secure_lab.primary, topic, 3)
    producing.produce(secure_lab.primary, _records(topic, 21))
    wait_mirrored(secure_lab.primary, secure_lab.mirror, topic)
    backup = _run("backup", config=config)
    assert backup.returncode == 0, backup.stderr[-3000:]
    backup_id = json.loads(backup.stdout)["backup_id"]
    restore = _run("restore", backup_id, config=config)
    assert restore.returncode == 0, restore.stderr[-3000:]
    verify = _run("verify", backup_id, config=config)
    assert verify.returncode == 0, verify.stderr[-3000:]
    assert json.loads(verify.stdout)["verdict"] == "consistent"
    for result in (backup, restore, verify):
        assert password not in result.stdout + result.stderr

    # Without RBAC for the secrets: one line naming what is forbidden, exit 2, nothing changed.
    raw["kubernetes"]["kubeconfig"] = kube_env.limited_kubeconfig
    config.write_text(yaml.safe_dump(raw))
    refused = _run("backup", config=config, output="text")
    assert refused.returncode == 2, refused.stderr[-3000:]
    (line,) = _error_lines(refused)
    assert line == (
        f"error: primary sasl: forbidden: cannot get secrets in namespace {ns} "
        "(user kasten-bp-limited)"
    )
    status = secure_lab.lab.status()
    assert set(status["connect"]["connector_states"].values()) == {"RUNNING"}


def test_a_target_the_client_may_not_write_to_or_create_in_is_refused_before_writing(
    secure_lab: SecureLab,
    tmp_path: Path,
) -> None:
    """On the secured lab, user kasten-bp reads the primary but may not write or create
    there: replaying into the primary as that user fails preflight, one line per topic."""
    primary = secure_lab.primary
    one, two = fresh("src"), fresh("src")
    existing, missing = fresh("nowrite"), fresh("nocreate")
    for name in (one, two, existing):
        admin.create_topic(primary, name, 1)  # as admin
    producing.produce(primary, [Record(t, 0, -1, 0, b"k", b"v", ()) for t in (one, two)])
    spec = write_spec(
        tmp_path,
        topics=[{"source": one, "target": existing}, {"source": two, "target": missing}],
        create_topics=True,
    )
    args = ["replay", "--source-bootstrap", primary, "--to", primary, "--spec", str(spec)]
    result = subprocess.run(
        [sys.executable, "-m", "kasten_bp.cli", *args, "--config", str(secure_lab.config_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [ln for ln in result.stderr.splitlines() if not ln.startswith("… ")]
    assert lines == [
        f"error: topic {existing}: writable: user kasten-bp may not write to it: grant WRITE "
        f"on topic {existing}",
        f"topic {missing}: writable: user kasten-bp may not create it: grant CREATE on topic "
        f"{missing} (or the cluster)",
    ], result.stderr
    # Nothing written, nothing created (asked as admin).
    assert admin.watermarks(primary, [(existing, 0)]) == {(existing, 0): (0, 0)}
    assert missing not in admin.topics(primary)
