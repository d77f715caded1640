"""Text or JSON output, decided in one place; progress and errors go to stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import typer

from kasten_bp.waiting import add_progress_listener


class Output(StrEnum):
    text = "text"
    json = "json"


OutputOption = typer.Option(Output.text, "--output", "-o", help="text or json")


def _print_progress(message: str) -> None:
    print(f"… {message}", file=sys.stderr, flush=True)


def show_progress() -> None:
    """Long waits announce what they wait for, on stderr so JSON stays parseable."""
    add_progress_listener(_print_progress)


def emit(data: Any, output: Output, render_text: Callable[[Any], str] | None = None) -> None:
    if output == Output.json:
        print(json.dumps(data, indent=2, default=str))
    elif render_text is not None:
        print(render_text(data))
    else:
        print(json.dumps(data, indent=2, default=str))


def error(message: str, code: int, output: Output) -> None:
    print(f"error: {message}", file=sys.stderr)
    if output == Output.json:
        print(json.dumps({"error": message, "exit_code": code}))
