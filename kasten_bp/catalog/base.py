"""The catalog: where manifests, run journals and reports live (a directory, or S3).

Keys are '/'-separated paths such as `backups/<id>/manifest.json`. JSON documents are
written atomically: a reader sees the old or the new document, never half of one.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from kasten_bp.errors import UsageError

# What a backup id may be: kasten-bp makes `bk-<UTC time>-<hex>`; this admits any name that
# is safe as a catalog path segment and as a shell word (no '/', '..', spaces, quotes or
# `$`): an id from an artifact or a command line goes nowhere before this check.
_BACKUP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class Catalog(Protocol):
    url: str

    def write_json(self, key: str, data: dict[str, Any]) -> None: ...

    def read_json(self, key: str) -> dict[str, Any] | None:
        """The document, or None when the key does not exist."""
        ...

    def list_keys(self, prefix: str) -> list[str]:
        """All keys under prefix, sorted."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under prefix; returns how many were deleted."""
        ...


def checked_backup_id(backup_id: str) -> str:
    """The id, or UsageError (exit 2) in one line when it cannot be a backup id."""
    if not _BACKUP_ID.fullmatch(backup_id) or ".." in backup_id:
        raise UsageError(
            f"backup id {backup_id!r} is not a backup id (like bk-20261208T101500Z-1a2b): "
            "letters, digits, '.', '_' and '-' only"
        )
    return backup_id


def backup_key(backup_id: str, name: str) -> str:
    return f"backups/{checked_backup_id(backup_id)}/{name}"


def open_catalog(url: str) -> Catalog:
    """`s3://bucket/prefix` opens an S3 catalog; anything else is a local directory."""
    if url[:5].lower() == "s3://":
        from kasten_bp.catalog.s3 import S3Catalog

        # `S3://…` is the same URL (schemes are case-insensitive), never a directory.
        return S3Catalog("s3://" + url[5:])
    from kasten_bp.catalog.local import LocalCatalog

    return LocalCatalog(url.removeprefix("file://"))
