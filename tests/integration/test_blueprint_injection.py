"""No shell injection through a Kanister artifact (issue 28, point 1): every phase of both
rendered blueprints that takes the backup id is run here, as Kanister would run it, with a
hostile backup id. Each refuses it in one line (exit 2) and nothing it smuggled runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kasten_bp.cli import blueprint as bp

from .helpers import LabHandle

pytestmark = pytest.mark.integration


def hostile_ids(pwned: Path) -> list[str]:
    return [
        f"x; touch {pwned}",
        f"$(touch {pwned})",
        f"`touch {pwned}`",
        f"x\ntouch {pwned}",
        f"x' && touch {pwned} && echo '",
        "../../../etc",
    ]


def phases_taking_the_id() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for runner in bp.RUNNERS:
        for action, spec in bp.render("mirror", "kafka", runner=runner)["actions"].items():
            for phase in spec["phases"]:
                if bp.BACKUP_ID in repr(phase):
                    found.append((runner, action, phase))
    return found


PHASES = phases_taking_the_id()


def test_the_phases_that_take_the_id_are_the_expected_ones() -> None:
    assert sorted((r, a, p["name"]) for r, a, p in PHASES) == [
        ("k10", "delete", "deleteBackup"),
        ("k10", "restorePosthook", "verifyRestore"),
        ("kanister", "delete", "deleteBackup"),
        ("kanister", "restore", "restoreMirror"),
        ("kanister", "restore", "verifyRestored"),
    ]


@pytest.mark.parametrize(
    ("runner", "action", "phase"), PHASES, ids=[f"{r}-{a}-{p['name']}" for r, a, p in PHASES]
)
def test_a_hostile_backup_id_is_refused_in_one_line_and_runs_nothing(
    lab: LabHandle, tmp_path: Path, runner: str, action: str, phase: dict[str, Any]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kando_log = tmp_path / "kando.log"
    kando = bin_dir / "kando"  # Kanister's helper: records that it was reached
    kando.write_text(f'#!/bin/sh\necho "$@" >> {kando_log}\n')
    kando.chmod(0o755)
    pwned = tmp_path / "pwned"
    for hostile in hostile_ids(pwned):

        def render(value: str, hostile: str = hostile) -> str:
            # Kanister renders Go templates in the command and the pod's env alike.
            return (
                value.replace(bp.BACKUP_ID, hostile)
                .replace("{{ .Phases.restoreMirror.Output.bootstrap }}", "127.0.0.1:9")
                .replace(bp.CONFIG_FILE, str(lab.config_path))
            )

        (container,) = phase["args"]["podOverride"]["containers"]
        env = {e["name"]: render(e["value"]) for e in container.get("env", [])}
        command = [render(word) for word in phase["args"]["command"]]
        done = subprocess.run(
            command,
            env={
                **os.environ,
                **env,
                "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
            },
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        case = f"{runner} {action} {phase['name']} with backup id {hostile!r}"
        assert done.returncode == 2, (case, done.stderr[-2000:])
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "is not a backup id" in errors[0], (case, done.stderr)
        assert not pwned.exists(), case
        assert not kando_log.exists(), case
