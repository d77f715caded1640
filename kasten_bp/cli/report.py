"""`report BACKUP_ID`: the evidence report of a backup; `report verify REPORT`: check one.

One command with a verb in place of the backup id: `report verify FILE` reads naturally and
a backup id is never `verify` (ids start with `bk-`).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import typer

from kasten_bp.cli.backups import ConfigOption, _backups
from kasten_bp.cli.output import Output, OutputOption, emit
from kasten_bp.cli.runner import run_command
from kasten_bp.errors import KastenBpError, UsageError

FORMATS = ("json", "md", "html")
ReportArgument = typer.Argument(
    None, metavar="[REPORT]", help="with `verify`: the signed JSON report"
)
SignOption = typer.Option(None, "--sign", help="ECDSA P-256 private key (PKCS#8 PEM) to sign with")
PublicKeyOption = typer.Option(
    None, "--public-key", help="with `verify`: the signer's public key (PEM)"
)


class NotVerified(KastenBpError):
    """--require-verified, and no verify of a restore of this backup is recorded."""

    exit_code = 1


@functools.cache
def _bucket(url: str) -> Any:
    from kasten_bp.catalog.s3_objects import S3Objects

    return S3Objects(url)  # one client per export, not per file


def _object_hasher(url: str, key: str) -> tuple[str, int]:
    digest: tuple[str, int] = _bucket(url).sha256(key)
    return digest


def register(app: typer.Typer) -> None:
    @app.command()
    def report(
        target: str = typer.Argument(..., metavar="BACKUP_ID | verify"),
        report_file: Path | None = ReportArgument,
        config: Path | None = ConfigOption,
        sign: Path | None = SignOption,
        fmt: str = typer.Option("json", "--format", help="json, md or html"),
        require_verified: bool = typer.Option(
            False, "--require-verified", help="exit 1 when no verify of a restore is recorded"
        ),
        public_key: Path | None = PublicKeyOption,
        output: Output = OutputOption,
    ) -> None:
        """Evidence for a backup: timings, RPO, restore duration, verify verdicts, export
        checksums, optionally signed (`--format json` embeds the signature).
        `report verify REPORT --public-key PUB.pem` checks a signed report and the files it
        names: exit 0 valid, 1 tampered (one line why), 2 bad input."""
        if target == "verify":
            _verify(report_file, public_key, output)
            return

        def body() -> dict[str, Any]:
            from kasten_bp.evidence.assemble import assemble
            from kasten_bp.evidence.signing import load_private_key
            from kasten_bp.evidence.signing import sign as sign_doc

            if fmt not in FORMATS:
                raise UsageError(f"--format {fmt!r}: want one of {', '.join(FORMATS)}")
            if report_file is not None:
                raise UsageError("report BACKUP_ID takes no second argument")
            key = load_private_key(sign) if sign is not None else None
            doc = assemble(_backups(config).catalog, target)
            if require_verified and "verify" not in doc:
                raise NotVerified(f"backup {target} has no recorded verify of a restore")
            return sign_doc(doc, key) if key is not None else doc

        doc = run_command(output, body)
        if fmt == "json" or output == Output.json:
            print(json.dumps(doc, indent=2, ensure_ascii=False))
        else:
            from kasten_bp.evidence.render import markdown, to_html

            print(markdown(doc) if fmt == "md" else to_html(doc))


def _verify(report_file: Path | None, public_key: Path | None, output: Output) -> None:
    def body() -> dict[str, Any]:
        from kasten_bp.evidence.check import verify_report

        if report_file is None or public_key is None:
            raise UsageError("usage: kasten-bp report verify REPORT --public-key PUB.pem")
        return verify_report(report_file, public_key, _object_hasher)

    result = run_command(output, body)
    emit(
        result,
        output,
        lambda d: (
            f"report {d['report']}: signature valid (key sha256:{d['signed_by']}), "
            f"{d['files_checked']} file checksums match"
        ),
    )
