"""MirrorMaker 2 as Strimzi runs it: three connectors in a distributed Connect worker
whose internal topics live on the target (mirror) cluster."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel

from kasten_bp.lab import jars, processes
from kasten_bp.lab.kraft import JVM_FLAGS, LOG4J2
from kasten_bp.lab.security import MM2, LabSecurity

CONNECT_HEAP = os.environ.get("KASTEN_BP_CONNECT_HEAP", "512m")
SOURCE_ALIAS, TARGET_ALIAS = "primary", "mirror"
BYTES = "org.apache.kafka.connect.converters.ByteArrayConverter"
POLICIES = {
    "identity": "org.apache.kafka.connect.mirror.IdentityReplicationPolicy",
    "default": "org.apache.kafka.connect.mirror.DefaultReplicationPolicy",
}
CONNECTOR_CLASSES = (
    "MirrorSourceConnector",
    "MirrorCheckpointConnector",
    "MirrorHeartbeatConnector",
)


class ConnectSpec(BaseModel):
    port: int
    run_dir: str
    # REST over TLS (`lab up --secure`); None (not False) keeps a plain lab's JSON as it was.
    https: bool | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.https else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return Path(self.run_dir) / "connect-distributed.properties"

    @property
    def handle(self) -> processes.Supervised:
        run = Path(self.run_dir)
        return processes.Supervised("connect", run / "connect.pid", run / "connect.out")


def connector_names() -> list[str]:
    # Strimzi's naming: "<source>-><target>.<ConnectorClass>".
    return [f"{SOURCE_ALIAS}->{TARGET_ALIAS}.{cls}" for cls in CONNECTOR_CLASSES]


DIR_PROVIDER = "org.apache.kafka.common.config.provider.DirectoryConfigProvider"


def _mm2_client(security: LabSecurity) -> dict[str, str]:
    """The mm2 user's Java client settings; its password is read by the worker's `dir`
    config provider from the password file, never written into a config."""
    return security.java_client(MM2, password=security.password_reference(MM2))


def worker_properties(
    spec: ConnectSpec,
    mirror_bootstrap: str,
    mirror_size: int,
    security: LabSecurity | None = None,
) -> str:
    rf = min(3, mirror_size)
    props = {
        "bootstrap.servers": mirror_bootstrap,
        "group.id": "mirrormaker2-cluster",
        "key.converter": BYTES,
        "value.converter": BYTES,
        "header.converter": BYTES,
        "config.storage.topic": "mirrormaker2-cluster-configs",
        "offset.storage.topic": "mirrormaker2-cluster-offsets",
        "status.storage.topic": "mirrormaker2-cluster-status",
        "config.storage.replication.factor": rf,
        "offset.storage.replication.factor": rf,
        "status.storage.replication.factor": rf,
        "offset.storage.partitions": 5,
        "status.storage.partitions": 1,
        "offset.flush.interval.ms": 1000,
        "listeners": f"http://127.0.0.1:{spec.port}",
        "rest.advertised.host.name": "127.0.0.1",
        "rest.advertised.port": spec.port,
        "connector.client.config.override.policy": "All",
        "scheduled.rebalance.max.delay.ms": 0,
        "task.shutdown.graceful.timeout.ms": 10000,
        "plugin.discovery": "service_load",
    }
    if security is not None:
        props |= _secure_worker(spec, security)
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _secure_worker(spec: ConnectSpec, security: LabSecurity) -> dict[str, object]:
    props: dict[str, object] = {
        "config.providers": "dir",
        "config.providers.dir.class": DIR_PROVIDER,
    }
    client = _mm2_client(security)
    # The worker's own clients (group membership, internal topics), then the tasks'.
    props |= client
    for prefix in ("producer.", "consumer.", "admin."):
        props |= {prefix + k: v for k, v in client.items()}
    store_password = f"${{dir:{security.root}:{security.connect_keystore_password_file.name}}}"
    props |= {
        "listeners": f"https://127.0.0.1:{spec.port}",
        "rest.advertised.listener": "https",
        "listeners.https.ssl.keystore.type": "PKCS12",
        "listeners.https.ssl.keystore.location": str(security.connect_keystore),
        "listeners.https.ssl.keystore.password": store_password,
        "listeners.https.ssl.key.password": store_password,
        "listeners.https.ssl.client.auth": "none",
        # With any listeners.https.* set, Connect reads only those, without defaults.
        "listeners.https.ssl.cipher.suites": "",
    }
    return props


def connector_config(
    connector_class: str,
    primary: str,
    mirror: str,
    mirror_size: int,
    policy: str,
    security: LabSecurity | None = None,
) -> dict[str, str]:
    rf = str(min(3, mirror_size))
    config = {
        "connector.class": f"org.apache.kafka.connect.mirror.{connector_class}",
        "tasks.max": "2",
        "source.cluster.alias": SOURCE_ALIAS,
        "target.cluster.alias": TARGET_ALIAS,
        "source.cluster.bootstrap.servers": primary,
        "target.cluster.bootstrap.servers": mirror,
        "key.converter": BYTES,
        "value.converter": BYTES,
        "header.converter": BYTES,
        "replication.policy.class": POLICIES[policy],
        "replication.policy.separator": ".",
        "replication.factor": rf,
        "topics": ".*",
        "groups": ".*",
        # Offset syncs on the target: neither MM2 nor kasten-bp writes to the primary.
        "offset-syncs.topic.location": "target",
        "offset-syncs.topic.replication.factor": rf,
        "checkpoints.topic.replication.factor": rf,
        "heartbeats.topic.replication.factor": rf,
        "refresh.topics.interval.seconds": "2",
        "refresh.groups.interval.seconds": "2",
        "sync.topic.configs.interval.seconds": "5",
        "emit.checkpoints.interval.seconds": "1",
        "emit.heartbeats.interval.seconds": "1",
        "sync.group.offsets.enabled": "true",
        "sync.group.offsets.interval.seconds": "1",
        "offset.lag.max": "0",
        "sync.topic.acls.enabled": "false",
        # Mirror only committed data (transactional topics on the primary).
        "source.consumer.isolation.level": "read_committed",
        "consumer.isolation.level": "read_committed",
    }
    if security is not None:
        for cluster in ("source.cluster.", "target.cluster."):
            config |= {cluster + k: v for k, v in _mm2_client(security).items()}
    return config


def start_worker(spec: ConnectSpec, archive_flags: list[str] | None = None) -> processes.Supervised:
    """Start the Connect worker; `archive_flags` replaces the class-archive flags."""
    if spec.handle.alive():
        return spec.handle
    java = jars.check_java()
    argv = [
        java,
        f"-Xmx{CONNECT_HEAP}",
        "-Xms64m",
        *JVM_FLAGS,
        *(jars.class_archive_flags("connect") if archive_flags is None else archive_flags),
        f"-Dlog4j2.configurationFile={LOG4J2}",
        f"-Dkasten.log.file={Path(spec.run_dir) / 'connect.log'}",
        "-cp",
        jars.classpath(),
        "org.apache.kafka.connect.cli.ConnectDistributed",
        str(spec.config_path),
    ]
    return processes.start("connect", argv, Path(spec.run_dir), marker=str(spec.config_path))
