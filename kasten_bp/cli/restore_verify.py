"""`restore` and `verify`."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer

from kasten_bp.catalog.base import backup_key
from kasten_bp.cli.backups import ConfigOption, _backups
from kasten_bp.cli.output import Output, OutputOption, emit
from kasten_bp.cli.runner import run_command
from kasten_bp.errors import UsageError


def _completed_manifest(b: Any, backup_id: str) -> Any:
    """The manifest of a restorable backup: COMPLETED, or kept with warnings once its
    snapshot completed (its warnings are printed first, on stderr)."""
    from kasten_bp.backup import unrestorable
    from kasten_bp.catalog.base import backup_key
    from kasten_bp.manifest import parse_manifest

    journal = b.store.load(backup_id)
    if journal is None:
        raise UsageError(f"backup {backup_id} not found in catalog {b.catalog.url}")
    why = unrestorable(journal)
    if why is not None:
        raise UsageError(f"backup {backup_id} cannot be restored: {why}")
    for warning in journal.warnings:
        say(f"warning: backup {backup_id} was kept with a warning: {warning}")
    data = b.catalog.read_json(backup_key(backup_id, "manifest.json"))
    if data is None:
        raise UsageError(f"backup {backup_id} has no manifest in catalog {b.catalog.url}")
    return parse_manifest(data, f"of backup {backup_id}")


def restored_bootstrap(b: Any, backup_id: str, given: str | None) -> str:
    """--restored, else the platform's record of the restored cluster, else the config's,
    else what the newest `restore` of this backup reported."""
    bootstrap = given
    if bootstrap is None:
        finder = getattr(b.platform, "restored_bootstrap", None)
        bootstrap = finder(backup_id) if finder else None
        bootstrap = bootstrap or (
            b.config.kubernetes.restored_bootstrap if b.config.kubernetes else None
        )
        bootstrap = bootstrap or _last_restore_bootstrap(b, backup_id)
    if not bootstrap:
        raise UsageError(f"no restored cluster known for backup {backup_id}: pass --restored")
    return str(bootstrap)


def _last_restore_bootstrap(b: Any, backup_id: str) -> str | None:
    keys = b.catalog.list_keys(backup_key(backup_id, "restore-"))
    # restore-<unix seconds>.json: the newest restore is the cluster to verify
    for key in sorted(keys, key=lambda k: int(k.rsplit("-", 1)[1].split(".")[0]), reverse=True):
        record = b.catalog.read_json(key) or {}
        if record.get("bootstrap"):
            return str(record["bootstrap"])
    return None


def group_plan(primary: str, manifest: Any, restored: str, compared_with: str) -> Any:
    """The groups' translations onto the restored cluster: made now against the primary,
    or the ones the backup recorded at its cut (their twins checked on `restored`)."""
    from kasten_bp import groups

    if compared_with == "manifest":
        return groups.plan_by_manifest(manifest, restored)
    return groups.plan(primary, manifest, restored)


def group_section(
    primary: str, manifest: Any, restored: str, compared_with: str = "primary"
) -> dict[str, Any]:
    """verify's `groups`: each recorded group's offsets on the restored cluster against the
    exact translation; a group `ahead` (it would skip records) fails the verdict, and so
    does a recorded translation whose twin record is not on the restored cluster."""
    from kasten_bp import groups

    the_plan = group_plan(primary, manifest, restored, compared_with)
    standings = groups.standings(the_plan)
    untwinned = [
        f"{g.group} {p.topic}[{p.partition}]"
        for g in the_plan.groups
        for p in g.partitions
        if p.method == "twin_not_found"
    ]
    ahead = any(s.status == "ahead" for s in standings) or bool(untwinned)
    section: dict[str, Any] = {
        "groups": [s.model_dump(mode="json") for s in standings],
        "groups_verdict": "inconsistent" if ahead else "consistent",
    }
    if untwinned:
        section["groups_twins_not_found"] = untwinned
    return section


def say(message: str) -> None:
    """One line on stderr, whatever the output format."""
    print(message, file=sys.stderr, flush=True)


AgainstOption = typer.Option(
    "auto",
    "--against",
    help="what the restore is compared with: primary (the live primary; exit 2 if it cannot "
    "be reached), manifest (what the backup recorded at its cut: offsets, head digests, "
    "with --deep the sealed content; the primary is not needed), or auto (the primary if "
    "it answers within verify.primary_timeout_seconds, else the manifest)",
)


def render_report(d: dict[str, Any]) -> str:
    lines = [
        f"verify backup {d['backup_id']} (restored {d['restored_bootstrap']}"
        f"{', deep' if d['deep'] else ''}"
        f"{', topics ' + repr(d['topic_filter']) if d.get('topic_filter') else ''}): "
        f"{d['verdict'].upper()}",
        f"  primary read with isolation.level={d['primary_isolation_level']} "
        "(aborted records are not records; transaction markers never are)"
        if d.get("compared_with", "primary") == "primary"
        else "  compared with the backup's manifest (the primary was not used): the RPO is "
        "the backup's own, as of its cut",
        f"  {'topic[partition]':<32} {'status':<11} {'restored end':>12} {'primary end':>11} "
        f"{'behind':>7} {'secs':>7}  detail",
    ]
    for p in d["partitions"]:
        name = f"{p['topic']}[{p['partition']}]"
        lines.append(
            f"  {name:<32} {p['status']:<11} {_n(p['restored_end_offset']):>12} "
            f"{_n(p['primary_end_offset']):>11} {_n(p['records_behind']):>7} "
            f"{_n(p['seconds_behind']):>7}  {p['detail']}"
        )
    lines.append(
        f"  RPO: {d['rpo_records']} records, {d['rpo_seconds']:.1f}s; "
        + ", ".join(f"{k} {v}" for k, v in d["counts"].items() if v)
    )
    for g in d.get("groups", []):
        counts = [f"{p['topic']}[{p['partition']}] {p['status']}" for p in g["partitions"]]
        off = [
            f"{c} ({p['records']})" if p["records"] else c
            for c, p in zip(counts, g["partitions"], strict=True)
        ]
        lines.append(f"  group {g['group']}: {g['status']}  " + ", ".join(off))
    return "\n".join(lines)


def _n(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def register(app: typer.Typer) -> None:
    @app.command()
    def restore(
        backup_id: str,
        config: Path | None = ConfigOption,
        timeout: float = typer.Option(300, "--timeout", help="seconds to wait for the cluster"),
        with_groups: bool = typer.Option(
            False,
            "--with-groups",
            help="then set the recorded consumer groups' offsets (as `groups apply`)",
        ),
        against: str = AgainstOption,
        output: Output = OutputOption,
    ) -> None:
        """Start a new cluster from a backup's snapshots (local: under the lab workdir)."""

        def body() -> dict[str, Any]:
            from kasten_bp.against import check_against

            check_against(against)
            b = _backups(config)
            manifest = _completed_manifest(b, backup_id)
            if not manifest.snapshots:
                raise UsageError(f"backup {backup_id} has no snapshots recorded")
            started = time.time()
            result = dict(b.platform.restore(manifest, timeout))
            _record_restore(b, backup_id, started, result)
            if with_groups:
                from kasten_bp import groups
                from kasten_bp.against import resolve

                primary = b.config.primary.bootstrap
                compared_with, _ = resolve(
                    against, primary, b.config.verify.primary_timeout_seconds, say
                )
                the_plan = group_plan(primary, manifest, result["bootstrap"], compared_with)
                applied = groups.apply(the_plan)
                result["groups"] = applied.model_dump(mode="json")["groups"]
            return result

        emit(run_command(output, body), output, lambda d: f"restored {backup_id}: {d['bootstrap']}")

    @app.command()
    def verify(
        backup_id: str,
        config: Path | None = ConfigOption,
        restored: str | None = typer.Option(
            None, "--restored", help="bootstrap of the restored cluster"
        ),
        deep: bool = typer.Option(False, "--deep", help="compare every record, not head windows"),
        workers: int | None = typer.Option(
            None,
            "--workers",
            help="with --deep: partitions compared at once, each in its own process "
            "(default: one per two CPUs)",
        ),
        export: str | None = typer.Option(
            None,
            "--export",
            help="s3://bucket/prefix/EXPORT_ID: check that export's files against its index, "
            "the manifest heads and the restored cluster, record by record",
        ),
        topic: str | None = typer.Option(
            None,
            "--topic",
            help="regex (full match) of the restored topics to verify; the verdict is theirs "
            "(default: every topic of the backup)",
        ),
        against: str = AgainstOption,
        output: Output = OutputOption,
    ) -> None:
        """Compare a restored cluster with its manifest and the primary (or, the primary out
        of reach, with what the backup recorded at its cut); exit 1 if not consistent."""
        if export is not None:
            _verify_export(backup_id, config, export, output, topic)
            return

        def body() -> dict[str, Any]:
            from kasten_bp.against import check_against, resolve
            from kasten_bp.consistency.scope import compile_topics
            from kasten_bp.consistency.verify import require_restored, verify, verify_by_manifest

            if workers is not None and workers < 1:
                raise UsageError(f"--workers must be at least 1, not {workers}")
            check_against(against)
            topics = compile_topics(topic)
            b = _backups(config)
            manifest = _completed_manifest(b, backup_id)
            if topics is not None:
                # Narrowed once, for the head/deep verify and the groups section alike.
                manifest = manifest.only_topics(topics)
                if not manifest.partitions:
                    raise UsageError(f"backup {backup_id}: no topic matches --topic {topic!r}")
            bootstrap = restored_bootstrap(b, backup_id, restored)
            require_restored(bootstrap)
            primary = b.config.primary.bootstrap
            compared_with, reach = resolve(
                against, primary, b.config.verify.primary_timeout_seconds, say
            )
            if compared_with == "primary":
                result = verify(primary, manifest, bootstrap, deep, workers, topics)
            else:
                result = verify_by_manifest(manifest, bootstrap, deep, primary, topics)
            result.primary = reach
            report = result.model_dump(mode="json")
            if manifest.groups:
                report.update(group_section(primary, manifest, bootstrap, compared_with))
                if report["groups_verdict"] != "consistent":
                    report["verdict"] = "inconsistent"
            b.catalog.write_json(backup_key(backup_id, f"verify-{int(time.time())}.json"), report)
            return report

        report = run_command(output, body)
        emit(report, output, render_report)
        if report["verdict"] != "consistent":
            raise typer.Exit(1)


