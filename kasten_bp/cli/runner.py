"""Runs a command body and maps errors to the exit codes of the CLI contract."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer

from kasten_bp.cli.output import Output, error
from kasten_bp.errors import KastenBpError

T = TypeVar("T")


def run_command(output: Output, body: Callable[[], T]) -> T:
    try:
        return body()
    except KastenBpError as exc:
        error(str(exc), exc.exit_code, output)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        error("interrupted", 130, output)
        raise typer.Exit(130) from None
