"""Typed configuration from kasten-bp.yaml, with KASTEN_BP_* environment overrides."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from kasten_bp.errors import UsageError

DEFAULT_CONFIG = Path("kasten-bp.yaml")


class KafkaEndpoint(BaseModel):
    bootstrap: str


class ConnectConfig(BaseModel):
    url: str
    connectors: list[str]


class ReplicationConfig(BaseModel):
    policy: Literal["identity", "default"] = "identity"
    source_alias: str = "primary"
    separator: str = "."

    def mirror_topic(self, primary_topic: str) -> str:
        if self.policy == "identity":
            return primary_topic
        return f"{self.source_alias}{self.separator}{primary_topic}"

    def primary_topic(self, mirror_topic: str) -> str | None:
        """The primary topic a mirror topic replicates, or None if it is not a replica."""
        if self.policy == "identity":
            return mirror_topic
        prefix = f"{self.source_alias}{self.separator}"
        return mirror_topic[len(prefix) :] if mirror_topic.startswith(prefix) else None


class BackupConfig(BaseModel):
    head_window: int = Field(64, ge=1, le=100000)
    catch_up_timeout_seconds: float = Field(120, gt=0)
    broker_stop_timeout_seconds: float = Field(90, gt=0)
    broker_start_timeout_seconds: float = Field(180, gt=0)
    replication_confirm_timeout_seconds: float = Field(120, gt=0)


class LocalPlatformConfig(BaseModel):
    lab_dir: str


class KubernetesConfig(BaseModel):
    """Where the mirror runs on Kubernetes (platforms strimzi and statefulset)."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str
    # strimzi: the Kafka resource name; statefulset: the brokers' StatefulSet name.
    cluster: str
    # strimzi: the KafkaMirrorMaker2 name; statefulset: the MM2 Deployment/StatefulSet name.
    mirrormaker: str | None = None
    snapshot_class: str | None = None
    # When set, one VolumeGroupSnapshot of this class instead of one VolumeSnapshot per PVC.
    group_snapshot_class: str | None = None
    restore_namespace: str | None = None
    # Kafka's bootstrap of a restored cluster, when the tool cannot derive it.
    restored_bootstrap: str | None = None
    timeout_seconds: float = Field(300, gt=0)


class Config(BaseModel):
    platform: Literal["local", "strimzi", "statefulset"] = "local"
    primary: KafkaEndpoint
    mirror: KafkaEndpoint
    connect: ConnectConfig
    replication: ReplicationConfig = Field(default_factory=ReplicationConfig)
    catalog: str
    backup: BackupConfig = Field(default_factory=lambda: BackupConfig.model_validate({}))
    local: LocalPlatformConfig | None = None
    kubernetes: KubernetesConfig | None = None


def config_path(path: Path | None) -> Path:
    """The config file a command uses: --config, else $KASTEN_BP_CONFIG, else ./kasten-bp.yaml."""
    return path or Path(os.environ.get("KASTEN_BP_CONFIG", DEFAULT_CONFIG))


def load_config(path: Path | None) -> Config:
    path = config_path(path)
    if not path.exists():
        raise UsageError(f"config {path} not found (pass --config, or run `kasten-bp lab up`)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise UsageError(f"config {path} must be a mapping")
    if "KASTEN_BP_CATALOG" in os.environ:
        raw["catalog"] = os.environ["KASTEN_BP_CATALOG"]
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"config {path}: {where}: {first['msg']}") from None


def write_config(config: Config, path: Path) -> None:
    path.write_text(
        yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=False)
    )
