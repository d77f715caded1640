"""Client security (issue 14): the config model, named secrets, env overrides, and the one
place that turns it into librdkafka and Connect client settings. No cluster is needed."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kasten_bp.config import (
    BasicAuth,
    ClientSecurity,
    Config,
    ConnectConfig,
    SslConfig,
    load_config,
    write_config,
)
from kasten_bp.connect import ConnectClient, ssl_context
from kasten_bp.errors import UsageError
from kasten_bp.kafka import clients
from kasten_bp.platforms.mm2_rest import ConnectRestMirrorMaker
from tests.certs import self_signed

SECRET = "s3cr3t-value-never-shown"

BASE: dict[str, Any] = {
    "platform": "local",
    "primary": {"bootstrap": "127.0.0.1:9092"},
    "mirror": {"bootstrap": "127.0.0.1:9093"},
    "connect": {"url": "http://127.0.0.1:8083", "connectors": ["mm2-source"]},
    "catalog": "/tmp/catalog",
    "local": {"lab_dir": "/tmp/lab"},
}

SECURED_PRIMARY = {
    "bootstrap": "broker-1:9093,broker-2:9093",
    "security_protocol": "SASL_SSL",
    "ssl": {"ca_file": "/etc/kafka/ca.crt"},
    "sasl": {"mechanism": "SCRAM-SHA-512", "username": "kasten-bp", "password_env": "KBP_PW"},
}


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import os

    for name in list(os.environ):
        if name.startswith("KASTEN_BP_"):
            monkeypatch.delenv(name)
    clients.clear_security()
    yield
    clients.clear_security()


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "kasten-bp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def with_(**sections: Any) -> dict[str, Any]:
    return {**BASE, **sections}


def refused(tmp_path: Path, data: object) -> str:
    with pytest.raises(UsageError) as info:
        load_config(write(tmp_path, data))
    assert info.value.exit_code == 2
    message = str(info.value)
    assert "\n" not in message
    assert SECRET not in message
    return message


# --- parsing -------------------------------------------------------------------------


def test_plain_config_defaults_to_plaintext(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))
    assert config.primary.security_protocol == "PLAINTEXT"
    assert config.primary.ssl is None and config.primary.sasl is None
    assert config.restored is None
    assert config.restored_security == ClientSecurity()
    assert config.connect.ssl is None and config.connect.basic_auth is None


def test_full_secured_config_parses(tmp_path: Path) -> None:
    data = with_(
        primary=SECURED_PRIMARY,
        mirror={
            "bootstrap": "mirror:9093",
            "security_protocol": "SSL",
            "ssl": {
                "ca_file": "/ca.crt",
                "cert_file": "/c.crt",
                "key_file": "/c.key",
                "key_password_env": "KEY_PW",
            },
        },
        restored={
            "security_protocol": "SASL_PLAINTEXT",
            "sasl": {"mechanism": "PLAIN", "username": "u", "password_file": "/pw"},
        },
        connect={
            "url": "https://127.0.0.1:8083",
            "connectors": ["a", "b"],
            "ssl": {"ca_file": "/ca.crt", "cert_file": "/c.crt", "key_file": "/c.key"},
            "basic_auth": {"username": "u", "password_env": "CONNECT_PW"},
        },
    )
    config = load_config(write(tmp_path, data))
    assert config.primary.security_protocol == "SASL_SSL"
    assert config.primary.sasl is not None and config.primary.sasl.password_env == "KBP_PW"
    assert config.mirror.ssl is not None and config.mirror.ssl.key_password_env == "KEY_PW"
    assert config.restored is not None and config.restored_security == config.restored
    assert config.connect.basic_auth == BasicAuth(username="u", password_env="CONNECT_PW")
    # Written back and read again: the same config, still only names.
    out = tmp_path / "out.yaml"
    write_config(config, out)
    assert load_config(out) == config
    assert "KBP_PW" in out.read_text()


def test_restored_defaults_to_the_mirrors_security(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, with_(mirror={**SECURED_PRIMARY, "bootstrap": "m:1"})))
    assert config.restored_security == ClientSecurity.model_validate(
        {k: v for k, v in SECURED_PRIMARY.items() if k != "bootstrap"}
    )


@pytest.mark.parametrize(
    ("section", "where"),
    [
        ({"bootstrap": "h:1", "security_protocol": "SASL_SSL"}, "needs sasl"),
        ({"bootstrap": "h:1", "security_protocol": "TLS"}, "security_protocol"),
        ({"bootstrap": "h:1", "ssl": {"ca_file": "/ca"}}, "ssl needs"),
        (
            {
                "bootstrap": "h:1",
                "security_protocol": "SSL",
                "sasl": {"username": "u", "password_env": "X"},
            },
            "sasl needs",
        ),
        (
            {"bootstrap": "h:1", "security_protocol": "SSL", "ssl": {"cert_file": "/c"}},
            "a certificate and a key go together",
        ),
        ({"bootstrap": "h:1", "securty_protocol": "SSL"}, "securty_protocol"),
        (
            {
                "bootstrap": "h:1",
                "security_protocol": "SASL_SSL",
                "sasl": {"username": "u"},
            },
            "exactly one of password_env, password_file",
        ),
        (
            {
                "bootstrap": "h:1",
                "security_protocol": "SASL_SSL",
                "sasl": {"username": "u", "password_env": "A", "password_file": "/b"},
            },
            "exactly one",
        ),
        (
            {
                "bootstrap": "h:1",
                "security_protocol": "SASL_SSL",
                "sasl": {"mechanism": "GSSAPI", "username": "u", "password_env": "A"},
            },
            "mechanism",
        ),
    ],
)
def test_inconsistent_security_is_refused(
    tmp_path: Path, section: dict[str, Any], where: str
) -> None:
    message = refused(tmp_path, with_(primary=section))
    assert "primary" in message and where in message


def test_unknown_connect_key_is_refused(tmp_path: Path) -> None:
    connect = {**BASE["connect"], "tls": {"ca_file": "/ca"}}
    assert "connect.tls" in refused(tmp_path, with_(connect=connect))


# --- inline secrets ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "key_path"),
    [
        (
            with_(
                primary={
                    **SECURED_PRIMARY,
                    "sasl": {"username": "u", "password": SECRET},
                }
            ),
            "primary.sasl.password",
        ),
        (
            with_(
                mirror={
                    "bootstrap": "m:1",
                    "security_protocol": "SSL",
                    "ssl": {"key_file": "/k", "cert_file": "/c", "key_password": SECRET},
                }
            ),
            "mirror.ssl.key_password",
        ),
        (
            with_(connect={**BASE["connect"], "basic_auth": {"username": "u", "password": SECRET}}),
            "connect.basic_auth.password",
        ),
        (with_(connect={**BASE["connect"], "token": SECRET}), "connect.token"),
        (
            with_(kubernetes={"namespace": "n", "cluster": "c", "secret": SECRET}),
            "kubernetes.secret",
        ),
        (with_(extras=[{"nested": {"api_token": SECRET}}]), "extras[0].nested.api_token"),
    ],
)
def test_inline_secret_is_refused_naming_the_key(
    tmp_path: Path, data: dict[str, Any], key_path: str
) -> None:
    message = refused(tmp_path, data)
    assert key_path in message and "inline" in message


def test_inline_secret_through_cli_exits_2_without_the_value(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kasten_bp.cli import app

    data = with_(primary={**SECURED_PRIMARY, "sasl": {"username": "u", "password": SECRET}})
    path = write(tmp_path, data)
    result = CliRunner().invoke(app, ["list", "--config", str(path)])
    assert result.exit_code == 2
    assert "primary.sasl.password" in result.output
    assert SECRET not in result.output


def test_named_secrets_and_empty_values_are_not_inline(tmp_path: Path) -> None:
    sasl = {"username": "u", "password_file": "/pw"}
    load_config(write(tmp_path, with_(primary={**SECURED_PRIMARY, "sasl": sasl})))
    # An empty `password:` holds no secret; it is refused as an unknown key instead.
    message = refused(
        tmp_path, with_(primary={**SECURED_PRIMARY, "sasl": {**sasl, "password": None}})
    )
    assert "primary.sasl.password" in message and "inline" not in message


# --- environment overrides -----------------------------------------------------------


def test_env_overrides_nested_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KASTEN_BP_PRIMARY__BOOTSTRAP", "other:9093")
    monkeypatch.setenv("KASTEN_BP_PRIMARY__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KASTEN_BP_PRIMARY__SASL__USERNAME", "kasten-bp")
    monkeypatch.setenv("KASTEN_BP_PRIMARY__SASL__PASSWORD_ENV", "KBP_PW")
    monkeypatch.setenv("KASTEN_BP_BACKUP__HEAD_WINDOW", "128")
    monkeypatch.setenv("KASTEN_BP_CONNECT__CONNECTORS", "[a, b]")
    monkeypatch.setenv("KASTEN_BP_CATALOG", "/elsewhere")
    monkeypatch.setenv("KASTEN_BP_S3_ENDPOINT", "http://not-an-override")
    config = load_config(write(tmp_path, BASE))
    assert config.primary.bootstrap == "other:9093"
    assert config.primary.security_protocol == "SASL_SSL"
    assert config.primary.sasl is not None
    assert (config.primary.sasl.username, config.primary.sasl.password_env) == (
        "kasten-bp",
        "KBP_PW",
    )
    assert config.backup.head_window == 128
    assert config.connect.connectors == ["a", "b"]
    assert config.catalog == "/elsewhere"


def test_env_override_with_inline_secret_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KASTEN_BP_PRIMARY__SASL__PASSWORD", SECRET)
    assert "primary.sasl.password" in refused(tmp_path, BASE)


def test_env_override_into_a_scalar_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KASTEN_BP_CATALOG__X", "y")
    message = refused(tmp_path, BASE)
    assert "KASTEN_BP_CATALOG__X" in message and "not a section" in message


def test_env_override_is_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KASTEN_BP_PRIMARY__SECURITY_PROTOCOL", "SASL_SSL")
    assert "needs sasl" in refused(tmp_path, BASE)


# --- librdkafka settings --------------------------------------------------------------


def security(**data: Any) -> ClientSecurity:
    return ClientSecurity.model_validate(data)


def test_plaintext_adds_nothing() -> None:
    assert clients.librdkafka_security(ClientSecurity()) == {}


def test_ssl_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY_PW", SECRET)
    tls = {"ca_file": "/ca", "cert_file": "/c", "key_file": "/k", "key_password_env": "KEY_PW"}
    assert clients.librdkafka_security(security(security_protocol="SSL", ssl=tls)) == {
        "security.protocol": "ssl",
        "ssl.ca.location": "/ca",
        "ssl.certificate.location": "/c",
        "ssl.key.location": "/k",
        "ssl.key.password": SECRET,
    }
    only_ca = security(security_protocol="SSL", ssl={"ca_file": "/ca"})
    assert clients.librdkafka_security(only_ca) == {
        "security.protocol": "ssl",
        "ssl.ca.location": "/ca",
    }
    # SSL with no ssl section: the system's CAs.
    assert clients.librdkafka_security(security(security_protocol="SSL")) == {
        "security.protocol": "ssl"
    }


def test_sasl_plaintext_settings_from_a_password_file(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text(SECRET + "\n")
    sasl = {"mechanism": "SCRAM-SHA-256", "username": "u", "password_file": str(pw)}
    assert clients.librdkafka_security(security(security_protocol="SASL_PLAINTEXT", sasl=sasl)) == {
        "security.protocol": "sasl_plaintext",
        "sasl.mechanisms": "SCRAM-SHA-256",
        "sasl.username": "u",
        "sasl.password": SECRET,
    }


def test_sasl_ssl_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KBP_PW", SECRET)
    conf = clients.librdkafka_security(
        ClientSecurity.model_validate(
            {k: v for k, v in SECURED_PRIMARY.items() if k != "bootstrap"}
        )
    )
    assert conf == {
        "security.protocol": "sasl_ssl",
        "ssl.ca.location": "/etc/kafka/ca.crt",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "kasten-bp",
        "sasl.password": SECRET,
    }


def test_unset_password_env_names_the_variable_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KBP_PW", raising=False)
    sec = security(security_protocol="SASL_SSL", sasl={"username": "u", "password_env": "KBP_PW"})
    with pytest.raises(UsageError) as info:
        clients.librdkafka_security(sec)
    assert info.value.exit_code == 2
    assert "KBP_PW" in str(info.value) and "not set" in str(info.value)


def test_unreadable_password_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    sec = security(
        security_protocol="SASL_SSL", sasl={"username": "u", "password_file": str(missing)}
    )
    with pytest.raises(UsageError) as info:
        clients.librdkafka_security(sec)
    assert str(missing) in str(info.value)


def test_secrets_are_read_at_client_creation(monkeypatch: pytest.MonkeyPatch) -> None:
    sec = security(security_protocol="SASL_SSL", sasl={"username": "u", "password_env": "KBP_PW"})
    clients.use_security("h:1", sec)  # registering reads nothing
    monkeypatch.setenv("KBP_PW", "first")
    assert clients._base("h:1", None)["sasl.password"] == "first"
    monkeypatch.setenv("KBP_PW", "rotated")
    assert clients._base("h:1", None)["sasl.password"] == "rotated"
    # The registry holds names only.
    assert "rotated" not in repr(clients.security_for("h:1"))


# --- the registry ---------------------------------------------------------------------


def test_registry_matches_the_same_host_set_in_any_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KBP_PW", SECRET)
    sec = security(security_protocol="SASL_SSL", sasl={"username": "u", "password_env": "KBP_PW"})
    clients.use_security("a:1,b:2", sec)
    assert clients.security_for("a:1,b:2") == sec
    assert clients.security_for(" b:2 , A:1") == sec
    assert clients.security_for("a:1") == ClientSecurity()  # another set: not this cluster
    base = clients._base("b:2,a:1", {"group.id": "g"})
    assert base["bootstrap.servers"] == "b:2,a:1"
    assert base["security.protocol"] == "sasl_ssl" and base["group.id"] == "g"
    assert "security.protocol" not in clients._base("c:3", None)


def test_default_security_for_unknown_clusters() -> None:
    sec = security(security_protocol="SSL", ssl={"ca_file": "/ca"})
    clients.use_default_security(sec)
    assert clients.security_for("restored:1") == sec
    clients.use_security("primary:1", ClientSecurity())
    assert clients.security_for("primary:1") == ClientSecurity()
    clients.use_default_security(None)
    assert clients.security_for("restored:1") == ClientSecurity()


def test_apply_config_security(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KBP_PW", SECRET)
    ca = tmp_path / "ca.crt"
    ca.write_text("not checked here")
    primary = {**SECURED_PRIMARY, "ssl": {"ca_file": str(ca)}}
    mirror = {
        "bootstrap": "mirror:9093",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl": {"username": "m", "password_env": "KBP_PW"},
    }
    config = Config.model_validate(with_(primary=primary, mirror=mirror))
    clients.apply_config_security(config)
    assert clients._base("broker-2:9093,broker-1:9093", None)["ssl.ca.location"] == str(ca)
    assert clients._base("mirror:9093", None)["sasl.username"] == "m"
    # A restored cluster: the mirror's security unless `restored` says otherwise.
    assert clients._base("restored:19093", None)["sasl.username"] == "m"
    restored = {"security_protocol": "SSL"}
    clients.apply_config_security(
        Config.model_validate(with_(primary=primary, mirror=mirror, restored=restored))
    )
    assert clients._base("restored:19093", None)["security.protocol"] == "ssl"


def test_replay_targets_carry_their_own_security(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KBP_PW", SECRET)
    target = {
        "bootstrap": "qa-kafka:9093",
        "security_protocol": "SASL_SSL",
        "sasl": {"mechanism": "SCRAM-SHA-256", "username": "replayer", "password_env": "KBP_PW"},
    }
    clients.apply_config_security(Config.model_validate(with_(targets=[target])))
    conf = clients._base("qa-kafka:9093", None)
    assert (conf["sasl.username"], conf["sasl.mechanisms"]) == ("replayer", "SCRAM-SHA-256")
    monkeypatch.delenv("KBP_PW")
    with pytest.raises(UsageError, match=r"targets\[0\] sasl: environment variable KBP_PW"):
        clients.apply_config_security(Config.model_validate(with_(targets=[target])))


def test_apply_config_security_checks_names_up_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KBP_PW", raising=False)
    with pytest.raises(UsageError, match="primary sasl: environment variable KBP_PW is not set"):
        clients.apply_config_security(Config.model_validate(with_(primary=SECURED_PRIMARY)))
    monkeypatch.setenv("KBP_PW", SECRET)
    missing = tmp_path / "missing-ca.crt"
    primary = {**SECURED_PRIMARY, "ssl": {"ca_file": str(missing)}}
    with pytest.raises(UsageError) as info:
        clients.apply_config_security(Config.model_validate(with_(primary=primary)))
    assert f"primary ssl.ca_file: cannot read {missing}" in str(info.value)
    assert SECRET not in str(info.value)


def test_librdkafka_accepts_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real clients are built with them (nothing connects until asked)."""
    monkeypatch.setenv("KBP_PW", SECRET)
    sec = security(
        security_protocol="SASL_PLAINTEXT",
        sasl={"mechanism": "SCRAM-SHA-512", "username": "u", "password_env": "KBP_PW"},
    )
    clients.use_security("127.0.0.1:1", sec)
    clients.admin("127.0.0.1:1")
    clients.producer("127.0.0.1:1").flush(0)
    clients.consumer("127.0.0.1:1").close()


