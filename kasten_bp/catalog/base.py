"""The catalog: where manifests, run journals and reports live (a directory, or S3).

Keys are '/'-separated paths such as `backups/<id>/manifest.json`. JSON documents are
written atomically: a reader sees the old or the new document, never half of one.
"""

from __future__ import annotations

from typing import Any, Protocol


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


def backup_key(backup_id: str, name: str) -> str:
    return f"backups/{backup_id}/{name}"


def open_catalog(url: str) -> Catalog:
    """`s3://bucket/prefix` opens an S3 catalog; anything else is a local directory."""
    if url.startswith("s3://"):
        from kasten_bp.catalog.s3 import S3Catalog

        return S3Catalog(url)
    from kasten_bp.catalog.local import LocalCatalog

    return LocalCatalog(url.removeprefix("file://"))
