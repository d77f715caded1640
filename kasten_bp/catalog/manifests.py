"""Manifests in the catalog: `backups/<id>/manifest.json`."""

from __future__ import annotations

from typing import Any

from kasten_bp.catalog.base import Catalog, backup_key
from kasten_bp.errors import KastenBpError
from kasten_bp.manifest import Manifest, parse_manifest

MANIFEST = "manifest.json"


def manifest_data(catalog: Catalog, backup_id: str) -> dict[str, Any] | None:
    return catalog.read_json(backup_key(backup_id, MANIFEST))


def load_manifest(catalog: Catalog, backup_id: str) -> Manifest:
    data = manifest_data(catalog, backup_id)
    if data is None:
        raise KastenBpError(f"backup {backup_id} has no manifest in catalog {catalog.url}")
    return parse_manifest(data, f"of backup {backup_id}")


def save_manifest(catalog: Catalog, manifest: Manifest) -> None:
    catalog.write_json(backup_key(manifest.backup_id, MANIFEST), manifest.model_dump(mode="json"))