# --- Connect --------------------------------------------------------------------------


def make_cert(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path, SECRET)


def test_connect_without_security_uses_system_trust() -> None:
    assert ssl_context(None) is True
    with ConnectClient("http://127.0.0.1:8083/") as client:
        assert client.url == "http://127.0.0.1:8083"
        assert client._http.auth is None


def test_connect_tls_and_basic_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert_file, key_file = make_cert(tmp_path)
    monkeypatch.setenv("KEY_PW", SECRET)
    monkeypatch.setenv("CONNECT_PW", "connect-pw")
    connect = ConnectConfig(
        url="https://127.0.0.1:8083",
        connectors=["a"],
        ssl=SslConfig(
            ca_file=str(cert_file),
            cert_file=str(cert_file),
            key_file=str(key_file),
            key_password_env="KEY_PW",
        ),
        basic_auth=BasicAuth(username="u", password_env="CONNECT_PW"),
    )
    assert connect.ssl is not None
    context = ssl_context(connect.ssl)
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert any(c.get("serialNumber") == "01" for c in context.get_ca_certs())
    with ConnectClient.for_config(connect) as client:
        request = client._http.build_request("GET", "/connectors")
        auth = client._http.auth
        assert isinstance(auth, httpx.BasicAuth)
        flow = auth.auth_flow(request)
        header = next(flow).headers["Authorization"]
        assert header == httpx.BasicAuth("u", "connect-pw")._auth_header
    rest = ConnectRestMirrorMaker(connect)
    assert rest.connectors == ["a"] and rest.url == connect.url
    with rest.client(timeout=3) as client:
        assert isinstance(client._http.auth, httpx.BasicAuth)


