"""The command line: commands, exit codes, one-line errors on stderr, JSON output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kasten_bp import waiting
from kasten_bp.cli import app
from tests.unit.local_config import write_local_config

runner = CliRunner()

COMMANDS = ["lab", "backup", "restore", "verify", "list", "show", "quiesce", "snapshot"]
COMMANDS += ["resume", "status"]


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("KASTEN_BP_CONFIG", raising=False)
    monkeypatch.delenv("KASTEN_BP_CATALOG", raising=False)
    # Commands register progress listeners globally: each test starts and ends with none.
    monkeypatch.setattr(waiting, "_listeners", [])
    yield


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """A valid-looking config for the local platform whose lab_dir holds no lab."""
    return write_local_config(tmp_path)


def error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert f" {command} " in result.stdout, command


def test_lab_help_lists_subcommands() -> None:
    result = runner.invoke(app, ["lab", "--help"])
    assert result.exit_code == 0
    for command in ("up", "down", "status", "load"):
        assert f" {command} " in result.stdout, command


def test_backup_help_shows_options() -> None:
    result = runner.invoke(app, ["backup", "--help"])
    assert result.exit_code == 0
    for option in ("--mode", "--dry-run", "--config", "--output"):
        assert option in result.stdout


def test_backup_with_missing_config(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    result = runner.invoke(app, ["backup", "--config", str(missing)])
    assert result.exit_code == 2
    line = error_line(result.stderr)
    assert str(missing) in line and "not found" in line
    assert result.stdout == ""


def test_backup_with_unknown_mode(config_file: Path) -> None:
    result = runner.invoke(app, ["backup", "--config", str(config_file), "--mode", "lukewarm"])
    assert result.exit_code == 2
    line = error_line(result.stderr)
    assert "--mode" in line and "lukewarm" in line
    # Nothing was changed: no journal in the catalog.
    assert not (config_file.parent / "catalog" / "backups").exists()


def test_error_as_json(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    result = runner.invoke(app, ["backup", "--config", str(missing), "--output", "json"])
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["exit_code"] == 2
    assert str(missing) in data["error"]
    # The human line still goes to stderr, so stdout stays parseable.
    assert "not found" in error_line(result.stderr)


def test_unknown_mode_as_json(config_file: Path) -> None:
    args = ["backup", "-c", str(config_file), "--mode", "lukewarm", "-o", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {
        "error": "--mode must be consistent or hot, got lukewarm",
        "exit_code": 2,
    }


def test_verify_with_no_workers_is_one_line_exit_2(config_file: Path) -> None:
    args = ["verify", "bk-any", "-c", str(config_file), "--deep", "--workers", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert error_line(result.stderr) == "error: --workers must be at least 1, not 0"
    result = runner.invoke(app, [*args, "-o", "json"])
    assert json.loads(result.stdout) == {
        "error": "--workers must be at least 1, not 0",
        "exit_code": 2,
    }


@pytest.mark.parametrize("extra", [[], ["--export", "s3://b/p/ex-1"]])
def test_verify_with_a_bad_topic_is_one_line_exit_2(config_file: Path, extra: list[str]) -> None:
    args = ["verify", "bk-any", "-c", str(config_file), "--topic", "(", *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    line = error_line(result.stderr)
    if extra:
        assert line == "error: --topic does not apply to --export: an export is checked whole"
    else:
        assert line.startswith("error: --topic '(' is not a regular expression: ")


def test_invalid_config_field(tmp_path: Path) -> None:
    path = tmp_path / "kasten-bp.yaml"
    path.write_text(yaml.safe_dump({"primary": {"bootstrap": "x:1"}}))
    result = runner.invoke(app, ["list", "--config", str(path)])
    assert result.exit_code == 2
    assert "mirror" in error_line(result.stderr)


def test_list_on_an_empty_catalog(config_file: Path) -> None:
    result = runner.invoke(app, ["list", "--config", str(config_file)])
    assert result.exit_code == 0, result.stderr
    assert "no backups" in result.stdout
    result = runner.invoke(app, ["list", "--config", str(config_file), "-o", "json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize("command", ["show", "restore", "verify"])
def test_unknown_backup_id(config_file: Path, command: str) -> None:
    result = runner.invoke(app, [command, "bk-nope", "--config", str(config_file)])
    assert result.exit_code == 2
    line = error_line(result.stderr)
    assert "bk-nope" in line and "not found" in line


def test_delete_needs_confirm(config_file: Path) -> None:
    result = runner.invoke(app, ["delete", "bk-1", "--config", str(config_file)])
    assert result.exit_code == 2
    assert "--confirm" in error_line(result.stderr)


def test_lab_status_without_a_lab(tmp_path: Path) -> None:
    result = runner.invoke(app, ["lab", "status", "--workdir", str(tmp_path)])
    assert result.exit_code == 2
    assert "no lab in" in error_line(result.stderr)
