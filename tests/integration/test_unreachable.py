"""Every CLI verb against clusters and a Connect worker that do not answer (issue 26): one
line naming what failed, no traceback, and never exit 1, which means "inconsistent".

The catalog is a copy of the session lab's, holding a real completed backup; the config
points primary, mirror, restored cluster and Connect at closed ports on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from kasten_bp.lab.ports import free_ports

from .helpers import LabHandle, cli_json, seed


def test_every_verb_against_unreachable_addresses_is_one_line_never_exit_1(
    lab: LabHandle, topic: str, tmp_path: Path
) -> None:
    seed(lab, topic)
    backup_id = cli_json(lab, "backup")["backup_id"]
    raw = yaml.safe_load(lab.config_path.read_text())
    catalog = tmp_path / "catalog"
    shutil.copytree(raw["catalog"], catalog)
    primary, mirror, restored, connect, s3 = (f"127.0.0.1:{p}" for p in free_ports(5))
    raw |= {
        "catalog": str(catalog),
        "primary": {"bootstrap": primary},
        "mirror": {"bootstrap": mirror},
        "connect": {**raw["connect"], "url": f"http://{connect}"},
        "verify": {"primary_timeout_seconds": 2},
        "local": {"lab_dir": str(tmp_path / "no-lab")},
    }
    config = tmp_path / "dead.yaml"
    config.write_text(yaml.safe_dump(raw))
    r = ("--restored", restored)
    verbs = [
        ("backup",),
        ("backup", "--dry-run"),
        ("quiesce",),
        ("status",),
        ("resume",),
        ("verify", backup_id, *r),
        ("verify", backup_id, "--deep", *r),
        ("verify", backup_id, "--against", "primary", *r),
        ("verify", backup_id, "--against", "manifest", *r),
        ("groups", "plan", backup_id, *r),
        ("groups", "apply", backup_id, *r),
        ("restore", backup_id),
        ("replay", backup_id, "--to", restored, "--source-bootstrap", mirror),
        ("export", backup_id, "--to", "s3://bucket/x"),
        ("report", backup_id),
        ("list",),
        ("show", backup_id),
    ]
    # S3 too: an endpoint that does not answer.
    env = {**os.environ, "KASTEN_BP_S3_ENDPOINT": f"http://{s3}"}

    def run(args: tuple[str, ...]) -> tuple[tuple[str, ...], subprocess.CompletedProcess[str]]:
        done = subprocess.run(
            [sys.executable, "-m", "kasten_bp.cli", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        return args, done

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, verbs))
    problems = []
    for args, done in results:
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        # A verb that needs nothing that is down may succeed (list, show, report and status
        # read only the catalog, which is here; groups of a backup that recorded none).
        if done.returncode == 0 and "Traceback" not in done.stderr and not errors:
            continue
        if done.returncode == 1 or "Traceback" in done.stderr or len(errors) != 1:
            problems.append(f"{' '.join(args)}: exit {done.returncode}: {done.stderr[-600:]}")
    assert not problems, "\n".join(problems)
    # The ones that need the clusters did fail, each naming what did not answer.
    failed = {args: done for args, done in results if done.returncode != 0}
    assert {args[0] for args in failed} >= {"backup", "quiesce", "verify", "restore", "replay"}
    said = {args: done.stderr for args, done in failed.items()}
    assert "cannot be reached" in said[("verify", backup_id, *r)]
