"""Evidence reports: canonical JSON, ECDSA P-256 sign/verify, tamper detection, bad keys,
and the report assembled from a catalog (absent what was never measured)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from typer.testing import CliRunner

from kasten_bp import waiting
from kasten_bp.catalog.local import LocalCatalog
from kasten_bp.cli import app
from kasten_bp.errors import UsageError
from kasten_bp.evidence.assemble import assemble
from kasten_bp.evidence.canonical import canonical_json
from kasten_bp.evidence.check import verify_report
from kasten_bp.evidence.render import markdown, to_html
from kasten_bp.evidence.signing import (
    Tampered,
    check_signature,
    load_private_key,
    load_public_key,
    sign,
)
from kasten_bp.manifest import ClusterInfo, HeadRecord, Manifest, PartitionHead
from kasten_bp.workflow.journal import Journal
from kasten_bp.workflow.states import RunState
from tests.unit.local_config import write_local_config

runner = CliRunner()
BACKUP = "bk-20260101T000000Z-abcd"


def write_keys(tmp_path: Path, curve: ec.EllipticCurve | None = None) -> tuple[Path, Path]:
    key = ec.generate_private_key(curve or ec.SECP256R1())
    private = tmp_path / "key.pem"
    public = tmp_path / "pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def test_canonical_json_is_sorted_compact_utf8_without_signature() -> None:
    doc = {"b": [1, {"z": "é", "a": None}], "a": 1.5, "signature": {"value": "x"}}
    assert canonical_json(doc) == '{"a":1.5,"b":[1,{"a":null,"z":"é"}]}'.encode()
    assert canonical_json({"a": 1.5, "b": [1, {"a": None, "z": "é"}]}) == canonical_json(doc)


def test_sign_then_verify_and_every_tamper_fails(tmp_path: Path) -> None:
    private, public = write_keys(tmp_path)
    doc = {"backup": {"backup_id": BACKUP}, "restore": {"seconds": 4.2}}
    signed = sign(doc, load_private_key(private))
    key = load_public_key(public)
    check_signature(signed, key)
    check_signature(json.loads(json.dumps(signed, indent=3)), key)  # whitespace is not content
    changed = json.loads(json.dumps(signed))
    changed["restore"]["seconds"] = 1.0
    with pytest.raises(Tampered, match="changed after it was signed"):
        check_signature(changed, key)
    unsigned = {k: v for k, v in signed.items() if k != "signature"}
    with pytest.raises(Tampered, match="not signed"):
        check_signature(unsigned, key)
    (tmp_path / "other").mkdir()
    _, other = write_keys(tmp_path / "other")
    with pytest.raises(Tampered, match="another key"):
        check_signature(signed, load_public_key(other))


def test_bad_key_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot be read"):
        load_private_key(tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(UsageError, match="not an unencrypted PEM private key"):
        load_private_key(tmp_path / "junk.pem")
    private, public = write_keys(tmp_path, ec.SECP384R1())
    with pytest.raises(UsageError, match="not an ECDSA P-256 private key"):
        load_private_key(private)
    with pytest.raises(UsageError, match="not a PEM public key"):
        load_public_key(private)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "rsa.pem").write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(UsageError, match="not an ECDSA P-256 private key"):
        load_private_key(tmp_path / "rsa.pem")


# --- a report assembled from a catalog ------------------------------------------------


def seed_catalog(root: Path, verified: bool = True, exported: bool = True) -> LocalCatalog:
    catalog = LocalCatalog(root)
    journal = Journal(
        backup_id=BACKUP,
        command="backup",
        mode="consistent",
        state=RunState.COMPLETED,
        marks={
            "mm2_stopped": 100.0,
            "mm2_resumed": 112.5,
            "brokers_stopped": 104.0,
            "brokers_serving": 110.0,
        },
    )
    catalog.write_json(f"backups/{BACKUP}/journal.json", journal.model_dump(mode="json"))
    manifest = Manifest(
        backup_id=BACKUP,
        created_at="2026-01-01T00:00:00Z",
        mode="consistent",
        platform="local",
        head_window=2,
        primary=ClusterInfo(bootstrap="p:9092"),
        mirror=ClusterInfo(bootstrap="m:9092", cluster_id="abc"),
        replication_policy="identity",
        source_alias="primary",
        partitions=[
            PartitionHead(
                topic="t",
                primary_topic="t",
                partition=0,
                log_start_offset=0,
                end_offset=10,
                window_digest="d",
                mm2_source_offset=10,
                head=[HeadRecord(offset=9, timestamp=1, digest="x", primary_offset=9)],
            )
        ],
    )
    catalog.write_json(f"backups/{BACKUP}/manifest.json", manifest.model_dump(mode="json"))
    catalog.write_json(
        f"backups/{BACKUP}/restore-100.json",
        {
            "backup_id": BACKUP,
            "platform": "local",
            "started_at": 100.0,
            "ended_at": 107.0,
            "seconds": 7.0,
            "reused": False,
            "bootstrap": "r:1",
        },
    )
    catalog.write_json(  # a later restore that found the cluster running measures nothing
        f"backups/{BACKUP}/restore-200.json",
        {
            "backup_id": BACKUP,
            "platform": "local",
            "started_at": 200.0,
            "ended_at": 200.1,
            "seconds": 0.1,
            "reused": True,
            "bootstrap": "r:1",
        },
    )
    if verified:
        for when, verdict in ((300, "inconsistent"), (400, "consistent")):
            catalog.write_json(
                f"backups/{BACKUP}/verify-{when}.json",
                {
                    "backup_id": BACKUP,
                    "verdict": verdict,
                    "deep": True,
                    "restored_bootstrap": "r:1",
                    "partitions": [
                        {
                            "topic": "t",
                            "partition": 0,
                            "status": "behind",
                            "records_compared": 10,
                            "records_behind": 5,
                            "seconds_behind": 2.5,
                        }
                    ],
                },
            )
    if exported:
        catalog.write_json(
            f"backups/{BACKUP}/export-ex-1.json",
            {
                "export_id": "ex-1",
                "status": "completed",
                "url": "s3://b/p/ex-1",
                "format": "parquet",
                "records": 10,
                "files": [
                    {
                        "key": "t/0/0.parquet",
                        "records": 10,
                        "sha256": "ab" * 32,
                        "topic": "t",
                        "partition": 0,
                        "first_offset": 0,
                        "last_offset": 9,
                    }
                ],
            },
        )
    return catalog


def test_assembled_report_holds_what_was_measured(tmp_path: Path) -> None:
    doc = assemble(seed_catalog(tmp_path), BACKUP)
    assert doc["backup"]["timings"]["mm2_stopped_seconds"] == 12.5
    assert doc["backup"]["timings"]["mirror_unavailable_seconds"] == 6.0
    assert doc["restore"]["seconds"] == 7.0  # the reused restore is no RTO
    assert doc["verify"]["verdict"] == "consistent" and doc["verify"]["name"] == "verify-400.json"
    assert doc["verify"]["records_compared"] == 10
    (rpo,) = doc["rpo"]["partitions"]
    assert rpo["records_behind"] == 5 and rpo["seconds_behind"] == 2.5
    assert rpo["primary_offset_of_last_record"] == 9
    assert doc["export"]["files"][0]["sha256"] == "ab" * 32
    assert doc["not_measured"] == []
    assert "topic_filter" not in doc["verify"]  # the latest verify covered every topic
    assert "t/0/0.parquet" in markdown(doc) and "<table>" in to_html(doc)


def test_a_verify_limited_by_topic_says_so_in_the_report(tmp_path: Path) -> None:
    catalog = seed_catalog(tmp_path)
    latest = catalog.read_json(f"backups/{BACKUP}/verify-400.json")
    assert latest is not None
    catalog.write_json(f"backups/{BACKUP}/verify-500.json", {**latest, "topic_filter": "t"})
    doc = assemble(catalog, BACKUP)
    assert doc["verify"]["name"] == "verify-500.json" and doc["verify"]["topic_filter"] == "t"


def test_the_report_says_what_the_restore_was_compared_with(tmp_path: Path) -> None:
    catalog = seed_catalog(tmp_path)
    assert assemble(catalog, BACKUP)["verify"]["compared_with"] == "primary"  # older reports
    latest = catalog.read_json(f"backups/{BACKUP}/verify-400.json")
    assert latest is not None
    catalog.write_json(f"backups/{BACKUP}/verify-600.json", {**latest, "compared_with": "manifest"})
    doc = assemble(catalog, BACKUP)
    assert doc["verify"]["compared_with"] == "manifest"
    assert "records compared with the manifest" in markdown(doc)


def test_unmeasured_sections_are_absent(tmp_path: Path) -> None:
    doc = assemble(seed_catalog(tmp_path, verified=False, exported=False), BACKUP)
    assert "verify" not in doc and "rpo" not in doc and "export" not in doc
    assert doc["not_measured"] == ["verify", "rpo", "export"]


def test_verify_report_checks_the_files_it_names(tmp_path: Path) -> None:
    private, public = write_keys(tmp_path)
    doc = sign(assemble(seed_catalog(tmp_path / "c"), BACKUP), load_private_key(private))
    path = tmp_path / "report.json"
    path.write_text(json.dumps(doc))
    stored = {"t/0/0.parquet": "ab" * 32}

    def hasher(url: str, key: str) -> tuple[str, int]:
        assert url == "s3://b/p/ex-1"
        return stored[key], 1

    assert verify_report(path, public, hasher)["files_checked"] == 1
    stored["t/0/0.parquet"] = "cd" * 32
    with pytest.raises(Tampered, match="t/0/0.parquet: sha256"):
        verify_report(path, public, hasher)


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(waiting, "_listeners", [])
    seed_catalog(tmp_path / "catalog", exported=False)
    return write_local_config(tmp_path)


def cli(*args: str) -> Any:
    return runner.invoke(app, list(args))


def test_cli_sign_verify_and_tamper(tmp_path: Path, config_file: Path) -> None:
    private, public = write_keys(tmp_path)
    made = cli("report", BACKUP, "--config", str(config_file), "--sign", str(private))
    assert made.exit_code == 0, made.output
    doc = json.loads(made.stdout)
    assert doc["signature"]["algorithm"] == "ECDSA-P256-SHA256"
    report = tmp_path / "r.json"
    report.write_text(made.stdout)
    ok = cli("report", "verify", str(report), "--public-key", str(public))
    assert ok.exit_code == 0, ok.output
    assert "signature valid" in ok.stdout
    doc["verify"]["verdict"] = "consistent!"
    report.write_text(json.dumps(doc, ensure_ascii=False))
    bad = cli("report", "verify", str(report), "--public-key", str(public))
    assert bad.exit_code == 1
    (line,) = [ln for ln in bad.output.splitlines() if ln.strip()]
    assert "changed after it was signed" in line
    missing = cli("report", "verify", str(report), "--public-key", str(tmp_path / "nope.pem"))
    assert missing.exit_code == 2 and "cannot be read" in missing.output
    junk = tmp_path / "junk.pem"
    junk.write_text("junk")
    refused = cli("report", BACKUP, "--config", str(config_file), "--sign", str(junk))
    assert refused.exit_code == 2 and "not an unencrypted PEM private key" in refused.output


def test_cli_markdown_and_require_verified(tmp_path: Path, config_file: Path) -> None:
    md = cli("report", BACKUP, "--config", str(config_file), "--format", "md")
    assert md.exit_code == 0 and md.stdout.startswith("# Evidence report")
    for key in (tmp_path / "catalog" / "backups" / BACKUP).glob("verify-*.json"):
        key.unlink()
    refused = cli("report", BACKUP, "--config", str(config_file), "--require-verified")
    assert refused.exit_code == 1 and "no recorded verify" in refused.output
    plain = cli("report", BACKUP, "--config", str(config_file))
    assert plain.exit_code == 0 and "verify" in json.loads(plain.stdout)["not_measured"]
    unknown = cli("report", "bk-none", "--config", str(config_file))
    assert unknown.exit_code == 2 and "not found" in unknown.output
