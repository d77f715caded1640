"""`verify --deep` against kcat, measured fairly (a section of `make bench`).

Both sides are whole processes timed by `/usr/bin/time -v` (wall, CPU), with peak RSS
summed over each process tree, run in alternation after one warm-up each, median of
`repeats` runs:
- `kasten-bp verify BACKUP --deep -o json`: reads every record of the restored cluster and
  of the primary and compares them; its rate is records verified per second. Measured as
  run by default and with `--workers 2` (partitions compared in two processes).
- one `kcat -C -b RESTORED -t TOPIC -o beginning -e` process reading every partition of the
  same topic on the same restored cluster, its output to /dev/null; its rate is records
  read per second.
- `scripts/read_floor.py`: verify's own reader over both clusters with nothing compared,
  the floor of a verify built on confluent-kafka here; its share of verify's wall time
  says how much of verify is reading (the rest: the comparison, and verify's CLI start-up
  and head-window pass, which the floor does not do).
- `scripts/consume_ceiling.py`: confluent-kafka's batch `consume()` with nothing done with
  the records, on the restored cluster alone (against kcat there) and on both clusters at
  once, one process each: the most any verify on this client could reach.
The topic holds `records` records of ~1 KiB in 6 partitions, backed up consistently and
restored on the lab this section is given.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kasten_bp.kafka import admin, producing
from kasten_bp.records import Record

TOPIC = "deep"
PARTITIONS = 6
VALUE_BYTES = 1000


def records(count: int, seed: int = 11) -> Iterator[Record]:
    """~1 KiB records: a key, random bytes (`randbytes`, fast enough for millions), and
    headers on every third."""
    rnd = random.Random(seed)
    for i in range(count):
        headers: tuple[tuple[str, bytes | None], ...] = ()
        if i % 3 == 0:
            headers = (("seq", str(i).encode()),)
        yield Record(
            TOPIC, -1, -1, 0, f"key-{i % 10_000}".encode(), rnd.randbytes(VALUE_BYTES), headers
        )


def load(bootstrap: str, count: int) -> None:
    admin.create_topic(bootstrap, TOPIC, PARTITIONS)
    producing.produce(bootstrap, records(count), {"linger.ms": 50, "batch.size": 1_000_000})


def ensure_gnu_time() -> str | None:
    """/usr/bin/time (GNU time, for -v's peak RSS), installed with apt-get as root."""
    if Path("/usr/bin/time").exists():
        return "/usr/bin/time"
    if shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "time"], capture_output=True)
    return "/usr/bin/time" if Path("/usr/bin/time").exists() else None


_FIELDS = {
    "wall": re.compile(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)"),
    "user": re.compile(r"User time \(seconds\): (\S+)"),
    "system": re.compile(r"System time \(seconds\): (\S+)"),
    "rss_kib": re.compile(r"Maximum resident set size \(kbytes\): (\d+)"),
}


def _seconds(clock: str) -> float:
    total = 0.0
    for part in clock.split(":"):
        total = total * 60 + float(part)
    return total


def tree_rss_kib(root: int) -> int:
    """Resident memory of `root`'s descendants, summed (GNU time's peak is the largest
    single process's, which understates a verify that runs worker processes)."""
    total, frontier = 0, [root]
    while frontier:
        pid = frontier.pop()
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                frontier += [int(c) for c in (task / "children").read_text().split()]
            if pid != root:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue  # exited while we looked
    return total


def timed_process(time_bin: str, argv: list[str], keep_stdout: bool = True) -> dict[str, Any]:
    """Run argv under `time -v`; its stdout (bytes; or sent to /dev/null, which costs the
    process nothing), wall and CPU seconds (its reaped children's included), and peak RSS
    summed over its processes (sampled every 50 ms)."""
    with (
        tempfile.TemporaryFile() as kept,
        open(os.devnull, "wb") as discarded,
        tempfile.TemporaryFile() as errors,
    ):
        out = kept if keep_stdout else discarded
        proc = subprocess.Popen([time_bin, "-v", *argv], stdout=out, stderr=errors)
        peak_tree = 0
        while True:
            try:
                proc.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                peak_tree = max(peak_tree, tree_rss_kib(proc.pid))
        kept.seek(0)
        errors.seek(0)
        stdout, err = kept.read(), errors.read().decode(errors="replace")
    found = {name: rx.search(err) for name, rx in _FIELDS.items()}
    if not all(found.values()):
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {err.strip()[-400:]}")
    largest = int(found["rss_kib"].group(1))  # type: ignore[union-attr]
    return {
        "returncode": proc.returncode,
        "stdout": stdout,
        "wall": _seconds(found["wall"].group(1)),  # type: ignore[union-attr]
        "cpu": float(found["user"].group(1)) + float(found["system"].group(1)),  # type: ignore[union-attr]
        "rss_mib": max(largest, peak_tree) / 1024,
    }


