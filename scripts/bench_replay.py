#!/usr/bin/env python3
"""Replay bench: `kasten-bp replay` of a whole backup topic into a fresh target cluster,
against kcat piping the same partitions (`kcat -C ... -e | kcat -P ...`) into another
fresh topic of the same target, in the same run; records/s of each, the ratio, and the
peak RSS of each (GNU time).

Starts its own lab (primary, mirror, MM2, one target cluster) under a temporary directory,
produces N records (~1 KiB average, 6 partitions) to the primary, takes a consistent
backup, restores it, then times the two copies from the restored cluster. The lab is
stopped at the end. Standalone: `python scripts/bench_replay.py --records 1000000`; from
bench.py: `from bench_replay import run, render`.

kasten-bp's figure is its whole process (start, preflight, copy, and the content proof
that reads both sides again); the copy phase alone is shown too (from the report). kcat
neither checks nor proves anything and keeps no headers or timestamps.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `bench` beside this file

from bench import (  # noqa: E402 - after the path above
    TOPIC,
    ensure_kcat,
    log,
    ratio,
    restore,
    take_backup,
    timed,
    wait_mirrored,
)

from kasten_bp.backup import Backups  # noqa: E402
from kasten_bp.config import load_config  # noqa: E402
from kasten_bp.kafka import admin, producing  # noqa: E402
from kasten_bp.lab.lab import Lab  # noqa: E402
from kasten_bp.platforms.local import LocalPlatform  # noqa: E402
from kasten_bp.records import Record  # noqa: E402

PARTITIONS = 6
DEFAULT_RECORDS = 1_000_000
REPLAY_TOPIC = "replay-copy"
KCAT_TOPIC = "kcat-copy"
# kcat -P splits its input on these: long enough never to occur in random values.
KEY_END = "|~kasten-bench-key~|"
RECORD_END = "|~kasten-bench-record-end~|"
GNU_TIME = "/usr/bin/time"
PYTHON = sys.executable


# --- tools ------------------------------------------------------------------------------


def ensure_gnu_time() -> tuple[str | None, str]:
    """GNU time (for peak RSS), installing the Debian package `time` when root."""
    if Path(GNU_TIME).exists():
        return GNU_TIME, "found"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None, "GNU time not found: install it (`sudo apt-get install -y time`)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for update in (False, True):
        if update:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=300)
        log("installing GNU time with apt-get")
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "time"], env=env, capture_output=True, timeout=300
        )
        if Path(GNU_TIME).exists():
            return GNU_TIME, "installed with apt-get"
    return None, "GNU time could not be installed with apt-get"


def peak_rss_kib(time_output: str) -> int | None:
    """`Maximum resident set size (kbytes): N` of `time -v`, or `%M` of `time -f %M`."""
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_output)
    if found:
        return int(found.group(1))
    lines = time_output.strip().splitlines()
    return int(lines[-1]) if lines and lines[-1].strip().isdigit() else None


def mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


# --- load ---------------------------------------------------------------------------------


def load_records(count: int, seed: int = 11) -> Iterator[Record]:
    """~1 KiB on average (0 to 4000 bytes, as lab.load), spread over the partitions; every
    7th key null, every 3rd record with headers. random.randbytes: fast enough for 1 M."""
    rnd = random.Random(seed)
    now = int(time.time() * 1000)
    sizes = (0, 10, 100, 1000, 4000)
    for i in range(count):
        key = None if i % 7 == 0 else f"key-{rnd.randrange(100_000)}".encode()
        value = rnd.randbytes(sizes[rnd.randrange(len(sizes))])
        headers = (("seq", str(i).encode()),) if i % 3 == 0 else ()
        yield Record(TOPIC, i % PARTITIONS, -1, now + i // 1000, key, value, headers)


def topic_records(bootstrap: str, topic: str) -> int:
    marks = admin.watermarks(bootstrap, [(topic, p) for p in range(PARTITIONS)])
    return sum(high - low for low, high in marks.values())


# --- the two copies -------------------------------------------------------------------------


def replay(
    gnu_time: str | None, config_path: Path, backup_id: str, restored: str, target: str, work: Path
) -> dict[str, Any]:
    spec = work / "replay-spec.yaml"
    spec.write_text(
        f"topics: [{{source: {TOPIC}, target: {REPLAY_TOPIC}}}]\n"
        f"create_topics: true\nparallelism: {PARTITIONS}\n"
    )
    cmd = [PYTHON, "-m", "kasten_bp.cli", "replay", backup_id, "--source-bootstrap", restored]
    cmd += ["--to", target, "--spec", str(spec), "--config", str(config_path), "-o", "json"]
    if gnu_time:
        cmd = [gnu_time, "-v", *cmd]
    result, seconds = timed(
        lambda: subprocess.run(cmd, capture_output=True, text=True, timeout=7200)
    )
    if result.returncode != 0:
        raise RuntimeError(f"replay exited {result.returncode}: {result.stderr[-1500:]}")
    out = json.loads(result.stdout)
    copied = out["records"]
    copy_seconds = out["seconds"]["copy"]
    return {
        "status": out["status"],
        "proof": out["proof"],
        "records": copied,
        "seconds": round(seconds, 3),
        "records_per_second": round(copied / seconds, 1),
        "copy_seconds": copy_seconds,
        "copy_records_per_second": round(copied / copy_seconds, 1) if copy_seconds else None,
        "proof_seconds": out["seconds"]["proof"],
        "producers": out["producers"],
        "peak_rss_mib": mib(peak_rss_kib(result.stderr)) if gnu_time else None,
    }


def kcat_pipe(
    kcat: str, gnu_time: str | None, restored: str, source_topic: str, target: str, work: Path
) -> dict[str, Any]:
    """One `kcat -C` reading every partition, piped to one `kcat -P`: one reader and one
    writer, as kasten-bp is one process (the writer's partitioner spreads the records over
    the target's partitions); each kcat under `time -f %M` for its peak RSS."""
    admin.create_topic(target, KCAT_TOPIC, PARTITIONS)
    fmt = f"%k{KEY_END}%s{RECORD_END}"

    def timed_cmd(args: list[str], name: str) -> list[str]:
        return [gnu_time, "-f", "%M", "-o", str(work / name), *args] if gnu_time else args

    consume = [kcat, "-C", "-b", restored, "-t", source_topic]
    consume += ["-o", "beginning", "-e", "-q", "-f", fmt]
    produce = [kcat, "-P", "-b", target, "-t", KCAT_TOPIC, "-K", KEY_END, "-D", RECORD_END]
    start = time.perf_counter()
    reader = subprocess.Popen(timed_cmd(consume, "rss-c"), stdout=subprocess.PIPE)
    writer = subprocess.Popen(timed_cmd(produce, "rss-p"), stdin=reader.stdout)
    assert reader.stdout is not None
    reader.stdout.close()  # the writer holds the pipe now
    procs = [reader, writer]
    codes = [proc.wait(timeout=7200) for proc in procs]
    seconds = time.perf_counter() - start
    if any(codes):
        raise RuntimeError(f"kcat pipelines exited {codes}")
    copied = topic_records(target, KCAT_TOPIC)
    rss = [peak_rss_kib(f.read_text()) for f in sorted(work.glob("rss-*"))] if gnu_time else []
    known = [r for r in rss if r is not None]
    return {
        "records": copied,
        "seconds": round(seconds, 3),
        "records_per_second": round(copied / seconds, 1),
        "processes": len(procs),
        "peak_rss_mib_largest": mib(max(known)) if known else None,
        "peak_rss_mib_sum": mib(sum(known)) if known else None,
    }


# --- the run ----------------------------------------------------------------------------------


def run(records: int, workdir: Path | None = None) -> dict[str, Any]:
    """Everything on a fresh lab (stopped at the end); the figures as a dict."""
    if records < 1:
        raise ValueError(f"records must be >= 1, got {records}")
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="kasten-bp-bench-replay-")) if own else workdir
    assert work is not None
    results: dict[str, Any] = {"records": records, "partitions": PARTITIONS, "notes": []}
    kcat, kcat_note = ensure_kcat()
    gnu_time, time_note = ensure_gnu_time()
    results["notes"] += [f"kcat: {kcat_note}", f"GNU time: {time_note}"]
    lab = Lab(work / "lab")
    try:
        log(f"starting a lab with a target cluster in {lab.workdir}")
        info, up_seconds = timed(lambda: lab.up(primary_brokers=1, mirror_brokers=1, targets=1))
        log(f"lab up in {up_seconds:.1f}s")
        target = str(info["targets"][0]["bootstrap"])
        config = load_config(lab.config_path)
        backups = Backups(config)

        log(f"producing {records} records (~1 KiB, {PARTITIONS} partitions) to {TOPIC}")
        admin.create_topic(config.primary.bootstrap, TOPIC, PARTITIONS)
        produced, load_seconds = timed(
            lambda: producing.produce(config.primary.bootstrap, load_records(records))
        )
        results["load"] = {"produced": produced, "seconds": round(load_seconds, 2)}
        wait_mirrored(config, records, timeout=max(300, records / 2000))
        log("consistent backup")
        summary, manifest, _ = take_backup(backups)
        log(f"restoring {summary['backup_id']}")
        restored = restore(backups, manifest)
        source_topic = manifest.partitions[0].topic  # the topic's name on the mirror
        stored = topic_records(restored, source_topic)
        results["backup_id"] = summary["backup_id"]
        results["restored_records"] = stored

        log("kasten-bp replay of the whole topic")
        results["replay"] = replay(
            gnu_time, lab.config_path, summary["backup_id"], restored, target, work
        )
        if kcat is not None:
            log("kcat -C | kcat -P of the same partitions")
            results["kcat"] = kcat_pipe(kcat, gnu_time, restored, source_topic, target, work)
            if results["kcat"]["records"] != stored:
                results["notes"].append(
                    f"kcat copied {results['kcat']['records']} records of {stored}"
                )
        if isinstance(backups.platform, LocalPlatform):
            backups.platform.stop_restored(summary["backup_id"])
    finally:
        log("stopping the lab")
        try:
            lab.down()
        except Exception as exc:  # noqa: BLE001 - report, keep cleaning up
            log(f"lab down failed: {exc}")
        if own:
            shutil.rmtree(work, ignore_errors=True)
    kc = results.get("kcat", {})
    results["ratios"] = {
        "replay_vs_kcat": ratio(
            results["replay"]["records_per_second"], kc.get("records_per_second")
        ),
        "replay_copy_phase_vs_kcat": ratio(
            results["replay"]["copy_records_per_second"], kc.get("records_per_second")
        ),
    }
    return results


