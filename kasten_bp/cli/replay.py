"""`replay`: a backup's records (or any cluster's, or an export's) into any target cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from kasten_bp.cli.backups import ConfigOption, _backups
from kasten_bp.cli.output import Output, OutputOption, emit
from kasten_bp.cli.restore_verify import _completed_manifest, restored_bootstrap
from kasten_bp.cli.runner import run_command
from kasten_bp.errors import UsageError

SpecOption = typer.Option(None, "--spec", help="replay spec (YAML)")
PROOF_FAILED = 1
INTERRUPTED = 130


def _source(b: Any, backup_id: str | None, given: str | None, timeout: float) -> Any:
    """The backup's restored cluster bounded by its manifest (the local platform starts it
    when it is not running), or any cluster bounded by its high watermarks."""
    from kasten_bp.replay.source import KafkaSource

    if backup_id is None:
        if not given:
            raise UsageError("replay needs a BACKUP_ID, --source-bootstrap or --from")
        return KafkaSource(given)
    manifest = _completed_manifest(b, backup_id)
    bootstrap = given
    if bootstrap is None and b.platform.name == "local":
        bootstrap = b.platform.restore(manifest, timeout)["bootstrap"]
    if bootstrap is None:
        bootstrap = restored_bootstrap(b, backup_id, None)
    return KafkaSource.for_backup(bootstrap, manifest)


def _export_source(url: str) -> Any:
    """`--from s3://bucket/prefix/EXPORT_ID`: a complete export (its index.json), else one
    line naming the object, exit 2, before any cluster is reached."""
    from kasten_bp.catalog.s3_objects import S3Objects
    from kasten_bp.replay.export_source import ExportSource

    if not url.startswith("s3://"):
        raise UsageError(f"--from {url!r} is not an S3 URL (want s3://bucket/prefix/EXPORT_ID)")
    return ExportSource.open(S3Objects(url))


def render(d: dict[str, Any]) -> str:
    head = f"replay {d['replay_id'] or '(dry run)'}: {d['status']}, {d['records']} records"
    lines = [f"{head} from {d['source']} into {d['target']}"]
    for p in d["partitions"]:
        span = (
            f"{p['first_source_offset']}..{p['last_source_offset']}"
            if p["first_source_offset"] is not None
            else "-"
        )
        proof = f"  proof {p['proof']}" if p.get("proof") else ""
        lines.append(
            f"  {p['source_topic']}[{p['partition']}] -> {p['target_topic']}[{p['partition']}]"
            f"  {p['records']} records  source offsets {span}{proof}"
        )
    if d["status"] == "interrupted":
        lines.append(f"  continue with: kasten-bp replay ... --resume {d['replay_id']}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command()
    def replay(
        backup_id: str | None = typer.Argument(
            None, metavar="BACKUP_ID", help="the backup to replay"
        ),
        config: Path | None = ConfigOption,
        to: str = typer.Option(..., "--to", help="bootstrap of the target cluster"),
        spec: Path | None = SpecOption,
        dry_run: bool = typer.Option(False, "--dry-run", help="print the plan, change nothing"),
        resume: str | None = typer.Option(None, "--resume", help="continue this replay"),
        since: str | None = typer.Option(
            None, "--since", help="only records at or after this time (ISO 8601 with zone)"
        ),
        allow_non_empty: bool = typer.Option(
            False, "--allow-non-empty", help="append to target partitions that hold records"
        ),
        source_bootstrap: str | None = typer.Option(
            None,
            "--source-bootstrap",
            help="read from this cluster (with BACKUP_ID: its "
            "restored cluster; alone: any cluster, up to its current end offsets)",
        ),
        from_url: str | None = typer.Option(
            None,
            "--from",
            help="read an export: s3://bucket/prefix/EXPORT_ID (not with BACKUP_ID or "
            "--source-bootstrap)",
        ),
        timeout: float = typer.Option(
            300, "--timeout", help="seconds to wait for a restored cluster to start"
        ),
        parallelism: int | None = typer.Option(
            None, "--parallelism", help="partitions replayed at once (spec: parallelism)"
        ),
        max_producers: int | None = typer.Option(
            None, "--max-producers", help="producers at once (spec: max_producers)"
        ),
        max_records_per_second: float | None = typer.Option(
            None, "--max-records-per-second", help="rate limit, records/s (0: none)"
        ),
        max_bytes_per_second: float | None = typer.Option(
            None, "--max-bytes-per-second", help="rate limit, key+value bytes/s (0: none)"
        ),
        output: Output = OutputOption,
    ) -> None:
        """Replay records into a target cluster from a backup, any cluster or an export
        (--from): topic mapping, offset ranges, a time window, original-offset headers;
        preflight first, a content proof after. Exit 0 proven, 1 proof failed or an export
        file not matching its index, 2 bad input (nothing written), 3 the copy failed,
        130 interrupted (continue with --resume)."""

        def body() -> dict[str, Any]:
            from kasten_bp.replay.service import Replays
            from kasten_bp.replay.spec import load_spec, with_flags, with_since

            # Judge the arguments and the spec before reaching any cluster.
            flags = {
                "parallelism": parallelism,
                "max_producers": max_producers,
                "max_records_per_second": max_records_per_second,
                "max_bytes_per_second": max_bytes_per_second,
            }
            if from_url is not None and (backup_id is not None or source_bootstrap is not None):
                raise UsageError(
                    "--from reads an export: drop BACKUP_ID and --source-bootstrap (the export "
                    "names its backup)"
                )
            the_spec = None
            if resume is not None:
                if spec is not None or since is not None or dry_run:
                    raise UsageError(
                        "--resume continues with the replay's own spec: drop --spec, --since "
                        "and --dry-run"
                    )
            elif spec is None:
                raise UsageError("replay needs --spec FILE (or --resume REPLAY_ID)")
            else:
                the_spec = load_spec(spec)
                if since is not None:
                    the_spec = with_since(the_spec, since)
                the_spec = with_flags(the_spec, **flags)
                if dry_run:
                    the_spec = the_spec.model_copy(update={"dry_run": True})
            # The export's index is read (and judged) before the catalog or any cluster.
            export = _export_source(from_url) if from_url is not None else None
            b = _backups(config)
            replays = Replays(b.catalog)
            if the_spec is not None:
                source = export or _source(b, backup_id, source_bootstrap, timeout)
                return replays.run(source, to, the_spec, allow_non_empty)
            assert resume is not None
            # Without BACKUP_ID, --source-bootstrap or --from: where the replay read from.
            known_backup, known_source, known_url = replays.origin(resume)
            if export is not None:
                source = export
            elif backup_id is None and source_bootstrap is None:
                if known_url is not None:
                    source = _export_source(known_url)
                elif known_backup is None:
                    source = _source(b, None, known_source, timeout)
                else:
                    source = _source(b, known_backup, None, timeout)
            else:
                source = _source(b, backup_id, source_bootstrap, timeout)
            return replays.resume(resume, source, to, flags)

        result = run_command(output, body)
        emit(result, output, render)
        if result["status"] == "proof_failed":
            raise typer.Exit(PROOF_FAILED)
        if result["status"] == "interrupted":
            raise typer.Exit(INTERRUPTED)
