"""`lab up --secure`: TLS and SCRAM-SHA-512 for both lab clusters and the Connect worker.

Under <workdir>/security:
  ca.crt, ca.key                  the lab's own CA (PEM)
  broker.pem                      every broker's key and certificate chain (PEM keystore;
                                  SAN 127.0.0.1 and localhost, server and client auth: the
                                  controller listener is mutual TLS with it)
  connect.p12, connect.p12.password   the Connect REST keystore (Jetty reads no PEM)
  <user>.password                 SCRAM passwords of admin, mm2 and kasten-bp

Every secret is a file of mode 0600; the lab's JSON and kasten-bp.yaml only name them.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Final

from pydantic import BaseModel

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

ADMIN, MM2, KASTEN_BP = "admin", "mm2", "kasten-bp"
USERS = (ADMIN, MM2, KASTEN_BP)
MECHANISM: Final = "SCRAM-SHA-512"
# The brokers' certificate subject; the controller listener (mutual TLS) maps it to this
# principal, a super user like admin.
BROKER_PRINCIPAL = "kafka-broker"
SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


class LabSecurity(BaseModel):
    dir: str

    @property
    def root(self) -> Path:
        return Path(self.dir)

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.crt"

    @property
    def broker_keystore(self) -> Path:
        return self.root / "broker.pem"

    @property
    def connect_keystore(self) -> Path:
        return self.root / "connect.p12"

    @property
    def connect_keystore_password_file(self) -> Path:
        return self.root / "connect.p12.password"

    def password_file(self, user: str) -> Path:
        return self.root / f"{user}.password"

    def password(self, user: str) -> str:
        return self.password_file(user).read_text().strip()

    def describe(self) -> dict[str, object]:
        return {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": MECHANISM,
            "ca_file": str(self.ca_file),
            "password_files": {u: str(self.password_file(u)) for u in USERS},
        }

    # --- what Kafka clients need -------------------------------------------------------

    def librdkafka(self, user: str) -> dict[str, str]:
        """confluent-kafka settings for `user` over SASL_SSL."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": MECHANISM,
            "sasl.username": user,
            "sasl.password": self.password(user),
            "ssl.ca.location": str(self.ca_file),
        }

    def java_client(self, user: str, password: str | None = None) -> dict[str, str]:
        """Java client settings for `user` over SASL_SSL; `password` may be a config
        provider reference instead of the secret itself."""
        secret = password if password is not None else self.password(user)
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": MECHANISM,
            "sasl.jaas.config": f'{SCRAM_LOGIN} required username="{user}" password="{secret}";',
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
        }

    def password_reference(self, user: str) -> str:
        """A Connect config-provider reference (DirectoryConfigProvider, provider `dir`)
        to the user's password file: the secret stays out of connector configs."""
        return f"${{dir:{self.root}:{self.password_file(user).name}}}"

    def scram_format_args(self) -> list[str]:
        """`kafka-storage format` arguments that create the SCRAM users at bootstrap."""
        args: list[str] = []
        for user in USERS:
            args += ["--add-scram", f"{MECHANISM}=[name={user},password={self.password(user)}]"]
        return args

    def broker_overrides(self, port: int, controller_port: int) -> dict[str, str]:
        """server.properties entries replacing the PLAINTEXT listeners."""
        admin_login = (
            f'{SCRAM_LOGIN} required username="{ADMIN}" password="{self.password(ADMIN)}";'
        )
        return {
            "listeners": f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"SASL_SSL://127.0.0.1:{port}",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SSL",
            "inter.broker.listener.name": "SASL_SSL",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": admin_login,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.broker_keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
            "listener.name.controller.ssl.client.auth": "required",
            "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
            "authorizer.class.name": AUTHORIZER,
            "super.users": f"User:{ADMIN};User:{BROKER_PRINCIPAL}",
            "allow.everyone.if.no.acl.found": "false",
        }


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


def _name(common_name: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def generate(root: Path) -> LabSecurity:
    """A CA, the broker and Connect certificates and random passwords, once per lab."""
    # Imported here: cryptography costs every command a tenth of a second to load, and
    # only `lab up --secure` makes certificates.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import ExtendedKeyUsageOID

    sec = LabSecurity(dir=str(root))
    if sec.ca_file.exists():
        return sec
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=3650)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("kasten-bp lab CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                        x509.DNSName("localhost"),
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        return key, cert

    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    plain = serialization.NoEncryption()

    broker_key, broker_cert = leaf(BROKER_PRINCIPAL)
    _write_secret(
        sec.broker_keystore,
        broker_key.private_bytes(pem, pkcs8, plain)
        + broker_cert.public_bytes(pem)
        + ca_cert.public_bytes(pem),
    )

    connect_key, connect_cert = leaf("kasten-bp-lab-connect")
    store_password = secrets.token_urlsafe(24)
    _write_secret(sec.connect_keystore_password_file, store_password.encode())
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(10000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(store_password.encode())
    )
    _write_secret(
        sec.connect_keystore,
        pkcs12.serialize_key_and_certificates(
            b"connect", connect_key, connect_cert, [ca_cert], encryption
        ),
    )

    for user in USERS:
        # URL-safe: no quotes, commas or brackets to escape in JAAS or --add-scram.
        _write_secret(sec.password_file(user), secrets.token_urlsafe(24).encode())
    _write_secret(root / "ca.key", ca_key.private_bytes(pem, pkcs8, plain))
    # Written last: its presence marks the directory complete.
    sec.ca_file.write_bytes(ca_cert.public_bytes(pem))
    return sec


def acls(role: str) -> list[tuple[str, str, str, str]]:
    """The lab's ACLs, (principal, resource type, name, operation), for `role` primary or
    mirror. admin and the brokers are super users and need none."""
    mm2, tool = f"User:{MM2}", f"User:{KASTEN_BP}"
    full = [
        (who, resource, name, "ALL")
        for who in (mm2, tool)
        for resource, name in (
            ("TOPIC", "*"),
            ("GROUP", "*"),
            ("CLUSTER", "kafka-cluster"),
            ("TRANSACTIONAL_ID", "*"),
        )
    ]
    if role == "mirror":
        return full
    # The primary is only read: MM2 reads topics, their configs and the groups' offsets it
    # checkpoints; kasten-bp reads records, watermarks, topic configs and committed group
    # offsets (FindCoordinator and OffsetFetch need DESCRIBE on the group), and writes
    # nothing: no WRITE, no group READ (commits), no CREATE, no ALTER.
    return [
        (mm2, "TOPIC", "*", "READ"),
        (mm2, "TOPIC", "*", "DESCRIBE"),
        (mm2, "TOPIC", "*", "DESCRIBE_CONFIGS"),
        (mm2, "GROUP", "*", "DESCRIBE"),
        (mm2, "GROUP", "*", "READ"),
        (mm2, "CLUSTER", "kafka-cluster", "DESCRIBE"),
        (mm2, "CLUSTER", "kafka-cluster", "DESCRIBE_CONFIGS"),
        (tool, "TOPIC", "*", "READ"),
        (tool, "TOPIC", "*", "DESCRIBE"),
        (tool, "TOPIC", "*", "DESCRIBE_CONFIGS"),
        (tool, "GROUP", "*", "DESCRIBE"),
    ]