def test_connect_wrong_key_password_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_file, key_file = make_cert(tmp_path)
    monkeypatch.setenv("KEY_PW", "wrong")
    tls = SslConfig(cert_file=str(cert_file), key_file=str(key_file), key_password_env="KEY_PW")
    with pytest.raises(UsageError) as info:
        ssl_context(tls)
    assert "connect ssl" in str(info.value) and "wrong" not in str(info.value)


def test_connect_unset_basic_auth_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONNECT_PW", raising=False)
    connect = ConnectConfig(
        url="https://c:8083",
        connectors=[],
        basic_auth=BasicAuth(username="u", password_env="CONNECT_PW"),
    )
    with pytest.raises(UsageError, match="CONNECT_PW"):
        ConnectClient.for_config(connect)


# --- Kubernetes secrets (the reader is the API in production; here a dict stands in for
# it, and tests/integration/test_kubernetes_secrets.py reads real secrets) --------------


@pytest.fixture
def kube_secrets() -> Iterator[dict[tuple[str | None, str, str], bytes]]:
    from kasten_bp.config import KubeSecretKey, use_kube_secret_reader

    store: dict[tuple[str | None, str, str], bytes] = {}

    def read(ref: KubeSecretKey) -> bytes:
        return store[(ref.namespace, ref.name, ref.key)]

    use_kube_secret_reader(read)
    yield store
    use_kube_secret_reader(None)


