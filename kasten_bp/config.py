"""Typed configuration from kasten-bp.yaml, with KASTEN_BP_* environment overrides.

Which file: `--config`, else `$KASTEN_BP_CONFIG`, else `./kasten-bp.yaml`.

Environment overrides, applied to the file's content before validation:

- `KASTEN_BP_CATALOG` replaces `catalog`;
- `KASTEN_BP_<SECTION>__<FIELD>[__<SUBFIELD>...]` (double underscores between levels,
  case-insensitive) sets one field at any depth, e.g. `KASTEN_BP_PRIMARY__BOOTSTRAP=h:9093`,
  `KASTEN_BP_PRIMARY__SASL__USERNAME=kasten-bp`, `KASTEN_BP_BACKUP__HEAD_WINDOW=128`. A
  value starting with `[` or `{` is read as YAML (`KASTEN_BP_CONNECT__CONNECTORS=[a, b]`);
  anything else is a string that validation converts. Variables without `__` (such as
  `KASTEN_BP_CONFIG`, `KASTEN_BP_S3_ENDPOINT`) are not overrides.

Client security (issue 14). Each Kafka cluster (`primary`, `mirror`, and `restored` for
restored clusters, which defaults to the mirror's security) takes

    security_protocol: SASL_SSL   # PLAINTEXT (default) | SSL | SASL_PLAINTEXT | SASL_SSL
    ssl: {ca_file: ..., cert_file: ..., key_file: ..., key_password_env: VAR}
    sasl: {mechanism: SCRAM-SHA-512, username: kasten-bp, password_env: VAR}

and `connect` takes `ssl: {ca_file, cert_file, key_file, key_password_env}` and
`basic_auth: {username, password_env | password_file}`. Secrets are *named*, never written
in the file: a `*_env` field names an environment variable, a `*_file` field a file holding
the secret, and a `*_secret_ref: {name, key, namespace}` field a key of a Kubernetes Secret
(Strimzi's `<cluster>-cluster-ca-cert` / `ca.crt`, a KafkaUser's `password`, `user.crt`,
`user.key`), read through the API (namespace: `kubernetes.namespace` unless given). All are
read only when a client is created. A file with an inline secret
(a key such as `password`, `key_password`, `token` or `secret` holding a value, at any
depth, also through an environment override) is refused, naming the key, never the value.
`kasten_bp.kafka.clients.apply_config_security` applies the Kafka part to every client;
`kasten_bp.connect.ConnectClient.for_config` the Connect part.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from kasten_bp.errors import UsageError

DEFAULT_CONFIG = Path("kasten-bp.yaml")
ENV_PREFIX = "KASTEN_BP_"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

# Key names that hold a secret when they hold a value; `<word>_env` and `<word>_file` name one.
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token", "credential")
_SECRET_NAMING_SUFFIXES = ("_env", "_file", "_name", "_ref")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KubeSecretKey(_Strict):
    """One key of a Kubernetes Secret (a Strimzi cluster CA or KafkaUser secret), read
    through the API when a client is created; never stored. Namespace: kubernetes.namespace
    unless given."""

    name: str
    key: str
    namespace: str | None = None

    def describe(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"Kubernetes secret {where}{self.name} key {self.key}"


# Reads a KubeSecretKey's value: installed by the command layer (kasten_bp.backup) from the
# config's `kubernetes` section; the config layer itself never talks to an API server.
KubeSecretReader = Callable[[KubeSecretKey], bytes]
_kube_secret_reader: KubeSecretReader | None = None


def use_kube_secret_reader(reader: KubeSecretReader | None) -> None:
    global _kube_secret_reader
    _kube_secret_reader = reader


def read_kube_secret(ref: KubeSecretKey, what: str) -> bytes:
    if _kube_secret_reader is None:
        raise UsageError(f"{what}: names {ref.describe()}, but no Kubernetes API is configured")
    try:
        return _kube_secret_reader(ref)
    except UsageError as exc:  # say which setting named the secret
        raise UsageError(f"{what}: {exc}") from None


def read_secret(
    env: str | None, file: str | None, what: str, ref: KubeSecretKey | None = None
) -> str:
    """The secret named by an environment variable, a file or a Kubernetes secret;
    UsageError naming the variable, file or secret (never a value) when it cannot be read."""
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise UsageError(f"{what}: environment variable {env} is not set")
        return value
    if file is not None:
        try:
            return Path(file).read_text().strip()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise UsageError(f"{what}: cannot read password file {file}: {reason}") from None
    if ref is not None:
        return read_kube_secret(ref, what).decode().strip()
    raise UsageError(f"{what}: no secret named (set *_env, *_file or *_secret_ref)")


class SecretRef(_Strict):
    """A password named by an environment variable, a file or a Kubernetes secret (one)."""

    password_env: str | None = None
    password_file: str | None = None
    password_secret_ref: KubeSecretKey | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        named = [self.password_env, self.password_file, self.password_secret_ref]
        if sum(n is not None for n in named) != 1:
            raise ValueError(
                "name the password with exactly one of password_env, password_file, "
                "password_secret_ref"
            )
        return self

    def password(self, what: str) -> str:
        return read_secret(self.password_env, self.password_file, what, self.password_secret_ref)


class SslConfig(_Strict):
    """TLS for a client: the CA to trust and, for mutual TLS, a certificate and key (PEM),
    each from a file or from a Kubernetes secret (`*_secret_ref`; e.g. Strimzi's
    `<cluster>-cluster-ca-cert` key `ca.crt`, a KafkaUser's `user.crt` and `user.key`)."""

    ca_file: str | None = None
    ca_secret_ref: KubeSecretKey | None = None
    cert_file: str | None = None
    cert_secret_ref: KubeSecretKey | None = None
    key_file: str | None = None
    key_secret_ref: KubeSecretKey | None = None
    key_password_env: str | None = None
    key_password_file: str | None = None
    key_password_secret_ref: KubeSecretKey | None = None

    @model_validator(mode="after")
    def _pairs(self) -> SslConfig:
        for what, file, ref in (
            ("ca", self.ca_file, self.ca_secret_ref),
            ("cert", self.cert_file, self.cert_secret_ref),
            ("key", self.key_file, self.key_secret_ref),
        ):
            if file is not None and ref is not None:
                raise ValueError(f"name the {what} with one of {what}_file, {what}_secret_ref")
        if self.has_cert != self.has_key:
            raise ValueError("a certificate and a key go together (cert_* and key_*)")
        passwords = [self.key_password_env, self.key_password_file, self.key_password_secret_ref]
        if sum(p is not None for p in passwords) > 1:
            raise ValueError(
                "name the key password with one of key_password_env, key_password_file, "
                "key_password_secret_ref"
            )
        if not self.has_key and self.has_key_password:
            raise ValueError("a key password needs a key (key_file or key_secret_ref)")
        return self

    @property
    def has_cert(self) -> bool:
        return self.cert_file is not None or self.cert_secret_ref is not None

    @property
    def has_key(self) -> bool:
        return self.key_file is not None or self.key_secret_ref is not None

    @property
    def has_key_password(self) -> bool:
        named = [self.key_password_env, self.key_password_file, self.key_password_secret_ref]
        return any(n is not None for n in named)

    def key_password(self, what: str) -> str:
        return read_secret(
            self.key_password_env,
            self.key_password_file,
            f"{what} ssl key",
            self.key_password_secret_ref,
        )

    def pem_from_secrets(self, what: str) -> dict[str, str]:
        """The CA, certificate and key that come from Kubernetes secrets, as PEM text keyed
        `ca`, `cert`, `key` (read now; hand straight to the client, never keep)."""
        out: dict[str, str] = {}
        for name, ref in (
            ("ca", self.ca_secret_ref),
            ("cert", self.cert_secret_ref),
            ("key", self.key_secret_ref),
        ):
            if ref is not None:
                out[name] = read_kube_secret(ref, f"{what} ssl.{name}_secret_ref").decode()
        return out

    def check(self, what: str) -> None:
        """The key password and every file and secret named readable now (UsageError)."""
        if self.has_key_password:
            self.key_password(what)
        named = [("ca_file", self.ca_file), ("cert_file", self.cert_file)]
        named += [("key_file", self.key_file)]
        for field, path in named:
            if path is not None and not os.access(path, os.R_OK):
                raise UsageError(f"{what} ssl.{field}: cannot read {path}")
        self.pem_from_secrets(what)


class SaslConfig(SecretRef):
    mechanism: str = "SCRAM-SHA-512"  # one of SASL_MECHANISMS
    username: str

    @field_validator("mechanism")
    @classmethod
    def _known_mechanism(cls, value: str) -> str:
        if value not in SASL_MECHANISMS:
            raise ValueError(f"mechanism must be one of {', '.join(SASL_MECHANISMS)}")
        return value


class ClientSecurity(_Strict):
    """How a Kafka client authenticates and encrypts; PLAINTEXT (nothing) by default."""

    security_protocol: SecurityProtocol = "PLAINTEXT"
    ssl: SslConfig | None = None
    sasl: SaslConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ClientSecurity:
        protocol = self.security_protocol
        if protocol.startswith("SASL_") and self.sasl is None:
            raise ValueError(f"security_protocol {protocol} needs sasl")
        if not protocol.startswith("SASL_") and self.sasl is not None:
            raise ValueError(
                f"sasl needs security_protocol SASL_SSL or SASL_PLAINTEXT, not {protocol}"
            )
        if not protocol.endswith("SSL") and self.ssl is not None:
            raise ValueError(f"ssl needs security_protocol SSL or SASL_SSL, not {protocol}")
        return self

    @property
    def plaintext(self) -> bool:
        return self.security_protocol == "PLAINTEXT"

    def security(self) -> ClientSecurity:
        """Only the security part (an endpoint without its bootstrap)."""
        return ClientSecurity(
            security_protocol=self.security_protocol, ssl=self.ssl, sasl=self.sasl
        )

    def check(self, what: str) -> None:
        """Every named secret and file readable now: UsageError (exit 2) naming what is not."""
        if self.sasl is not None:
            self.sasl.password(f"{what} sasl")
        if self.ssl is not None:
            self.ssl.check(what)


class KafkaEndpoint(ClientSecurity):
    bootstrap: str


class BasicAuth(SecretRef):
    username: str


class ConnectConfig(_Strict):
    url: str
    connectors: list[str]
    ssl: SslConfig | None = None
    basic_auth: BasicAuth | None = None
    # Basic auth sends the password in every request: over http:// anyone on the path
    # reads it. Refused unless a person says the network is theirs.
    allow_insecure_auth: bool = False

    @model_validator(mode="after")
    def _auth_over_tls(self) -> ConnectConfig:
        insecure = not self.url.lower().startswith("https://")
        if self.basic_auth is not None and insecure and not self.allow_insecure_auth:
            raise ValueError(
                f"basic_auth over {self.url} would send its password in clear: use an "
                "https:// url, or set connect.allow_insecure_auth: true"
            )
        return self

    def check(self) -> None:
        """Every named secret and file readable now: UsageError (exit 2) naming what is not."""
        if self.basic_auth is not None:
            self.basic_auth.password("connect basic_auth")
        if self.ssl is not None:
            self.ssl.check("connect")


class ReplicationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo is an error, never a default

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
    model_config = ConfigDict(extra="forbid")

    head_window: int = Field(64, ge=1, le=100000)
    catch_up_timeout_seconds: float = Field(120, gt=0)
    broker_stop_timeout_seconds: float = Field(90, gt=0)
    broker_start_timeout_seconds: float = Field(180, gt=0)
    replication_confirm_timeout_seconds: float = Field(120, gt=0)
    # Seal a content digest of every partition below the cut, once the mirror serves again,
    # so a restore can be proven record by record without the primary (verify --deep
    # --against manifest).
    seal_content: bool = True


class VerifyConfig(_Strict):
    # verify --against auto: how long the primary has to answer before the restore is
    # compared with the backup's manifest instead.
    primary_timeout_seconds: float = Field(15, gt=0)


class GroupsConfig(_Strict):
    """Which consumer groups of the primary a backup records (issue 8): a group is recorded
    when its id fully matches one `include` regex and no `exclude` regex."""

    include: list[str] = Field(default_factory=lambda: [".*"])
    exclude: list[str] = Field(default_factory=list)

    @field_validator("include", "exclude")
    @classmethod
    def _valid_regexes(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a valid regex {pattern!r}: {exc}") from None
        return patterns

    @classmethod
    def including(cls, patterns: list[str], exclude: list[str] | None = None) -> GroupsConfig:
        """`--group` patterns as a selection (UsageError, exit 2, for a bad regex)."""
        try:
            return cls(include=patterns, exclude=exclude or [])
        except ValidationError as exc:
            raise UsageError(
                f"--group: {exc.errors()[0]['msg'].removeprefix('Value error, ')}"
            ) from None

    def selects(self, group: str) -> bool:
        included = any(re.fullmatch(p, group) for p in self.include)
        return included and not any(re.fullmatch(p, group) for p in self.exclude)


class LocalPlatformConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lab_dir: str


class KubernetesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
    model_config = ConfigDict(extra="forbid")

    platform: Literal["local", "strimzi", "statefulset"] = "local"
    primary: KafkaEndpoint
    mirror: KafkaEndpoint
    # Security of restored clusters (verify --restored, restore targets); None: the mirror's,
    # since a restored cluster is a copy of the mirror.
    restored: ClientSecurity | None = None
    # Clusters `replay --to` writes into, each with its own client security.
    targets: list[KafkaEndpoint] = Field(default_factory=list)
    connect: ConnectConfig
    replication: ReplicationConfig = Field(default_factory=ReplicationConfig)
    catalog: str
    backup: BackupConfig = Field(default_factory=lambda: BackupConfig.model_validate({}))
    groups: GroupsConfig = Field(default_factory=GroupsConfig)
    verify: VerifyConfig = Field(default_factory=lambda: VerifyConfig.model_validate({}))
    local: LocalPlatformConfig | None = None
    kubernetes: KubernetesConfig | None = None

    @property
    def restored_security(self) -> ClientSecurity:
        return self.restored if self.restored is not None else self.mirror.security()

    def kube_secret_refs(self) -> list[tuple[str, KubeSecretKey]]:
        """Every Kubernetes secret the config names, with the key path naming it."""
        found: list[tuple[str, KubeSecretKey]] = []

        def walk(model: BaseModel, path: str) -> None:
            for field in type(model).model_fields:
                value = getattr(model, field)
                where = f"{path}.{field}" if path else field
                if isinstance(value, KubeSecretKey):
                    found.append((where, value))
                elif isinstance(value, BaseModel):
                    walk(value, where)

        walk(self, "")
        return found

    @model_validator(mode="after")
    def _secrets_need_kubernetes(self) -> Config:
        refs = self.kube_secret_refs()
        if refs and self.kubernetes is None:
            raise ValueError(
                f"{refs[0][0]} names a Kubernetes secret: add a `kubernetes:` section "
                "(namespace, and kubeconfig unless in-cluster)"
            )
        return self


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
    apply_env_overrides(raw, os.environ)
    refuse_inline_secrets(raw, f"config {path}")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            raise UsageError(f"config {path}: {unknown_key(first['loc'])}") from None
        raise UsageError(f"config {path}: {where}: {first['msg']}") from None


def unknown_key(loc: tuple[int | str, ...]) -> str:
    """`unknown key kubernetes.snapshot_clas: did you mean snapshot_class?`"""
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(str(part))
        model = _model_of(field.annotation) if field is not None else None
    where = ".".join(str(p) for p in loc if not isinstance(p, int))
    valid = sorted(model.model_fields) if model is not None else []
    near = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
    if near:
        return f"unknown key {where}: did you mean {near[0]}?"
    return f"unknown key {where} (known here: {', '.join(valid)})"


def _model_of(annotation: Any) -> Any:
    """The pydantic model inside an annotation (`X | None`, `list[X]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def write_config(config: Config, path: Path) -> None:
    path.write_text(
        yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=False)
    )


def apply_env_overrides(raw: dict[str, Any], environ: Any) -> None:
    """Set `KASTEN_BP_<SECTION>__<FIELD>[__<SUBFIELD>]` values into the raw config."""
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX) or "__" not in name:
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__")]
        if not all(keys):
            raise UsageError(f"environment {name}: empty name between double underscores")
        value: Any = environ[name]
        if value.lstrip().startswith(("[", "{")):
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                raise UsageError(f"environment {name}: not valid YAML") from None
        node = raw
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                where = ".".join(keys[: depth + 1])
                raise UsageError(f"environment {name}: {where} is not a section")
            node = child
        node[keys[-1]] = value


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    if lowered.endswith(_SECRET_NAMING_SUFFIXES):
        return False
    return any(word in lowered for word in _SECRET_WORDS)


def refuse_inline_secrets(raw: Any, where: str, path: str = "") -> None:
    """UsageError naming the first key path that holds a secret's value (never the value)."""
    if isinstance(raw, dict):
        for key, value in raw.items():
            key_path = f"{path}.{key}" if path else str(key)
            if _is_secret_key(str(key)) and value not in (None, ""):
                raise UsageError(
                    f"{where}: {key_path}: inline secrets are refused; name the secret "
                    f"with {key}_env (an environment variable) or {key}_file (a file)"
                )
            refuse_inline_secrets(value, where, key_path)
    elif isinstance(raw, list):
        for index, item in enumerate(raw):
            refuse_inline_secrets(item, where, f"{path}[{index}]")
