"""A config for the local platform whose clusters do not exist: CLI tests that must fail
(or answer from the catalog alone) before touching any cluster."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_local_config(tmp_path: Path) -> Path:
    lab_dir = tmp_path / "lab"
    lab_dir.mkdir(exist_ok=True)
    data = {
        "platform": "local",
        "primary": {"bootstrap": "127.0.0.1:1"},
        "mirror": {"bootstrap": "127.0.0.1:2"},
        "connect": {"url": "http://127.0.0.1:3", "connectors": ["source"]},
        "catalog": str(tmp_path / "catalog"),
        "local": {"lab_dir": str(lab_dir)},
    }
    path = tmp_path / "kasten-bp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
