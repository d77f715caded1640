"""`report verify`: the signature holds over the report, and every file checksum it names
still matches the object in the bucket."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kasten_bp.errors import UsageError
from kasten_bp.evidence.signing import Tampered, check_signature, load_public_key

# (export url, file key) -> (sha256, size) of the object as stored now.
Hasher = Callable[[str, str], tuple[str, int]]


def read_report(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"report {path}: cannot be read ({exc.strerror or exc})") from None
    try:
        doc = json.loads(text)
    except ValueError:
        raise Tampered(f"report {path}: not a JSON document") from None
    if not isinstance(doc, dict) or "backup" not in doc:
        raise Tampered(f"report {path}: not a kasten-bp evidence report")
    return doc


def verify_report(path: Path, public_key: Path, hasher: Hasher) -> dict[str, Any]:
    """Raises Tampered (exit 1) with one line, or returns what was checked."""
    key = load_public_key(public_key)
    doc = read_report(path)
    check_signature(doc, key)
    checked = 0
    export = doc.get("export")
    if export:
        for f in export["files"]:
            digest, _ = hasher(export["url"], f["key"])
            if digest != f["sha256"]:
                raise Tampered(
                    f"{export['url']}/{f['key']}: sha256 {digest} is not the report's {f['sha256']}"
                )
            checked += 1
    return {
        "report": str(path),
        "backup_id": doc["backup"]["backup_id"],
        "signature": "valid",
        "signed_by": doc["signature"].get("public_key_sha256"),
        "files_checked": checked,
    }
