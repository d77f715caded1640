"""The lab from docker compose (pytest --kafka-from=docker). Needs a Docker engine, which
CI machines do not have; the local-process lab is the default."""

from __future__ import annotations

from pathlib import Path

import pytest

from kasten_bp.config import (
    Config,
    ConnectConfig,
    KafkaEndpoint,
    LocalPlatformConfig,
    ReplicationConfig,
    write_config,
)
from kasten_bp.connect import ConnectClient
from kasten_bp.kafka import admin
from kasten_bp.lab import mm2

from .helpers import LabHandle

COMPOSE = Path(__file__).parents[1] / "docker" / "docker-compose.yml"
# Inside the compose network the connectors reach the brokers by service name.
PRIMARY_IN, MIRROR_IN = "primary:9092", "mirror:9092"
PRIMARY_OUT, MIRROR_OUT, CONNECT_OUT = (
    "127.0.0.1:19092",
    "127.0.0.1:29092",
    "http://127.0.0.1:28083",
)


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(COMPOSE)


@pytest.fixture(scope="session")
def docker_lab(docker_services: object, tmp_path_factory: pytest.TempPathFactory) -> LabHandle:
    def ready() -> bool:
        try:
            admin.broker_ids(PRIMARY_OUT, timeout=2)
            admin.broker_ids(MIRROR_OUT, timeout=2)
            with ConnectClient(CONNECT_OUT) as c:
                return c.reachable()
        except Exception:  # noqa: BLE001 - not up yet
            return False

    docker_services.wait_until_responsive(timeout=180, pause=1, check=ready)  # type: ignore[attr-defined]
    with ConnectClient(CONNECT_OUT) as client:
        for name, cls in zip(mm2.connector_names(), mm2.CONNECTOR_CLASSES, strict=True):
            client.put_config(name, mm2.connector_config(cls, PRIMARY_IN, MIRROR_IN, 1, "identity"))
    workdir = tmp_path_factory.mktemp("docker-lab")
    path = workdir / "kasten-bp.yaml"
    write_config(docker_lab_config(workdir), path)
    return LabHandle(None, path)


def docker_lab_config(workdir: Path) -> Config:
    """The config `kasten-bp lab up` writes (kasten_bp.lab.lab.Lab._write_config), every
    section of it, for the compose lab: the same connectors, the identity replication
    policy they were created with, and a `local` section. Its lab_dir holds the run lock
    and restored clusters; the brokers there are containers, not lab processes, so a
    backup's preflight reports "no lab in <dir>" instead of the config failing to load."""
    return Config(
        platform="local",
        primary=KafkaEndpoint(bootstrap=PRIMARY_OUT),
        mirror=KafkaEndpoint(bootstrap=MIRROR_OUT),
        connect=ConnectConfig(url=CONNECT_OUT, connectors=mm2.connector_names()),
        replication=ReplicationConfig(policy="identity", source_alias=mm2.SOURCE_ALIAS),
        catalog=str(workdir / "catalog"),
        local=LocalPlatformConfig(lab_dir=str(workdir)),
    )