def render(result: dict[str, Any]) -> str:
    r, k = result["replay"], result.get("kcat")
    lines = [
        f"replay bench: {result['records']} records, {result['partitions']} partitions "
        f"(restored {result.get('restored_records')})",
        f"  kasten-bp replay   {r['records_per_second']:>10.0f} records/s  "
        f"({r['records']} in {r['seconds']}s, {r['status']}, proof {r['proof']}), "
        f"peak RSS {r['peak_rss_mib']} MiB",
        f"    copy phase       {r['copy_records_per_second'] or 0:>10.0f} records/s  "
        f"({r['copy_seconds']}s; proof {r['proof_seconds']}s; producers {r['producers']})",
    ]
    if k is not None:
        lines.append(
            f"  kcat -C | kcat -P  {k['records_per_second']:>10.0f} records/s  "
            f"({k['records']} in {k['seconds']}s, {k['processes']} processes), peak RSS "
            f"{k['peak_rss_mib_largest']} MiB largest, {k['peak_rss_mib_sum']} MiB all"
        )
    ratios = result["ratios"]
    lines.append(
        f"  ratio replay/kcat: {ratios['replay_vs_kcat']} whole process, "
        f"{ratios['replay_copy_phase_vs_kcat']} copy phase (aim >= 1.0)"
    )
    lines += [f"  note: {n}" for n in result["notes"]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    parser.add_argument("--output", "-o", choices=("text", "json"), default="text")
    args = parser.parse_args()
    if args.records < 1:
        parser.error("--records must be >= 1")
    try:
        result = run(args.records, args.workdir.resolve() if args.workdir else None)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, the lab is already down
        log(f"failed: {type(exc).__name__}: {exc}")
        return 1
    print(json.dumps(result, indent=2) if args.output == "json" else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
