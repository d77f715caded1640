"""A catalog in a local directory."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from kasten_bp.errors import UsageError


class LocalCatalog:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise UsageError(f"catalog key {key!r} escapes {self.root}")
        return path

    def write_json(self, key: str, data: dict[str, Any]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        # The rename is durable only once the directory is: a crash right after would
        # otherwise lose the journal entry that puts the mirror back.
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def read_json(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else None

    def list_keys(self, prefix: str) -> list[str]:
        # Walk only below the prefix's directory: snapshots share the root and are large.
        start = self._path(prefix.rsplit("/", 1)[0]) if "/" in prefix else self.root
        if not start.exists():
            return []
        keys = []
        for path in start.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list_keys(prefix)
        target = self._path(prefix)
        if target.is_dir():
            shutil.rmtree(target)
        else:
            for key in keys:
                self._path(key).unlink(missing_ok=True)
        return len(keys)