STRIMZI_PRIMARY = {
    "bootstrap": "my-cluster-kafka-bootstrap.kafka:9093",
    "security_protocol": "SASL_SSL",
    "ssl": {"ca_secret_ref": {"name": "my-cluster-cluster-ca-cert", "key": "ca.crt"}},
    "sasl": {
        "username": "kasten-bp",
        "password_secret_ref": {"name": "kasten-bp", "key": "password"},
    },
}
KUBE = {"namespace": "kafka", "cluster": "my-cluster"}


def test_secret_refs_parse_and_are_listed(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, with_(primary=STRIMZI_PRIMARY, kubernetes=KUBE)))
    refs = {path: (ref.name, ref.key) for path, ref in config.kube_secret_refs()}
    assert refs == {
        "primary.ssl.ca_secret_ref": ("my-cluster-cluster-ca-cert", "ca.crt"),
        "primary.sasl.password_secret_ref": ("kasten-bp", "password"),
    }


def test_secret_refs_need_a_kubernetes_section(tmp_path: Path) -> None:
    message = refused(tmp_path, with_(primary=STRIMZI_PRIMARY))
    assert "primary.ssl.ca_secret_ref names a Kubernetes secret" in message
    assert "kubernetes:" in message


@pytest.mark.parametrize(
    ("ssl_section", "where"),
    [
        ({"ca_file": "/ca", "ca_secret_ref": {"name": "a", "key": "ca.crt"}}, "ca_file"),
        ({"cert_secret_ref": {"name": "u", "key": "user.crt"}}, "go together"),
        ({"key_password_env": "A", "ca_file": "/ca"}, "needs a key"),
    ],
)
def test_inconsistent_secret_refs_are_refused(
    tmp_path: Path, ssl_section: dict[str, Any], where: str
) -> None:
    primary = {"bootstrap": "h:1", "security_protocol": "SSL", "ssl": ssl_section}
    assert where in refused(tmp_path, with_(primary=primary, kubernetes=KUBE))


