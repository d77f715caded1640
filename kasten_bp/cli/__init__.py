"""The kasten-bp command line: thin commands over the engine (parse -> validate -> run)."""

from __future__ import annotations

import typer

from kasten_bp.cli import backups, blueprint, export, groups, lab, replay, report, restore_verify

app = typer.Typer(
    help=(
        "Application-consistent Kafka backups through a MirrorMaker 2 mirror.\n\n"
        "Exit codes: 0 success or consistent; 1 verified inconsistent; 2 usage or "
        "configuration error (nothing changed); 3 failed and rolled back; 4 rollback failed "
        "(a person must act); 5 completed with warnings (COMPLETED_WITH_WARNINGS: the backup "
        "is kept, something after its snapshot failed; see `warnings`); 130 interrupted."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(lab.app, name="lab")
backups.register(app)
restore_verify.register(app)
replay.register(app)
export.register(app)
report.register(app)
app.add_typer(blueprint.app, name="blueprint")
app.add_typer(groups.app, name="groups")


def main() -> None:
    app()
