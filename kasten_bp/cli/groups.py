"""`groups plan` and `groups apply`: a backup's consumer groups on a restored cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from kasten_bp.cli.backups import ConfigOption, _backups
from kasten_bp.cli.output import Output, OutputOption, emit
from kasten_bp.cli.restore_verify import (
    AgainstOption,
    _completed_manifest,
    group_plan,
    restored_bootstrap,
    say,
)
from kasten_bp.cli.runner import run_command
from kasten_bp.errors import UsageError

app = typer.Typer(help="Consumer groups: where they resume on a restored cluster.")

RestoredOption = typer.Option(None, "--restored", help="bootstrap of the restored cluster")
GroupOption = typer.Option(
    [], "--group", help="only groups whose id fully matches this regex (repeatable)"
)


def render_plan(d: dict[str, Any]) -> str:
    verb = "would set" if d.get("dry_run") else "groups of"
    lines = [f"{verb} backup {d['backup_id']} on {d['restored_bootstrap']}"]
    lines.append(
        f"  {'group':<24} {'topic[partition]':<28} {'primary':>9} {'restored':>9} "
        f"{'method':<15} {'reread':>6} {'MM2':>9}"
    )
    for g in d["groups"]:
        for p in g["partitions"]:
            restored = "-" if p["restored_offset"] is None else str(p["restored_offset"])
            reread = "?" if p["reread"] is None else str(p["reread"])
            mark = " *" if p.get("written") else ""
            mm2 = p.get("checkpoint_offset")
            mm2_text = "-" if mm2 is None else str(mm2)
            where = f"{p['topic']}[{p['partition']}]"
            lines.append(
                f"  {g['group']:<24} {where:<28} "
                f"{p['primary_offset']:>9} {restored:>9} {p['method']:<15} {reread:>6} "
                f"{mm2_text:>9}{mark}"
            )
            if p["method"] not in ("exact",) and p["detail"]:
                lines.append(f"      {p['detail']}")
    return "\n".join(lines)


def _refuse_live_clusters(bootstrap: str, config: Any) -> None:
    """`groups apply` commits offsets: never onto the primary or the live mirror, where it
    would move the consumers of production (issue 28)."""
    target = {a.strip().lower() for a in bootstrap.split(",") if a.strip()}
    for name, endpoint in (("primary", config.primary), ("mirror", config.mirror)):
        live = {a.strip().lower() for a in endpoint.bootstrap.split(",") if a.strip()}
        if target & live:
            raise UsageError(
                f"--restored {bootstrap} is the {name} cluster ({endpoint.bootstrap}): groups "
                "apply commits offsets only onto a restored cluster"
            )


def _plan(
    config: Path | None,
    backup_id: str,
    restored: str | None,
    group: list[str],
    against: str,
    writes: bool = False,
) -> Any:
    from kasten_bp import groups
    from kasten_bp.against import check_against, resolve

    check_against(against)
    b = _backups(config)
    manifest = _completed_manifest(b, backup_id)
    bootstrap = restored_bootstrap(b, backup_id, restored)
    if writes:
        _refuse_live_clusters(bootstrap, b.config)
    primary = b.config.primary.bootstrap
    compared_with, _ = resolve(against, primary, b.config.verify.primary_timeout_seconds, say)
    if group:
        manifest = manifest.model_copy(
            update={
                "groups": [
                    g for g in manifest.groups if g.group in groups.selected(manifest, group)
                ]
            }
        )
    return group_plan(primary, manifest, bootstrap, compared_with)


@app.command()
def plan(
    backup_id: str,
    config: Path | None = ConfigOption,
    restored: str | None = RestoredOption,
    group: list[str] = GroupOption,
    against: str = AgainstOption,
    output: Output = OutputOption,
) -> None:
    """Per group and partition: the primary offset, the translated offset, the method and
    the records a consumer would re-read. Changes nothing."""
    result = run_command(
        output,
        lambda: _plan(config, backup_id, restored, group, against).model_dump(mode="json"),
    )
    emit(result, output, render_plan)


@app.command()
def apply(
    backup_id: str,
    config: Path | None = ConfigOption,
    restored: str | None = RestoredOption,
    group: list[str] = GroupOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="show what would be set"),
    against: str = AgainstOption,
    output: Output = OutputOption,
) -> None:
    """Set the groups' translated offsets on the restored cluster (refused for a group with
    active members; only what differs is written)."""

    def body() -> dict[str, Any]:
        from kasten_bp import groups

        the_plan = _plan(config, backup_id, restored, group, against, writes=not dry_run)
        return groups.apply(the_plan, dry_run).model_dump(mode="json")

    emit(run_command(output, body), output, render_plan)