def test_a_password_secret_ref_excludes_the_other_names(tmp_path: Path) -> None:
    primary = {
        **STRIMZI_PRIMARY,
        "sasl": {**STRIMZI_PRIMARY["sasl"], "password_env": "PW"},
    }
    assert "exactly one" in refused(tmp_path, with_(primary=primary, kubernetes=KUBE))


def test_secret_refs_become_in_memory_pem_and_password(
    tmp_path: Path, kube_secrets: dict[tuple[str | None, str, str], bytes]
) -> None:
    cert_file, key_file = make_cert(tmp_path)
    kube_secrets[(None, "my-cluster-cluster-ca-cert", "ca.crt")] = cert_file.read_bytes()
    kube_secrets[(None, "kasten-bp", "password")] = SECRET.encode() + b"\n"
    kube_secrets[(None, "kasten-bp", "user.crt")] = cert_file.read_bytes()
    kube_secrets[(None, "kasten-bp", "user.key")] = key_file.read_bytes()
    kube_secrets[(None, "kasten-bp", "user.password")] = SECRET.encode()
    ssl_section = {
        **STRIMZI_PRIMARY["ssl"],
        "cert_secret_ref": {"name": "kasten-bp", "key": "user.crt"},
        "key_secret_ref": {"name": "kasten-bp", "key": "user.key"},
        "key_password_secret_ref": {"name": "kasten-bp", "key": "user.password"},
    }
    config = load_config(
        write(tmp_path, with_(primary={**STRIMZI_PRIMARY, "ssl": ssl_section}, kubernetes=KUBE))
    )
    conf = clients.librdkafka_security(config.primary)
    assert conf["ssl.ca.pem"] == cert_file.read_text()
    assert conf["ssl.certificate.pem"] == cert_file.read_text()
    assert conf["ssl.key.pem"] == key_file.read_text()
    assert conf["ssl.key.password"] == SECRET
    assert conf["sasl.password"] == SECRET  # stripped of the trailing newline
    assert not any(k.endswith(".location") for k in conf)
    # librdkafka accepts them (it parses the PEM when the client is built).
    clients.use_security("127.0.0.1:1", config.primary)
    clients.admin("127.0.0.1:1")


