"""Backup commands: backup, the runbook verbs, list/show/delete."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer

from kasten_bp.catalog.base import backup_key
from kasten_bp.cli.output import Output, OutputOption, emit, show_progress
from kasten_bp.cli.runner import run_command
from kasten_bp.config import config_path, load_config
from kasten_bp.workflow.listeners import ProgressListener

ConfigOption = typer.Option(
    None, "--config", "-c", help="kasten-bp.yaml (default ./kasten-bp.yaml)"
)


def _backups(config: Path | None) -> Any:
    from kasten_bp.backup import Backups

    show_progress()
    return Backups(load_config(config), [ProgressListener()], config_path(config))


GroupOption = typer.Option(
    [],
    "--group",
    help="regex (full match) of the consumer groups to record (repeatable); replaces "
    "groups.include of the config",
)


# How often a hold's watchdog looks at its run (the deadline is met within this).
HOLD_POLL_SECONDS = 2.0
# A kept backup with failures after its snapshot (see the exit codes in `--help`).
WARNINGS_EXIT = 5


def emit_run(data: dict[str, Any], output: Output) -> None:
    """Print a run; exit 5 when it completed with warnings (the backup is kept)."""
    emit(data, output, render_run)
    if data.get("status") == "COMPLETED_WITH_WARNINGS":
        raise typer.Exit(WARNINGS_EXIT)


def render_run(data: dict[str, Any]) -> str:
    lines = [f"backup {data['backup_id']}: {data['status']} ({data['mode']})"]
    for step in data["steps"]:
        took = f"{step['seconds']:.1f}s" if step["seconds"] is not None else "-"
        name = ("deferred " if step.get("deferred") else "") + step["name"]
        lines.append(f"  {name:<31} {step['status']:<10} {took}")
    if data.get("downtime_seconds") is not None:
        lines.append(f"  MM2 stopped for {data['downtime_seconds']:.1f}s")
    if data.get("mirror_unavailable_seconds") is not None:
        lines.append(f"  mirror brokers down for {data['mirror_unavailable_seconds']:.1f}s")
    manifest = data.get("manifest") or {}
    if manifest:
        lines.append(
            f"  manifest: {len(manifest.get('partitions', []))} partitions, "
            f"{len(manifest.get('snapshots', []))} snapshots"
        )
    if data.get("error"):
        lines.append(f"  error: {data['error']}")
    lines += [f"  warning: {w}" for w in data.get("warnings", [])]
    lines += [f"  to do: {t}" for t in data.get("left_for_a_person", [])]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command()
    def backup(
        config: Path | None = ConfigOption,
        mode: str = typer.Option("consistent", "--mode", help="consistent|hot"),
        dry_run: bool = typer.Option(False, "--dry-run", help="check and print the plan only"),
        head_window: int | None = typer.Option(None, "--head-window", help="records per head"),
        group: list[str] = GroupOption,
        output: Output = OutputOption,
    ) -> None:
        """Back up the mirror: quiesce MM2, prove catch-up, capture heads, snapshot, resume.

        Exits 5 (COMPLETED_WITH_WARNINGS) when the snapshot was complete but something after
        it failed: the backup is kept, `warnings` says what, `kasten-bp resume` retries."""
        result = run_command(
            output, lambda: _backups(config).backup(mode, dry_run, head_window, group or None)
        )
        if dry_run:
            emit(result, output, lambda d: "plan: " + " -> ".join(d["plan"]) + "\npreflight: ok")
        else:
            emit_run(result, output)

    @app.command()
    def quiesce(
        config: Path | None = ConfigOption,
        hold_timeout: str = typer.Option(
            "15m",
            "--hold-timeout",
            help="put the mirror back by itself if no `resume` comes within this (30s, 15m, 1h)",
        ),
        output: Output = OutputOption,
    ) -> None:
        """Stop MM2, prove catch-up, capture heads, stop the mirror's brokers; then hold.

        A watchdog (a detached process locally, a Job on Kubernetes) puts the mirror back
        when the hold times out; `resume` cancels it, and a late `snapshot` is refused."""

        def body() -> dict[str, Any]:
            from kasten_bp.hold import parse_duration

            seconds = parse_duration(hold_timeout)
            return dict(_backups(config).quiesce(seconds))

        emit(run_command(output, body), output, render_run)

    @app.command(name="hold-expire", hidden=True)
    def hold_expire(
        backup_id: str, config: Path | None = ConfigOption, output: Output = OutputOption
    ) -> None:
        """The run's watchdog: puts the mirror back when the run's owner dies before the run
        ends, or when a hold runs out. It never gives up while the run is unfinished."""

        def body() -> dict[str, Any]:
            from kasten_bp.errors import TemporaryError, UsageError

            backups = _backups(config)
            if backups.store.load(backup_id) is None:
                raise UsageError(f"backup {backup_id} not found in catalog {backups.catalog.url}")
            while True:
                try:
                    result = backups.watch(backup_id)
                except TemporaryError as exc:
                    print(f"… {exc}; trying again", file=sys.stderr, flush=True)
                    result = None  # the catalog or the API server is back in a moment
                if result is not None:
                    return dict(result)
                time.sleep(HOLD_POLL_SECONDS)

        emit(run_command(output, body), output, render_run)

    @app.command()
    def snapshot(config: Path | None = ConfigOption, output: Output = OutputOption) -> None:
        """Snapshot the volumes of a quiesced backup."""
        emit_run(run_command(output, lambda: _backups(config).snapshot()), output)

    @app.command()
    def resume(
        config: Path | None = ConfigOption,
        snapshot_taken: bool = typer.Option(
            False,
            "--snapshot-taken",
            help="the held mirror's volumes were snapshotted outside kasten-bp (K10's "
            "posthook): keep the backup. Without it, a run held with no snapshot is rolled "
            "back (exit 3) and the mirror put back all the same",
        ),
        output: Output = OutputOption,
    ) -> None:
        """Start brokers and resume MM2 (always safe, idempotent); recovers crashed runs and
        retries a kept backup's failed clean-up. Exits 5 if the run has warnings."""
        result = run_command(output, lambda: _backups(config).resume(snapshot_taken))
        if "steps" not in result:
            emit(result, output, lambda d: d["status"])
        else:
            emit_run(result, output)

    @app.command()
    def status(config: Path | None = ConfigOption, output: Output = OutputOption) -> None:
        """Where runs stand; finds and rolls back crashed runs."""

        def text(d: dict[str, Any]) -> str:
            parts = [
                f"recovered crashed run {r['backup_id']}: {r['state']}" for r in d["recovered"]
            ]
            parts += [render_run(c) for c in d["current"]]
            if not d["current"]:
                parts.append("no run in progress")
                if d["last"]:
                    parts.append("last: " + render_run(d["last"]))
            return "\n".join(parts)

        emit(run_command(output, lambda: _backups(config).status()), output, text)

    @app.command(name="list")
    def list_backups(config: Path | None = ConfigOption, output: Output = OutputOption) -> None:
        """List backups in the catalog."""

        def body() -> list[dict[str, Any]]:
            from kasten_bp.backup import unrestorable

            b = _backups(config)
            return [
                {
                    "backup_id": j.backup_id,
                    "status": j.state,
                    "restorable": unrestorable(j) is None,
                    "mode": j.mode,
                    "created_at": j.created_at,
                    # Another mirror's backup in a shared catalog says so.
                    "cluster": j.cluster or None,
                }
                for j in b.store.all()
            ]

        emit(
            run_command(output, body),
            output,
            lambda rows: (
                "\n".join(
                    f"{r['backup_id']}  {r['status']:<23} "
                    f"{'restorable' if r['restorable'] else '-':<10} {r['mode']:<10} "
                    f"{r['created_at']}"
                    for r in rows
                )
                or "no backups"
            ),
        )

    @app.command()
    def show(
        backup_id: str, config: Path | None = ConfigOption, output: Output = OutputOption
    ) -> None:
        """Show one backup: its run and manifest."""

        def body() -> dict[str, Any]:
            from kasten_bp.errors import UsageError

            b = _backups(config)
            journal = b.store.load(backup_id)
            if journal is None:
                raise UsageError(f"backup {backup_id} not found in catalog {b.catalog.url}")
            return b.summary(journal, [])

        emit(run_command(output, body), output, render_run)

    @app.command()
    def delete(
        backup_id: str,
        config: Path | None = ConfigOption,
        confirm: bool = typer.Option(False, "--confirm", help="required: deletion is final"),
        output: Output = OutputOption,
    ) -> None:
        """Delete a backup's catalog entry and its snapshots."""

        def body() -> dict[str, Any]:
            from kasten_bp.errors import UsageError

            if not confirm:
                raise UsageError(f"deleting backup {backup_id} is final: add --confirm")
            from kasten_bp.workflow.states import FINAL

            b = _backups(config)
            # Under the lock: no run may start on, or finish, the backup being deleted.
            with b.lock("delete"):
                journal = b.store.load(backup_id)
                if journal is None:
                    raise UsageError(f"backup {backup_id} not found in catalog {b.catalog.url}")
                if journal.state not in FINAL:
                    raise UsageError(
                        f"backup {backup_id} is {journal.state}: an unfinished run is not "
                        "deleted (its journal is what puts the mirror back); run "
                        "`kasten-bp resume` first"
                    )
                left = b.platform.delete_snapshots(backup_id)
                if left:
                    # Kept in the catalog, so that `delete` can be run again once fixed.
                    return {
                        "backup_id": backup_id,
                        "deleted_keys": 0,
                        "undeleted": left,
                        "warnings": [
                            f"backup {backup_id}: {len(left)} snapshot(s) could not be deleted; "
                            "its catalog entry is kept: fix the cause, then run `delete` again"
                        ],
                    }
                deleted = b.catalog.delete_prefix(backup_key(backup_id, ""))
            return {"backup_id": backup_id, "deleted_keys": deleted, "undeleted": []}

        def text(d: dict[str, Any]) -> str:
            if not d["undeleted"]:
                return f"deleted backup {d['backup_id']}"
            return "\n".join([*d["warnings"], *(f"  not deleted: {u}" for u in d["undeleted"])])

        result = run_command(output, body)
        emit(result, output, text)
        if result["undeleted"]:
            raise typer.Exit(WARNINGS_EXIT)
