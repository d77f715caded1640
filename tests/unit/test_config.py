"""Loading kasten-bp.yaml and the replication policies' topic naming."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kasten_bp.config import Config, ReplicationConfig, load_config, write_config
from kasten_bp.errors import UsageError

VALID = {
    "platform": "local",
    "primary": {"bootstrap": "127.0.0.1:9092"},
    "mirror": {"bootstrap": "127.0.0.1:9093"},
    "connect": {"url": "http://127.0.0.1:8083", "connectors": ["mm2-source"]},
    "catalog": "/tmp/catalog",
    "local": {"lab_dir": "/tmp/lab"},
}


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KASTEN_BP_CONFIG", raising=False)
    monkeypatch.delenv("KASTEN_BP_CATALOG", raising=False)


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "kasten-bp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def one_line(exc: UsageError) -> str:
    message = str(exc)
    assert "\n" not in message
    return message


def test_valid_config_loads_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    assert config.primary.bootstrap == "127.0.0.1:9092"
    assert config.connect.connectors == ["mm2-source"]
    assert config.replication.policy == "identity"
    assert config.backup.head_window == 64
    assert config.local is not None and config.local.lab_dir == "/tmp/lab"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(UsageError) as info:
        load_config(path)
    assert info.value.exit_code == 2
    message = one_line(info.value)
    assert str(path) in message and "not found" in message


def test_env_names_the_default_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, VALID)
    monkeypatch.setenv("KASTEN_BP_CONFIG", str(path))
    assert load_config(None).mirror.bootstrap == "127.0.0.1:9093"


def test_env_overrides_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KASTEN_BP_CATALOG", "s3://bucket/prefix")
    assert load_config(write(tmp_path, VALID)).catalog == "s3://bucket/prefix"


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("primary: {bootstrap: [unclosed\nmirror: :\n")
    with pytest.raises(UsageError) as info:
        load_config(path)
    message = one_line(info.value)
    assert "not valid YAML" in message and str(path) in message


def test_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="must be a mapping"):
        load_config(write(tmp_path, ["a", "b"]))


def test_empty_file_names_a_missing_field(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(UsageError) as info:
        load_config(path)
    assert "primary" in one_line(info.value)


@pytest.mark.parametrize("field", ["primary", "mirror", "connect", "catalog"])
def test_missing_field_is_named(tmp_path: Path, field: str) -> None:
    data = {k: v for k, v in VALID.items() if k != field}
    with pytest.raises(UsageError) as info:
        load_config(write(tmp_path, data))
    message = one_line(info.value)
    assert f": {field}: " in message
    assert info.value.exit_code == 2


def test_missing_nested_field_is_named_by_path(tmp_path: Path) -> None:
    data = {**VALID, "connect": {"url": "http://x"}}
    with pytest.raises(UsageError) as info:
        load_config(write(tmp_path, data))
    assert "connect.connectors" in one_line(info.value)


def test_wrong_value_is_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        load_config(write(tmp_path, {**VALID, "backup": {"head_window": 0}}))
    assert "backup.head_window" in one_line(info.value)
    with pytest.raises(UsageError) as info:
        load_config(write(tmp_path, {**VALID, "platform": "nomad"}))
    assert "platform" in one_line(info.value)


def test_write_config_round_trip(tmp_path: Path) -> None:
    config = Config.model_validate(VALID)
    path = tmp_path / "out.yaml"
    write_config(config, path)
    assert load_config(path) == config


def test_identity_policy() -> None:
    policy = ReplicationConfig(policy="identity")
    assert policy.mirror_topic("orders") == "orders"
    assert policy.primary_topic("orders") == "orders"
    assert policy.primary_topic("primary.orders") == "primary.orders"


def test_default_policy_prefixes_the_source_alias() -> None:
    policy = ReplicationConfig(policy="default")
    assert policy.mirror_topic("orders") == "primary.orders"
    assert policy.primary_topic("primary.orders") == "orders"
    # A topic with a dot in its own name keeps it.
    assert policy.primary_topic("primary.orders.v2") == "orders.v2"
    # Not a replica of the primary: a local topic or another source's.
    assert policy.primary_topic("orders") is None
    assert policy.primary_topic("other.orders") is None
    assert policy.primary_topic("primaryorders") is None


def test_default_policy_custom_alias_and_separator() -> None:
    policy = ReplicationConfig(policy="default", source_alias="dc1", separator="_")
    assert policy.mirror_topic("orders") == "dc1_orders"
    assert policy.primary_topic("dc1_orders") == "orders"
    assert policy.primary_topic("dc1.orders") is None


@pytest.mark.parametrize("policy", ["identity", "default"])
def test_policies_round_trip(policy: str) -> None:
    rep = ReplicationConfig.model_validate({"policy": policy})
    for topic in ("a", "orders.v2", "x-y_z"):
        assert rep.primary_topic(rep.mirror_topic(topic)) == topic


# Strict config (issue 28, point 4): a typo is one line naming the key and the nearest
# valid one, never a silent default.
@pytest.mark.parametrize(
    ("section", "typo", "told"),
    [
        (None, "catalg", "unknown key catalg: did you mean catalog?"),
        ("backup", "head_windw", "unknown key backup.head_windw: did you mean head_window?"),
        ("replication", "polcy", "unknown key replication.polcy: did you mean policy?"),
        ("local", "lab_dri", "unknown key local.lab_dri: did you mean lab_dir?"),
        (
            "kubernetes",
            "snapshot_clas",
            "unknown key kubernetes.snapshot_clas: did you mean snapshot_class?",
        ),
        ("connect", "urll", "unknown key connect.urll: did you mean url?"),
        ("primary", "zzz", "unknown key primary.zzz (known here: "),
    ],
)
def test_an_unknown_key_is_named_with_the_nearest_valid_one(
    tmp_path: Path, section: str | None, typo: str, told: str
) -> None:
    data = {**VALID, "kubernetes": {"namespace": "kafka", "cluster": "mirror"}}
    if section is None:
        data[typo] = "x"
    else:
        data[section] = {**data.get(section, {}), typo: "x"}  # type: ignore[dict-item]
    path = write(tmp_path, data)
    with pytest.raises(UsageError) as err:
        load_config(path)
    assert err.value.exit_code == 2
    assert one_line(err.value).startswith(f"config {path}: {told}")


def test_an_upper_case_s3_scheme_is_an_s3_catalog_never_a_directory(tmp_path: Path) -> None:
    from kasten_bp.catalog.base import open_catalog
    from kasten_bp.catalog.s3 import S3Catalog

    catalog = open_catalog("S3://bucket/prefix")
    assert isinstance(catalog, S3Catalog) and catalog.url == "s3://bucket/prefix"
