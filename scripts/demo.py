"""`make demo`: the main job on the embedded lab, shown through the CLI a user would type.

lab up -> consumer groups that committed -> a writer that keeps producing -> consistent
backup (groups recorded at the cut) -> restore -> groups set exactly, next to MM2's
checkpoints -> verify, then the same with --mode hot, and a side-by-side report.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "kasten_bp.cli"]


def run(*args: str, check: bool = True, quiet: bool = False) -> Any:
    print(f"$ kasten-bp {shlex.join(args)}", flush=True)
    result = subprocess.run([*CLI, *args, "--output", "json"], capture_output=True, text=True)
    if not quiet:
        for line in result.stderr.splitlines():
            if line.startswith(("▶", "■")):
                print(f"    {line}", flush=True)
    if check and result.returncode != 0:
        detail = result.stderr.strip()[-500:]
        sys.exit(f"demo: `kasten-bp {shlex.join(args)}` failed ({result.returncode}): {detail}")
    return result.returncode, json.loads(result.stdout) if result.stdout.strip() else {}


def backup_restore_verify(
    config: str, mode: str, with_groups: bool = False
) -> tuple[dict, dict, int]:
    _, backup = run("backup", "--mode", mode, "--config", config)
    if backup["downtime_seconds"] is None:
        impact = "MM2 and brokers never stopped"
    else:
        impact = (
            f"MM2 stopped {backup['downtime_seconds']:.1f}s, "
            f"mirror brokers down {backup['mirror_unavailable_seconds']:.1f}s"
        )
    print(f"    backup {backup['backup_id']}: {backup['status']}, {impact}")
    _, restored = run("restore", backup["backup_id"], "--config", config)
    print(f"    restored cluster at {restored['bootstrap']}")
    if with_groups:
        restore_groups(config, backup, restored["bootstrap"])
    code, report = run("verify", backup["backup_id"], "--config", config, check=False)
    if code not in (0, 1):
        sys.exit(f"demo: verify failed with exit code {code}")
    print(f"    verdict: {report['verdict']} (exit {code})")
    for g in report.get("groups", []):
        print(f"    group {g['group']} on the restored cluster: {g['status']}")
    return backup, report, code


def restore_groups(config: str, backup: dict, restored: str) -> None:
    """The backup's consumer groups set on the restored cluster, next to where MM2's own
    checkpoints alone would have put them."""
    backup_id = backup["backup_id"]
    _, applied = run("groups", "apply", backup_id, "--restored", restored, "--config", config)
    checkpoints = {
        (g["group"], p["topic"], p["partition"]): p["checkpoint"]
        for g in backup["manifest"].get("groups", [])
        for p in g["partitions"]
    }
    print(
        f"    {'group':<10} {'partition':<12} {'primary':>8} {'kasten-bp':>9} {'method':<8}"
        f" {'MM2 checkpoint':>14} {'MM2 re-reads':>12}"
    )
    for g in applied["groups"]:
        for p in g["partitions"]:
            cp = checkpoints.get((g["group"], p["topic"], p["partition"]))
            ours = p["restored_offset"]
            mm2 = cp["downstream_offset"] if cp else None
            rereads = ours - mm2 if ours is not None and mm2 is not None else None
            print(
                f"    {g['group']:<10} {p['topic'] + '[' + str(p['partition']) + ']':<12} "
                f"{p['primary_offset']:>8} {_fmt(ours):>9} {p['method']:<8} "
                f"{_fmt(mm2):>14} {_fmt(rereads):>12}"
            )


def disaster_drill(config: str, workdir: str, backup_id: str, group: str, topic: str) -> bool:
    """The primary killed; the consistent backup restored with its groups and verified
    against what it recorded; the group resumes on the restored cluster at exactly the
    record it would have read next on the primary."""
    from kasten_bp.backup import Backups
    from kasten_bp.config import load_config
    from kasten_bp.kafka import admin

    print("\n-- disaster drill: the primary is lost --")
    b = Backups(load_config(Path(config)))
    primary = b.config.primary.bootstrap
    keys = [(topic, p) for p in range(admin.topics(primary)[topic])]
    expected = next_records(primary, group, keys)
    run("lab", "fail", "primary", "--workdir", workdir)
    _, restored = run("restore", backup_id, "--with-groups", "--config", config)
    print(f"    restored cluster at {restored['bootstrap']}, groups set from the manifest")
    code, report = run("verify", backup_id, "--deep", "--config", config, check=False)
    print(
        f"    verify --deep: {report.get('verdict')} (exit {code}), compared with the "
        f"{report.get('compared_with')}: the primary was "
        f"{'reachable' if (report.get('primary') or {}).get('reachable') else 'unreachable'}"
    )
    resumed = next_records(restored["bootstrap"], group, sorted(expected))
    ok = code == 0 and bool(expected)
    for key, record in sorted(expected.items()):
        got = resumed.get(key)
        same = got is not None and got.content() == record.content()
        ok = ok and same
        print(
            f"    group {group} resumes {key[0]}[{key[1]}] at offset "
            f"{got.offset if got else '-'} on the restored cluster: "
            f"{'the' if same else 'NOT the'} record it would have read next on the primary "
            f"(primary offset {record.offset}, key {record.key!r}, "
            f"{len(record.value or b'')} value bytes)"
        )
    return ok


def next_records(bootstrap: str, group: str, keys: list[tuple[str, int]]) -> dict:
    """What a consumer of `group` reads first on each partition, from its committed offset
    (the first committed record at or after it)."""
    from kasten_bp.kafka import admin, reading
    from kasten_bp.kafka.groups import committed

    at = {(c.topic, c.partition): c.offset for c in committed(bootstrap, group, keys)}
    marks = admin.watermarks(bootstrap, sorted(at))
    read = reading.read_ranges(
        bootstrap, {k: (o, marks[k][1]) for k, o in at.items() if o < marks[k][1]}
    )
    return {k: records[0] for k, records in read.items() if records}


def side_by_side(reports: dict[str, dict]) -> str:
    modes = list(reports)
    rows: dict[tuple[str, int], dict[str, dict]] = {}
    for mode, report in reports.items():
        for p in report["partitions"]:
            rows.setdefault((p["topic"], p["partition"]), {})[mode] = p
    columns = "{:<20} {:>8} {:>8} {:>7} {:>6}"
    head = f"{'partition':<18}" + "".join(
        f" | {m + ': status':<20} {'restored':>8} {'primary':>8} {'RPO rec':>7} {'RPO s':>6}"
        for m in modes
    )
    lines = [head, "-" * len(head)]
    for (topic, partition), by_mode in sorted(rows.items()):
        line = f"{topic}[{partition}]".ljust(18)
        for m in modes:
            p = by_mode.get(m)
            if p is None:
                line += f" | {'(not in backup)':<20} {'':>8} {'':>8} {'':>7} {'':>6}"
                continue
            line += " | " + columns.format(
                p["status"],
                _fmt(p["restored_end_offset"]),
                _fmt(p["primary_end_offset"]),
                _fmt(p["records_behind"]),
                _fmt(p["seconds_behind"]),
            )
        lines.append(line)
    lines.append("")
    for m in modes:
        r = reports[m]
        counts = ", ".join(f"{k}={v}" for k, v in r["counts"].items() if v)
        lines.append(
            f"{m:<11} verdict: {r['verdict'].upper():<12} "
            f"RPO {r['rpo_records']} records / {r['rpo_seconds']:.1f}s  {counts}"
        )
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default=".lab/demo")
    parser.add_argument("--keep", action="store_true", help="leave the lab running")
    args = parser.parse_args()
    workdir = str(Path(args.workdir).resolve())
    print("== kasten-bp demo: consistent backups of a Kafka mirror, restored and verified ==")
    _, lab = run("lab", "up", "--workdir", workdir)
    config = lab["config"]
    print(f"    primary {lab['primary']['bootstrap']}, mirror {lab['mirror']['bootstrap']}")
    run("lab", "load", "--workdir", workdir, "--topic", "orders", "--records", "5000")
    run(
        "lab",
        "load",
        "--workdir",
        workdir,
        "--topic",
        "payments",
        "--records",
        "2000",
        "--partitions",
        "2",
    )
    run("lab", "consume", "--workdir", workdir, "--group", "billing", "--topic", "payments")
    run(
        "lab",
        "consume",
        "--workdir",
        workdir,
        "--group",
        "audit",
        "--topic",
        "payments",
        "--records",
        "1234",
    )
    print("$ kasten-bp lab load --topic orders --rate 200 ...   (keeps writing during the backups)")
    writer = subprocess.Popen(
        [
            *CLI,
            "lab",
            "load",
            "--workdir",
            workdir,
            "--topic",
            "orders",
            "--records",
            "1000000",
            "--rate",
            "200",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    reports: dict[str, dict] = {}
    try:
        time.sleep(3)
        print("\n-- consistent backup (MM2 quiesced, catch-up proven, brokers stopped cleanly) --")
        consistent, reports["consistent"], consistent_code = backup_restore_verify(
            config, "consistent", with_groups=True
        )
        print("\n-- hot backup (log dirs copied from running brokers: the comparison case) --")
        _, reports["hot"], _ = backup_restore_verify(config, "hot")
    finally:
        writer.terminate()
        writer.wait(30)
    print("\n== report: restored head vs primary, per partition ==")
    print(side_by_side(reports))
    drill_ok = disaster_drill(config, workdir, consistent["backup_id"], "audit", "payments")
    if args.keep:
        print(f"\nlab left running: `kasten-bp lab down --workdir {workdir}` stops it")
    else:
        run("lab", "down", "--workdir", workdir)
    if consistent_code != 0:
        sys.exit("demo: the consistent backup did not verify consistent")
    if not drill_ok:
        sys.exit("demo: the disaster drill did not resume the group at its next record")


if __name__ == "__main__":
    main()
