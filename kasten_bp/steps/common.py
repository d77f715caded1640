"""Helpers shared by steps: the manifest in the catalog, offsets in JSON form."""

from __future__ import annotations

from kasten_bp.catalog.base import backup_key
from kasten_bp.errors import KastenBpError
from kasten_bp.manifest import Manifest, parse_manifest
from kasten_bp.workflow.engine import RunContext

MANIFEST = "manifest.json"


def load_manifest(ctx: RunContext) -> Manifest:
    data = ctx.catalog.read_json(backup_key(ctx.backup_id, MANIFEST))
    if data is None:
        raise KastenBpError(f"backup {ctx.backup_id} has no manifest yet")
    return parse_manifest(data, f"of backup {ctx.backup_id}")


def save_manifest(ctx: RunContext, manifest: Manifest) -> None:
    ctx.catalog.write_json(backup_key(ctx.backup_id, MANIFEST), manifest.model_dump(mode="json"))


def offsets_to_json(offsets: dict[tuple[str, int], int]) -> dict[str, int]:
    return {f"{t}/{p}": o for (t, p), o in sorted(offsets.items())}


def offsets_from_json(data: dict[str, int]) -> dict[tuple[str, int], int]:
    out = {}
    for key, offset in data.items():
        topic, _, partition = key.rpartition("/")
        out[(topic, int(partition))] = int(offset)
    return out


def step_plan(ctx: RunContext, name: str) -> dict:
    return ctx.journal.step(name).plan


def step_result(ctx: RunContext, name: str) -> dict:
    return ctx.journal.step(name).result