def _record_restore(b: Any, backup_id: str, started: float, result: dict[str, Any]) -> None:
    """The restore's measured duration (the RTO it demonstrated), for the evidence report."""
    ended = time.time()
    b.catalog.write_json(
        backup_key(backup_id, f"restore-{int(started)}.json"),
        {
            "backup_id": backup_id,
            "platform": b.platform.name,
            "started_at": started,
            "ended_at": ended,
            "seconds": round(ended - started, 3),
            "reused": bool(result.get("reused", False)),  # an already running cluster
            "bootstrap": result.get("bootstrap"),
        },
    )


def _verify_export(
    backup_id: str, config: Path | None, url: str, output: Output, topic: str | None
) -> None:
    """verify --export: every file of an export against its index, the manifest heads and
    the restored cluster; exit 1 with one line per failing file or partition."""

    def body() -> dict[str, Any]:
        from kasten_bp.cli.export import destination, restored_source
        from kasten_bp.export.check import check_export

        if topic is not None:
            raise UsageError("--topic does not apply to --export: an export is checked whole")
        where = destination(url)
        b = _backups(config)
        manifest = _completed_manifest(b, backup_id)
        where.check_bucket()
        report = check_export(where, manifest, restored_source(b, backup_id, 300))
        b.catalog.write_json(
            backup_key(backup_id, f"export-verify-{report['export_id']}-{int(time.time())}.json"),
            report,
        )
        return report

    def render(d: dict[str, Any]) -> str:
        head = (
            f"verify export {d['export_id']} of backup {d['backup_id']}: "
            f"{d['verdict'].upper()} ({d['files_checked']} files, "
            f"{d['records_compared']} records compared with the restored cluster)"
        )
        return "\n".join([head, *d["problems"]])

    report = run_command(output, body)
    emit(report, output, render)
    if report["verdict"] != "consistent":
        raise typer.Exit(1)
