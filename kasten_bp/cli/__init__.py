"""The kasten-bp command line: thin commands over the engine (parse -> validate -> run)."""

from __future__ import annotations

import typer

from kasten_bp.cli import backups, blueprint, lab, restore_verify

app = typer.Typer(
    help="Application-consistent Kafka backups through a MirrorMaker 2 mirror.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(lab.app, name="lab")
backups.register(app)
restore_verify.register(app)
app.add_typer(blueprint.app, name="blueprint")


def main() -> None:
    app()
