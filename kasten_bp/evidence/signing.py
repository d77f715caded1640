"""ECDSA P-256 (SHA-256) signatures over a report's canonical JSON, embedded in it as
base64 DER, with the signing key's fingerprint (sha256 of its SubjectPublicKeyInfo)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kasten_bp.errors import KastenBpError, UsageError
from kasten_bp.evidence.canonical import SIGNATURE, canonical_json

ALGORITHM = "ECDSA-P256-SHA256"


class Tampered(KastenBpError):
    """The report or a file it names is not what was signed (exit 1)."""

    exit_code = 1


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot be read ({exc.strerror or exc})") from None


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    data = _read(path, "key file")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:120]
        raise UsageError(
            f"key file {path}: not an unencrypted PEM private key ({reason})"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise UsageError(f"key file {path}: not an ECDSA P-256 private key")
    return key


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    data = _read(path, "public key file")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:120]
        raise UsageError(f"public key file {path}: not a PEM public key ({reason})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise UsageError(f"public key file {path}: not an ECDSA P-256 public key")
    return key


def fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def sign(document: dict[str, Any], key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    """The document with its signature embedded (any previous one replaced)."""
    der = key.sign(canonical_json(document), ec.ECDSA(hashes.SHA256()))
    signed = {k: v for k, v in document.items() if k != SIGNATURE}
    signed[SIGNATURE] = {
        "algorithm": ALGORITHM,
        "canonical_form": "JSON, sorted keys, separators (',', ':'), UTF-8, without signature",
        "public_key_sha256": fingerprint(key.public_key()),
        "value": base64.b64encode(der).decode("ascii"),
    }
    return signed


def check_signature(document: dict[str, Any], key: ec.EllipticCurvePublicKey) -> None:
    """Raises Tampered with a one-line reason when the signature does not hold."""
    block = document.get(SIGNATURE)
    if not isinstance(block, dict) or "value" not in block:
        raise Tampered("the report is not signed (no signature field)")
    if block.get("algorithm") != ALGORITHM:
        raise Tampered(f"unknown signature algorithm {block.get('algorithm')!r}")
    if block.get("public_key_sha256") not in (None, fingerprint(key)):
        raise Tampered("the report was signed by another key (fingerprints differ)")
    try:
        der = base64.b64decode(str(block["value"]), validate=True)
        key.verify(der, canonical_json(document), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise Tampered(
            "signature does not match: the report was changed after it was signed"
        ) from None
