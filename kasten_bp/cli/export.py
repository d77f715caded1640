"""`export`: a backup's consistent cut as envelope files in object storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from kasten_bp.cli.backups import ConfigOption, _backups
from kasten_bp.cli.output import Output, OutputOption, emit
from kasten_bp.cli.runner import run_command
from kasten_bp.errors import UsageError

INTERRUPTED = 130
UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """64M, 512k, 1G or plain bytes."""
    raw = text.strip().lower().removesuffix("ib").removesuffix("b")
    factor = UNITS.get(raw[-1:], 1)
    number = raw[:-1] if raw[-1:] in UNITS else raw
    try:
        size = int(float(number) * factor)
    except ValueError:
        raise UsageError(f"--roll-size {text!r} is not a size (e.g. 64M, 512k)") from None
    if size <= 0:
        raise UsageError(f"--roll-size {text!r} must be positive")
    return size


def destination(url: str) -> Any:
    from kasten_bp.catalog.s3_objects import S3Objects

    if not url.startswith("s3://"):
        raise UsageError(f"--to {url!r} is not an S3 URL (want s3://bucket/prefix)")
    return S3Objects(url)


def restored_source(b: Any, backup_id: str, timeout: float) -> Any:
    """The backup's restored cluster bounded by its manifest, as `replay` reads it."""
    from kasten_bp.cli.replay import _source

    return _source(b, backup_id, None, timeout)


def render(d: dict[str, Any]) -> str:
    lines = [
        f"export {d['export_id']}: {d['status']}, {d['records']} records in "
        f"{len(d['files'])} {d['format']} files ({d['bytes']} bytes) at {d['url']}"
    ]
    lines += [f"  {f['key']}  {f['records']} records  sha256 {f['sha256']}" for f in d["files"]]
    if d["status"] == "interrupted":
        lines.append(f"  continue with: kasten-bp export ... --resume {d['export_id']}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command()
    def export(
        backup_id: str = typer.Argument(..., metavar="BACKUP_ID"),
        config: Path | None = ConfigOption,
        to: str = typer.Option(..., "--to", help="s3://bucket/prefix (the export goes below)"),
        fmt: str = typer.Option("jsonl", "--format", help="jsonl, avro or parquet"),
        compression: str = typer.Option("zstd", "--compression", help="zstd, snappy or none"),
        topic: str | None = typer.Option(None, "--topic", help="regex (full match) of topics"),
        roll_size: str = typer.Option("64M", "--roll-size", help="roll files at this size"),
        resume: str | None = typer.Option(None, "--resume", help="continue this export"),
        timeout: float = typer.Option(
            300, "--timeout", help="seconds to wait for a restored cluster to start"
        ),
        output: Output = OutputOption,
    ) -> None:
        """Export the records of a backup's consistent cut (read from its restored cluster)
        to S3 as JSON Lines, Avro or Parquet envelope files with an index.json.
        Exit 0 done, 2 bad input (nothing written), 130 interrupted (continue with --resume)."""

        def body() -> dict[str, Any]:
            from kasten_bp.cli.restore_verify import _completed_manifest
            from kasten_bp.consistency.scope import compile_topics
            from kasten_bp.export.formats import get_format
            from kasten_bp.export.service import Exports

            # Judge the arguments before reaching any cluster or bucket.
            get_format(fmt, compression)
            compile_topics(topic)
            roll = parse_size(roll_size)
            target = destination(to)
            b = _backups(config)
            manifest = _completed_manifest(b, backup_id)
            exports = Exports(b.catalog, target)
            if resume is None:
                target.check_bucket()
                exports.refuse_existing()
            source = restored_source(b, backup_id, timeout)
            if resume is not None:
                return exports.resume(resume, source, backup_id)
            return exports.run(source, manifest, fmt, compression, topic, roll)

        result = run_command(output, body)
        emit(result, output, render)
        if result["status"] == "interrupted":
            raise typer.Exit(INTERRUPTED)
