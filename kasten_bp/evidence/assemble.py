"""The evidence report of one backup, from what the catalog recorded about it.

Sections: the backup's timings (journal), the RPO per partition (the latest verify measured
it against the primary), the restore's measured duration, the latest verify with its
per-partition verdicts, the latest export with its checksums. A section that was never
measured is absent and named in `not_measured`: nothing is asserted unmeasured.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from kasten_bp.catalog.base import Catalog, backup_key
from kasten_bp.catalog.manifests import manifest_data
from kasten_bp.errors import UsageError
from kasten_bp.workflow.journal import JournalStore

KIND = "kasten-bp/evidence-report"
SCHEMA_VERSION = 1


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _latest(catalog: Catalog, backup_id: str, pattern: str) -> list[dict[str, Any]]:
    """Documents `backups/<id>/<name>` whose name fully matches pattern, newest first (the
    names end in a Unix time)."""
    prefix = backup_key(backup_id, "")
    names = [k[len(prefix) :] for k in catalog.list_keys(prefix)]
    regex = re.compile(pattern)
    matching = [n for n in names if regex.fullmatch(n)]

    def when(name: str) -> int:
        digits = re.findall(r"(\d+)\.json$", name)
        return int(digits[0]) if digits else 0

    out = []
    for name in sorted(matching, key=when, reverse=True):
        data = catalog.read_json(backup_key(backup_id, name))
        if data is not None:
            data["_name"] = name
            out.append(data)
    return out


def assemble(catalog: Catalog, backup_id: str) -> dict[str, Any]:
    journal = JournalStore(catalog).load(backup_id)
    manifest = manifest_data(catalog, backup_id)
    if journal is None or manifest is None:
        raise UsageError(f"backup {backup_id} not found in catalog {catalog.url}")
    doc: dict[str, Any] = {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "catalog": catalog.url,
        "backup": _backup(journal, manifest),
    }
    missing: list[str] = []
    verifies = _latest(catalog, backup_id, r"verify-\d+\.json")
    if verifies:
        doc["verify"] = _verify(verifies[0])
        doc["rpo"] = _rpo(manifest, verifies[0])
    else:
        missing += ["verify", "rpo"]
    restores = [r for r in _latest(catalog, backup_id, r"restore-\d+\.json") if not r["reused"]]
    if restores:
        r = restores[0]
        doc["restore"] = {
            "seconds": r["seconds"],
            "started_at": _iso(r["started_at"]),
            "platform": r["platform"],
        }
    else:
        missing.append("restore")
    exports = _exports(catalog, backup_id)
    if exports:
        doc["export"] = exports
    else:
        missing.append("export")
    doc["not_measured"] = missing
    return doc


def _backup(journal: Any, manifest: dict[str, Any]) -> dict[str, Any]:
    marks = journal.marks

    def span(start: str, end: str) -> float | None:
        if start in marks and end in marks:
            return round(marks[end] - marks[start], 3)
        return None

    timings: dict[str, Any] = {
        "steps": [
            {"name": s.name, "status": str(s.status), "seconds": s.seconds}
            for s in journal.steps
            if s.seconds is not None
        ]
    }
    for name, (start, end) in {
        "mm2_stopped_seconds": ("mm2_stopped", "mm2_resumed"),
        "mirror_unavailable_seconds": ("brokers_stopped", "brokers_serving"),
    }.items():
        seconds = span(start, end)
        if seconds is not None:
            timings[name] = seconds
    return {
        "backup_id": journal.backup_id,
        "state": str(journal.state),
        "mode": journal.mode,
        "created_at": manifest.get("created_at"),
        "platform": manifest.get("platform"),
        "primary": manifest.get("primary", {}).get("bootstrap"),
        "mirror_cluster_id": manifest.get("mirror", {}).get("cluster_id"),
        "partitions": len(manifest.get("partitions", [])),
        "snapshots": [
            {"broker_id": s.get("broker_id"), "checksum": s.get("checksum")}
            for s in manifest.get("snapshots", [])
            if s.get("checksum")
        ],
        "timings": timings,
    }


def _verify(report: dict[str, Any]) -> dict[str, Any]:
    partitions = [
        {
            "topic": p["topic"],
            "partition": p["partition"],
            "status": p["status"],
            "records_compared": p.get("records_compared", 0),
        }
        for p in report.get("partitions", [])
    ]
    out = {
        "name": report["_name"],
        "verdict": report["verdict"],
        "deep": report.get("deep", False),
        # What the restore was compared with (reports before the disaster-day change: the
        # primary, the only one there was).
        "compared_with": report.get("compared_with", "primary"),
        "restored_bootstrap": report.get("restored_bootstrap"),
        "records_compared": sum(p["records_compared"] for p in partitions),
        "partitions": partitions,
    }
    if report.get("topic_filter"):
        out["topic_filter"] = report["topic_filter"]  # a partial verify says so
    if "groups_verdict" in report:
        out["groups_verdict"] = report["groups_verdict"]
    return out


def _rpo(manifest: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """Records and seconds behind the primary as the verify measured them, with the
    manifest's own record of where the cut stood on the primary."""
    measured = {(p["topic"], p["partition"]): p for p in report.get("partitions", [])}
    rows = []
    for head in manifest.get("partitions", []):
        key = (head["topic"], head["partition"])
        row: dict[str, Any] = {
            "topic": head["topic"],
            "partition": head["partition"],
            "end_offset": head["end_offset"],
        }
        last = head.get("head") or []
        if last and last[-1].get("primary_offset") is not None:
            row["primary_offset_of_last_record"] = last[-1]["primary_offset"]
        for field in ("mm2_source_offset", "cut_primary_offset"):
            if head.get(field) is not None:
                row[field] = head[field]
        p = measured.get(key)
        if p is not None:
            for name in ("records_behind", "seconds_behind"):
                if p.get(name) is not None:
                    row[name] = p[name]
        rows.append(row)
    return {"measured_by": report["_name"], "partitions": rows}


def _exports(catalog: Catalog, backup_id: str) -> dict[str, Any] | None:
    found = _latest(catalog, backup_id, r"export-ex-[^/]+\.json")
    completed = [e for e in found if e.get("status") == "completed"]
    if not completed:
        return None
    latest = max(completed, key=lambda e: str(e["export_id"]))
    out: dict[str, Any] = {
        "export_id": latest["export_id"],
        "url": latest["url"],
        "format": latest["format"],
        "records": latest["records"],
        "files": [
            {"key": f["key"], "records": f["records"], "sha256": f["sha256"]}
            for f in latest["files"]
        ],
    }
    checks = _latest(
        catalog, backup_id, rf"export-verify-{re.escape(latest['export_id'])}-\d+\.json"
    )
    if checks:
        out["verify"] = {
            "verdict": checks[0]["verdict"],
            "records_compared": checks[0]["records_compared"],
            "files_checked": checks[0]["files_checked"],
        }
    return out
