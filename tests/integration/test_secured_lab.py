"""`kasten-bp lab up --secure`: TLS + SCRAM-SHA-512 + ACLs on both clusters, MM2 and Connect
REST over TLS, and the whole backup -> restore -> verify round trip on it through the CLI.

Its own lab (module-scoped, separate workdir), torn down at the end; it never touches the
session's plain lab.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from kasten_bp.config import ClientSecurity, SaslConfig, SslConfig, load_config
from kasten_bp.errors import KastenBpError, UsageError
from kasten_bp.kafka import admin, clients, producing
from kasten_bp.lab import security
from kasten_bp.lab.lab import Lab, LabState, use_cluster_security
from kasten_bp.records import Record

from .helpers import contents, partition_records, wait_mirrored

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


def test_backup_restore_verify_through_the_cli_with_the_generated_config(
    secure_lab: SecureLab,
) -> None:
    topic = f"t-{uuid.uuid4().hex[:10]}"
    admin.create_topic(secure_lab.primary, topic, 3)
    producing.produce(secure_lab.primary, _records(topic, 45))
    wait_mirrored(secure_lab.primary, secure_lab.mirror, topic)

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