def test_a_missing_secret_names_it_never_a_value(
    tmp_path: Path, kube_secrets: dict[tuple[str | None, str, str], bytes]
) -> None:
    from kasten_bp.config import KubeSecretKey, use_kube_secret_reader

    def read(ref: KubeSecretKey) -> bytes:
        raise UsageError(f"{ref.describe()} not found")

    use_kube_secret_reader(read)
    config = load_config(write(tmp_path, with_(primary=STRIMZI_PRIMARY, kubernetes=KUBE)))
    with pytest.raises(UsageError) as info:
        clients.apply_config_security(config)
    assert str(info.value) == "primary sasl: Kubernetes secret kasten-bp key password not found"


def test_secret_refs_without_a_reader_are_a_usage_error(tmp_path: Path) -> None:
    from kasten_bp.config import use_kube_secret_reader

    use_kube_secret_reader(None)
    config = load_config(write(tmp_path, with_(primary=STRIMZI_PRIMARY, kubernetes=KUBE)))
    with pytest.raises(UsageError, match="no Kubernetes API is configured"):
        clients.librdkafka_security(config.primary, "primary")


def test_connect_tls_from_secrets(
    tmp_path: Path, kube_secrets: dict[tuple[str | None, str, str], bytes]
) -> None:
    cert_file, key_file = make_cert(tmp_path)
    kube_secrets[("mm2", "connect-ca", "ca.crt")] = cert_file.read_bytes()
    kube_secrets[("mm2", "connect-user", "user.crt")] = cert_file.read_bytes()
    kube_secrets[("mm2", "connect-user", "user.key")] = key_file.read_bytes()
    kube_secrets[("mm2", "connect-user", "user.password")] = SECRET.encode()
    tls = SslConfig.model_validate(
        {
            "ca_secret_ref": {"name": "connect-ca", "key": "ca.crt", "namespace": "mm2"},
            "cert_secret_ref": {"name": "connect-user", "key": "user.crt", "namespace": "mm2"},
            "key_secret_ref": {"name": "connect-user", "key": "user.key", "namespace": "mm2"},
            "key_password_secret_ref": {
                "name": "connect-user",
                "key": "user.password",
                "namespace": "mm2",
            },
        }
    )
    context = ssl_context(tls)
    assert isinstance(context, ssl.SSLContext)
    assert any(c.get("serialNumber") == "01" for c in context.get_ca_certs())


def test_connect_basic_auth_over_plain_http_is_refused_unless_allowed(tmp_path: Path) -> None:
    """Basic auth sends the password in every request (issue 28): only over https://, or
    where a person set connect.allow_insecure_auth."""
    auth = {"username": "u", "password_env": "CONNECT_PW"}
    plain = {"url": "http://127.0.0.1:8083", "connectors": ["a"], "basic_auth": auth}
    with pytest.raises(UsageError) as err:
        load_config(write(tmp_path, with_(connect=plain)))
    assert err.value.exit_code == 2
    assert "basic_auth over http://127.0.0.1:8083 would send its password in clear" in str(
        err.value
    )
    allowed = load_config(write(tmp_path, with_(connect={**plain, "allow_insecure_auth": True})))
    assert allowed.connect.basic_auth == BasicAuth(username="u", password_env="CONNECT_PW")
