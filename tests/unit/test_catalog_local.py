"""LocalCatalog: a catalog in a directory."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kasten_bp.catalog import local
from kasten_bp.catalog.base import backup_key, open_catalog
from kasten_bp.catalog.local import LocalCatalog
from kasten_bp.errors import UsageError


@pytest.fixture
def catalog(tmp_path: Path) -> LocalCatalog:
    return LocalCatalog(tmp_path / "catalog")


def test_open_catalog_local(tmp_path: Path) -> None:
    for url in (str(tmp_path / "c"), f"file://{tmp_path / 'c'}"):
        cat = open_catalog(url)
        assert isinstance(cat, LocalCatalog)
        assert cat.url == str(tmp_path / "c")


def test_write_read_round_trip(catalog: LocalCatalog) -> None:
    key = backup_key("b1", "manifest.json")
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    catalog.write_json(key, {"id": "b1", "when": when, "topics": ["a"]})
    assert catalog.read_json(key) == {"id": "b1", "when": str(when), "topics": ["a"]}
    assert (catalog.root / "backups" / "b1" / "manifest.json").is_file()
    catalog.write_json(key, {"id": "b1", "n": 2})
    assert catalog.read_json(key) == {"id": "b1", "n": 2}


def test_read_missing_or_non_object(catalog: LocalCatalog) -> None:
    assert catalog.read_json("backups/nope/manifest.json") is None
    catalog.root.mkdir(parents=True, exist_ok=True)
    (catalog.root / "list.json").write_text("[1, 2]")
    assert catalog.read_json("list.json") is None


def test_write_is_atomic(catalog: LocalCatalog, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "backups/b1/manifest.json"
    catalog.write_json(key, {"version": 1})

    def dump_half(data: Any, f: Any, **kwargs: Any) -> None:
        f.write(json.dumps(data)[:5])
        raise OSError("disk full")

    monkeypatch.setattr(local.json, "dump", dump_half)
    with pytest.raises(OSError, match="disk full"):
        catalog.write_json(key, {"version": 2, "padding": "x" * 1000})
    monkeypatch.undo()
    # The reader still sees the whole old document; the half-written temp file is hidden.
    assert catalog.read_json(key) == {"version": 1}
    assert catalog.list_keys("") == [key]
    # A successful write replaces the document in one step and leaves no temp file behind.
    catalog.write_json(key, {"version": 3})
    assert catalog.read_json(key) == {"version": 3}
    assert [p.name for p in (catalog.root / "backups" / "b1").iterdir()] == ["manifest.json"]


def test_write_leaves_no_temp_file(catalog: LocalCatalog) -> None:
    catalog.write_json("a/b.json", {"x": 1})
    assert sorted(p.name for p in (catalog.root / "a").iterdir()) == ["b.json"]


def test_list_keys_with_prefix(catalog: LocalCatalog) -> None:
    keys = [
        "backups/b1/manifest.json",
        "backups/b1/runs/r1/journal.json",
        "backups/b2/manifest.json",
        "backups/other/manifest.json",
        "reports/latest.json",
    ]
    for key in reversed(keys):
        catalog.write_json(key, {"key": key})
    assert catalog.list_keys("") == keys
    assert catalog.list_keys("backups/") == keys[:4]
    assert catalog.list_keys("backups/b1/") == keys[:2]
    # A prefix is a string prefix, not only a directory.
    assert catalog.list_keys("backups/b") == keys[:3]
    assert catalog.list_keys("backups/b1/runs/r1/journal.json") == [keys[1]]
    assert catalog.list_keys("nothing/") == []
    assert catalog.list_keys("backups/none/") == []


def test_list_keys_empty_catalog(tmp_path: Path) -> None:
    cat = LocalCatalog(tmp_path / "does-not-exist-yet")
    assert cat.list_keys("") == []
    assert cat.list_keys("backups/") == []
    assert cat.delete_prefix("backups/") == 0


def test_delete_prefix(catalog: LocalCatalog) -> None:
    for key in (
        "backups/b1/manifest.json",
        "backups/b1/runs/r1/journal.json",
        "backups/b2/manifest.json",
        "reports/latest.json",
    ):
        catalog.write_json(key, {})
    assert catalog.delete_prefix("backups/b1/") == 2
    assert not (catalog.root / "backups" / "b1").exists()
    assert catalog.read_json("backups/b1/manifest.json") is None
    assert catalog.list_keys("") == ["backups/b2/manifest.json", "reports/latest.json"]
    assert catalog.delete_prefix("backups/b1/") == 0
    # A prefix that is not a directory deletes the matching files only.
    catalog.write_json("backups/b3/manifest.json", {})
    catalog.write_json("backups/b3/report.json", {})
    assert catalog.delete_prefix("backups/b3/man") == 1
    assert catalog.list_keys("backups/b3/") == ["backups/b3/report.json"]


@pytest.mark.parametrize("key", ["../outside.json", "backups/../../outside.json", "/etc/passwd"])
def test_key_escaping_the_root_is_refused(catalog: LocalCatalog, key: str) -> None:
    with pytest.raises(UsageError, match="escapes"):
        catalog.write_json(key, {"a": 1})
    with pytest.raises(UsageError, match="escapes"):
        catalog.read_json(key)
    with pytest.raises(UsageError, match="escapes"):
        catalog.delete_prefix(key)


def test_key_escaping_into_a_sibling_directory_is_refused(catalog: LocalCatalog) -> None:
    with pytest.raises(UsageError, match="escapes"):
        catalog.write_json("../catalog2/x.json", {"a": 1})


def test_verify_finds_the_newest_restore_of_a_backup(catalog: LocalCatalog) -> None:
    """Without --restored or kubernetes.restored_bootstrap, verify checks the cluster the
    newest `restore` of that backup reported (numeric order: 999 is older than 1000)."""
    from types import SimpleNamespace

    from kasten_bp.cli.restore_verify import restored_bootstrap

    b = SimpleNamespace(platform=object(), config=SimpleNamespace(kubernetes=None), catalog=catalog)
    with pytest.raises(UsageError, match="no restored cluster known for backup b1"):
        restored_bootstrap(b, "b1", None)
    catalog.write_json(backup_key("b1", "restore-999.json"), {"bootstrap": "old:9092"})
    catalog.write_json(backup_key("b1", "restore-1000.json"), {"bootstrap": "new:9092"})
    catalog.write_json(backup_key("b2", "restore-2000.json"), {"bootstrap": "other:9092"})
    assert restored_bootstrap(b, "b1", None) == "new:9092"
    assert restored_bootstrap(b, "b1", "given:9092") == "given:9092"
    configured = SimpleNamespace(kubernetes=SimpleNamespace(restored_bootstrap="cfg:9092"))
    assert restored_bootstrap(SimpleNamespace(**{**vars(b), "config": configured}), "b1", None) == (
        "cfg:9092"
    )