def run(
    config_path: Path,
    backup_id: str,
    primary: str,
    restored: str,
    kcat: str | None,
    expected: int,
    repeats: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    time_bin = ensure_gnu_time()
    if time_bin is None:
        return {"skipped": "GNU time (/usr/bin/time) not found and could not be installed"}
    # The partitions kcat reads, no others: `--topic` keeps the lab's other topics out.
    verify_argv = [sys.executable, "-m", "kasten_bp.cli", "verify", backup_id, "--deep"]
    verify_argv += ["--topic", TOPIC, "--config", str(config_path), "--output", "json"]
    # The default (one process per two CPUs) and, for the record, two worker processes.
    variants = {"verify": verify_argv, "verify_workers_2": [*verify_argv, "--workers", "2"]}
    kcats = {
        # The reference the issue names: the records of one cluster, read once.
        "kcat": [kcat or "kcat", "-C", "-b", restored, "-t", TOPIC, "-o", "beginning", "-e", "-q"],
        # The same work as verify's: the primary's records too (timed as its own process).
        "kcat_primary": [kcat or "kcat", "-C", "-b", primary, "-t", TOPIC, "-o", "beginning"]
        + ["-e", "-q"],
    }
    # The floor: verify's own reader over both clusters, nothing compared.
    floor_argv = [sys.executable, str(Path(__file__).with_name("read_floor.py"))]
    floor_argv += [primary, restored, TOPIC]
    # The ceiling: confluent-kafka's consume() alone, nothing done with the records; on the
    # restored cluster (against kcat there), and on both clusters at once in two processes.
    ceiling = [sys.executable, str(Path(__file__).with_name("consume_ceiling.py")), TOPIC]
    ceilings = {"ceiling_one": [restored], "ceiling_both": [primary, restored]}
    names = [*variants, "read_floor", *ceilings, *kcats]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    compared = 0
    for i in range(repeats + 1):  # the first round warms both up and is not counted
        log(f"deep verify vs kcat, round {i + 1} of {repeats + 1}")
        for name, argv in variants.items():
            v = timed_process(time_bin, argv)
            report = json.loads(v.pop("stdout"))
            if v["returncode"] != 0 or report["verdict"] != "consistent":
                raise RuntimeError(f"{name} --deep: exit {v['returncode']}, {report['verdict']}")
            compared = sum(p["records_compared"] for p in report["partitions"])
            if i:
                runs[name].append(v)
        f = timed_process(time_bin, floor_argv)
        if f["returncode"] != 0 or int(f.pop("stdout")) != 2 * expected:
            raise RuntimeError(f"read_floor.py: exit {f['returncode']}, not {2 * expected} read")
        if i:
            runs["read_floor"].append(f)
        for name, clusters in ceilings.items():
            c = timed_process(time_bin, [*ceiling, *clusters])
            if c["returncode"] != 0 or int(c.pop("stdout")) != len(clusters) * expected:
                raise RuntimeError(
                    f"{name}: exit {c['returncode']}, not {len(clusters) * expected} read"
                )
            if i:
                runs[name].append(c)
        for name, argv in kcats.items() if kcat is not None else ():
            k = timed_process(time_bin, argv, keep_stdout=False)
            k.pop("stdout")
            if k["returncode"] != 0:
                raise RuntimeError(f"{name} exited {k['returncode']}")
            if i:
                runs[name].append(k)
    out: dict[str, Any] = {"records": expected, "compared": compared, "repeats": repeats}
    counted = {name: compared for name in variants} | {name: expected for name in kcats}
    counted["read_floor"] = 2 * expected  # records read, both clusters
    counted |= {name: len(clusters) * expected for name, clusters in ceilings.items()}
    for name, measured in runs.items():
        if not measured:
            continue
        wall = statistics.median(r["wall"] for r in measured)
        count = counted[name]
        out[name] = {
            "wall_seconds": round(wall, 3),
            "cpu_seconds": round(statistics.median(r["cpu"] for r in measured), 3),
            "peak_rss_mib": round(max(r["rss_mib"] for r in measured), 1),
            "records_per_second": round(count / wall, 1) if wall else None,
            "walls": [round(r["wall"], 3) for r in measured],
        }
    # Of verify's wall time, the share its reads alone take. The rest is not only the
    # comparison: verify's CLI start-up and its head-window pass are in it too.
    out["read_share"] = round(out["read_floor"]["wall_seconds"] / out["verify"]["wall_seconds"], 3)
    if "kcat" in out:
        for name in variants:
            key = "ratio" if name == "verify" else f"ratio_{name}"
            out[key] = round(out[name]["records_per_second"] / out["kcat"]["records_per_second"], 3)
        # Same work: both clusters' records read, by verify in one process and by kcat in
        # two (one per cluster, one after the other): records read per second of each.
        both = out["kcat"]["wall_seconds"] + out["kcat_primary"]["wall_seconds"]
        out["kcat_both_records_per_second"] = round(2 * expected / both, 1)
        out["ratio_same_work"] = round(
            out["verify"]["records_per_second"] * 2 / out["kcat_both_records_per_second"], 3
        )
        # What confluent-kafka alone reaches against kcat: reading one cluster, and the
        # records/s a verify could reach at best (both clusters read at once, halved).
        kcat_rate = out["kcat"]["records_per_second"]
        verified = out["ceiling_both"]["records_per_second"] / 2
        out["ceiling_verified_per_second"] = round(verified, 1)
        out["ratio_ceiling_one"] = round(out["ceiling_one"]["records_per_second"] / kcat_rate, 3)
        out["ratio_ceiling_verify"] = round(verified / kcat_rate, 3)
    return out


def render(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"deep verify vs kcat: skipped ({r['skipped']})"
    v = r["verify"]
    lines = [
        f"deep verify vs kcat ({r['records']:,} records of ~1 KiB in {PARTITIONS} partitions, "
        f"whole processes, median of {r['repeats']}):",
        f"  verify --deep: {v['records_per_second']:,.0f} records verified/s, "
        f"{v['wall_seconds']}s wall, {v['cpu_seconds']}s CPU, "
        f"peak {v['peak_rss_mib']} MiB in all its processes "
        f"(runs {v['walls']}; {r['compared']:,} records compared)",
    ]
    if "verify_workers_2" in r:
        w = r["verify_workers_2"]
        lines.append(
            f"  verify --deep --workers 2: {w['records_per_second']:,.0f} records verified/s, "
            f"{w['wall_seconds']}s wall, {w['cpu_seconds']}s CPU, "
            f"peak {w['peak_rss_mib']} MiB in all its processes (runs {w['walls']}); "
            f"ratio to kcat {r.get('ratio_verify_workers_2')}"
        )
    f = r["read_floor"]
    lines.append(
        f"  its reads alone (scripts/read_floor.py: both clusters, nothing compared): "
        f"{f['records_per_second']:,.0f} records read/s, {f['wall_seconds']}s wall, "
        f"{f['cpu_seconds']}s CPU, peak {f['peak_rss_mib']} MiB (runs {f['walls']}); "
        f"{r['read_share']} of verify's wall time"
    )
    one, both = r["ceiling_one"], r["ceiling_both"]
    lines.append(
        f"  confluent-kafka's consume() alone (scripts/consume_ceiling.py, nothing done with "
        f"the records): restored cluster {one['records_per_second']:,.0f} records read/s, "
        f"{one['wall_seconds']}s wall, {one['cpu_seconds']}s CPU, peak {one['peak_rss_mib']} "
        f"MiB (runs {one['walls']}); both clusters at once, one process each "
        f"{both['records_per_second']:,.0f} records read/s, {both['wall_seconds']}s wall, "
        f"{both['cpu_seconds']}s CPU (runs {both['walls']})"
    )
    if "kcat" in r:
        k = r["kcat"]
        lines.append(
            f"  kcat (one process): {k['records_per_second']:,.0f} records read/s, "
            f"{k['wall_seconds']}s wall, {k['cpu_seconds']}s CPU, peak {k['peak_rss_mib']} MiB "
            f"(runs {k['walls']})"
        )
        lines.append(f"  ratio verified/s to kcat read/s: {r['ratio']}")
        p = r["kcat_primary"]
        lines.append(
            f"  same work (both clusters read): kcat on the primary {p['wall_seconds']}s wall "
            f"(runs {p['walls']}); kcat on both {r['kcat_both_records_per_second']:,.0f} "
            f"records read/s, verify --deep {2 * v['records_per_second']:,.0f}; ratio "
            f"{r['ratio_same_work']}"
        )
        lines.append(
            f"  ceiling on this client: consume() alone on one cluster is "
            f"{r['ratio_ceiling_one']} of kcat; a verify reading both clusters at that rate "
            f"would verify at most {r['ratio_ceiling_verify']} of kcat's read rate"
        )
    return "\n".join(lines)


def profile(argv: list[str], out: Path, top: int = 20) -> str:
    """`py-spy record --native` of argv (its subprocesses too), as collapsed stacks in
    `out`; returned: the frames with the most samples on top of the stack (self) and
    anywhere in it (total), as shares of all samples."""
    spy = shutil.which("py-spy")
    if spy is None:
        return "profile: py-spy not on PATH (pip install py-spy)"
    record = [spy, "record", "--native", "--subprocesses", "--rate", "250", "--format", "raw"]
    subprocess.run([*record, "--output", str(out), "--", *argv], check=True, capture_output=True)
    own: dict[str, int] = {}
    anywhere: dict[str, int] = {}
    samples = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f.split(" (")[0] for f in stack.split(";")]
        n = int(count)
        samples += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            anywhere[frame] = anywhere.get(frame, 0) + n
    lines = [f"profile of verify --deep: {samples} samples at 250/s (py-spy --native)"]
    lines.append("  self  total  frame")
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {n / samples:5.1%} {anywhere[frame] / samples:6.1%}  {frame}")
    return "\n".join(lines)


def main() -> int:
    """Standalone, for memory at scale: one `verify --deep` at --records (default 10 M) on a
    lab of one primary and one mirror broker (the bench's 3-broker mirror would need three
    times the disk: the mirror, its snapshot and the restored copy each hold every record).
    Prints its rate, CPU and peak RSS; the lab is stopped and its directory removed."""
    import argparse

    from bench import log, restore, take_backup, wait_mirrored

    from kasten_bp.backup import Backups
    from kasten_bp.config import load_config
    from kasten_bp.lab.lab import Lab

    parser = argparse.ArgumentParser(description="verify --deep at scale: rate and peak RSS")
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    parser.add_argument("--workers", type=int, help="verify --deep --workers (default: its own)")
    parser.add_argument(
        "--profile",
        type=Path,
        help="then profile one more verify with py-spy (on PATH) into this file (raw stacks) "
        "and print its top frames",
    )
    args = parser.parse_args()
    time_bin = ensure_gnu_time()
    if time_bin is None:
        print("error: GNU time (/usr/bin/time) not found", file=sys.stderr)
        return 2
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kasten-bp-bench-deep-"))
    lab = Lab(work / "lab")
    try:
        log(f"starting a lab (1 primary, 1 mirror broker) in {lab.workdir}")
        lab.up(primary_brokers=1, mirror_brokers=1)
        config = load_config(lab.config_path)
        backups = Backups(config)
        log(f"producing {args.records:,} records of ~1 KiB to {TOPIC}")
        load(config.primary.bootstrap, args.records)
        wait_mirrored(config, args.records, timeout=max(600, args.records / 2000), topic=TOPIC)
        log("consistent backup")
        summary, manifest, _ = take_backup(backups)
        log(f"restoring {summary['backup_id']}")
        restore(backups, manifest)
        log("verify --deep under /usr/bin/time -v")
        argv = [sys.executable, "-m", "kasten_bp.cli", "verify", summary["backup_id"]]
        argv += ["--deep", "--topic", TOPIC, "--config", str(lab.config_path), "--output", "json"]
        if args.workers is not None:
            argv += ["--workers", str(args.workers)]
        measured = timed_process(time_bin, argv)
        report = json.loads(measured.pop("stdout"))
        compared = sum(p["records_compared"] for p in report["partitions"])
        print(
            f"verify --deep of {args.records:,} records: {report['verdict']} (exit "
            f"{measured['returncode']}), {compared:,} records compared in "
            f"{measured['wall']:.1f}s wall ({compared / measured['wall']:,.0f}/s), "
            f"{measured['cpu']:.1f}s CPU, peak RSS {measured['rss_mib']:.1f} MiB in all its "
            f"processes ({args.workers or 'default'} workers)"
        )
        if args.profile is not None:
            log(f"verify --deep again under py-spy (native frames) into {args.profile}")
            print(profile(argv, args.profile))
        return 0 if measured["returncode"] == 0 else 1
    finally:
        log("stopping the lab")
        lab.down()
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
