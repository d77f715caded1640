"""Runs a command body and maps errors to the exit codes of the CLI contract: never a
traceback (KASTEN_BP_DEBUG=1 prints one after the line), and never exit 1, which means
"verified inconsistent", for an error."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from typing import TypeVar

import typer

from kasten_bp.cli.output import Output, error
from kasten_bp.errors import KastenBpError, LockLost
from kasten_bp.transience import is_temporary

T = TypeVar("T")


def run_command(output: Output, body: Callable[[], T]) -> T:
    try:
        return body()
    except KastenBpError as exc:
        error(str(exc), exc.exit_code, output)
        raise typer.Exit(exc.exit_code) from None
    except LockLost as exc:
        error(str(exc), exc.exit_code, output)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        error("interrupted", 130, output)
        raise typer.Exit(130) from None
    except Exception as exc:  # noqa: BLE001 - one line, whatever it was
        if os.environ.get("KASTEN_BP_DEBUG"):
            traceback.print_exc()
        # Something did not answer (a connection): nothing this command asked for was done.
        code = 2 if is_temporary(exc) else 3
        error(f"{type(exc).__name__}: {str(exc).strip() or 'no detail'}", code, output)
        raise typer.Exit(code) from None
