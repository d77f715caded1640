#!/usr/bin/env python3
"""`make bench`: ratios measured in one run, on a fresh embedded lab this script starts
under a temporary directory and stops at the end.

1. Mirror downtime of a consistent backup (the summary's `mirror_unavailable_seconds`:
   brokers stopped -> serving again), and MM2's (`downtime_seconds`), each the median of
   --repeats backups taken in alternation with the bare operations done directly: stop the
   mirror's brokers, `cp -a` their log dirs, start them, wait until every partition has a
   leader and a full ISR.
2. Whether the backup wrote anything to the primary: the sum of the primary's end offsets
   over every topic (internal ones included) before and after the backup, with no producer
   running. Must be 0.
3. `verify --deep` against kcat (scripts/bench_deep.py): --deep-records (default 1,000,000)
   records of ~1 KiB in 6 partitions, backed up and restored; both timed as whole processes
   in alternation (median of --repeats; wall and CPU from /usr/bin/time -v, peak RSS summed
   over the process tree): records verified/s against the records/s one kcat process
   reads from the same restored topic (also with `--workers 2`), the floor: verify's
   reader over both clusters, nothing compared (scripts/read_floor.py), and the ceiling:
   confluent-kafka's consume() alone (scripts/consume_ceiling.py).
4. Head-window verify (the default, not deep) at 1x and 10x the data, in this process,
   median of --repeats after one warm-up: its cost should grow with partitions, not bytes,
   so the ratio should be near 1.
5. Consumer groups (scripts/bench_groups.py): `groups plan` for 200 groups x 30 partitions
   against the head-window verify of the same partitions (alternating, after a warm-up
   round), and the group offsets a backup writes to the primary (must be 0).
6. A backup under MM2 backlog (scripts/bench_backlog.py): --backlog-records loaded while
   MM2 is paused, the backup started as it resumes; its mirror-unavailable and MM2-stopped
   seconds against a bare stop + cp -a + start measured right after it.

Absolute times depend on the machine (and whatever else runs on it); the ratios are
measured in one run on the same lab, so they compare like with like.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import bench_backlog
import bench_deep  # scripts/ is on sys.path when this file runs as a script
import bench_groups
from confluent_kafka import TopicPartition

from kasten_bp.backup import Backups
from kasten_bp.catalog.base import backup_key
from kasten_bp.config import Config, load_config
from kasten_bp.consistency.core.report import VerifyReport
from kasten_bp.consistency.verify import verify
from kasten_bp.kafka import admin, clients
from kasten_bp.lab import kraft
from kasten_bp.lab.lab import Lab
from kasten_bp.lab.load import LoadSpec, run_load
from kasten_bp.manifest import Manifest, parse_manifest
from kasten_bp.platforms.local import LocalPlatform
from kasten_bp.waiting import add_progress_listener, wait_for

T = TypeVar("T")

TOPIC = "bench"
PARTITIONS = 3
READER_GROUP = "kasten-bp-reader"  # the group.id of kasten-bp's consumers (kafka/clients.py)
STARTED = time.perf_counter()


class BenchTimeout(Exception):
    pass


def log(message: str) -> None:
    print(f"[bench {time.perf_counter() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def timed(body: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = body()
    return result, time.perf_counter() - start


# --- kcat -----------------------------------------------------------------------------


def ensure_kcat() -> tuple[str | None, str]:
    """The kcat binary, installing the Debian package when running as root."""
    found = shutil.which("kcat")
    if found:
        return found, "found"
    if os.geteuid() != 0:
        return None, (
            "kcat not found and not running as root: install it with "
            "`sudo apt-get install -y kcat` and run `make bench` again"
        )
    if shutil.which("apt-get") is None:
        return None, "kcat not found and apt-get is not available: install kcat by hand"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in (["apt-get", "install", "-y", "-q", "kcat"], None):
        if attempt is None:
            log("apt-get install kcat failed; running apt-get update and trying again")
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=300)
            attempt = ["apt-get", "install", "-y", "-q", "kcat"]
        log("installing kcat: " + " ".join(attempt))
        result = subprocess.run(attempt, env=env, capture_output=True, text=True, timeout=300)
        if result.returncode == 0 and shutil.which("kcat"):
            return shutil.which("kcat"), "installed with apt-get"
        last = (result.stderr or result.stdout).strip().splitlines()
        reason = last[-1] if last else f"exit {result.returncode}"
    return None, f"kcat could not be installed with apt-get: {reason}"


# --- cluster helpers ------------------------------------------------------------------


def end_offsets_by_topic(bootstrap: str) -> dict[str, int]:
    """Topic (internal ones included) -> sum of its partitions' end offsets."""
    topics = admin.topics(bootstrap)
    keys = [(t, p) for t, n in topics.items() for p in range(n)]
    marks = admin.watermarks(bootstrap, keys)
    out = {t: 0 for t in topics}
    for (topic, _), (_, high) in marks.items():
        out[topic] += high
    return out


def reader_group_committed(bootstrap: str) -> dict[tuple[str, int], int]:
    """Offsets kasten-bp's consumer group has committed on `bootstrap` (must be none).

    Asked through a consumer of that group, not AdminClient.list_consumer_group_offsets:
    the latter segfaults in librdkafka 2.16 when the coordinator answers NOT_COORDINATOR
    for a group it has not seen (librdkafka#5040)."""

    def fetch() -> dict[tuple[str, int], int]:
        topics = admin.topics(bootstrap)
        wanted = [TopicPartition(t, p) for t, n in topics.items() for p in range(n)]
        consumer = clients.consumer(bootstrap)
        try:
            committed = consumer.committed(wanted, timeout=30)
        finally:
            consumer.close()
        return {(tp.topic, tp.partition): tp.offset for tp in committed if tp.offset >= 0}

    # NOT_COORDINATOR while the group coordinator loads: retried until the deadline.
    return wait_for(f"committed offsets of group {READER_GROUP} on {bootstrap}", fetch, 60)


def mirror_records(config: Config, primary_topic: str) -> int:
    topic = config.replication.mirror_topic(primary_topic)
    count = admin.topics(config.mirror.bootstrap).get(topic, 0)
    marks = admin.watermarks(config.mirror.bootstrap, [(topic, p) for p in range(count)])
    return sum(high - low for low, high in marks.values())


def wait_mirrored(config: Config, expected: int, timeout: float, topic: str = TOPIC) -> None:
    wait_for(
        f"the mirror to hold all {expected} records of {topic}",
        lambda: mirror_records(config, topic) >= expected,
        timeout,
        max_interval=1.0,
    )


def load(config: Config, records: int, seed: int) -> dict[str, Any]:
    spec = LoadSpec(topic=TOPIC, records=records, partitions=PARTITIONS, seed=seed)
    return run_load(config.primary.bootstrap, spec)


def manifest_of(backups: Backups, backup_id: str) -> Manifest:
    data = backups.catalog.read_json(backup_key(backup_id, "manifest.json"))
    if data is None:
        raise RuntimeError(f"backup {backup_id} has no manifest")
    return parse_manifest(data, f"of backup {backup_id}")


def take_backup(backups: Backups) -> tuple[dict[str, Any], Manifest, float]:
    summary, seconds = timed(lambda: backups.backup("consistent"))
    if summary["status"] != "COMPLETED":
        raise RuntimeError(f"backup ended {summary['status']}: {summary.get('error')}")
    return summary, manifest_of(backups, summary["backup_id"]), seconds


def backup_figures(summary: dict[str, Any], seconds: float) -> dict[str, Any]:
    return {
        "backup_id": summary["backup_id"],
        "seconds": round(seconds, 3),
        "mm2_stopped_seconds": summary["downtime_seconds"],
        "mirror_unavailable_seconds": summary["mirror_unavailable_seconds"],
        "steps": {s["name"]: s["seconds"] for s in summary["steps"]},
    }


def restore(backups: Backups, manifest: Manifest) -> str:
    info = backups.platform.restore(manifest, 300)
    return str(info["bootstrap"])


def median_verify(
    config: Config, manifest: Manifest, bootstrap: str, repeats: int
) -> tuple[float, list[float], VerifyReport]:
    times = []
    report: VerifyReport | None = None
    for i in range(repeats + 1):  # the first warms up (pooled consumers) and is not counted
        report, seconds = timed(
            lambda: verify(config.primary.bootstrap, manifest, bootstrap, deep=False)
        )
        if i:
            times.append(seconds)
    assert report is not None
    return statistics.median(times), times, report


def bare_stop_copy_start(lab: Lab, backups: Backups, target: Path) -> float:
    """Stop the mirror's brokers, `cp -a` their log dirs, start them, wait healthy: timed.
    MM2 is stopped around it (not timed), as in the backup, so its tasks do not fail."""
    mirror = lab.require_state().mirror
    mm2 = backups.platform.mirrormaker
    states = mm2.connector_states()
    mm2.stop(list(states), timeout=120)
    try:
        start = time.perf_counter()
        kraft.stop_brokers(mirror.brokers, timeout=90)
        for broker in mirror.brokers:
            if broker.handle.alive():
                raise RuntimeError(f"mirror broker {broker.id} did not stop")
        target.mkdir(parents=True, exist_ok=True)
        for broker in mirror.brokers:
            subprocess.run(
                ["cp", "-a", broker.log_dir, str(target / f"broker-{broker.id}")],
                check=True,
                timeout=600,
            )
        for broker in mirror.brokers:
            kraft.start_broker(mirror, broker)
        deadline = time.monotonic() + 180
        while True:
            try:
                if kraft.brokers_listening(mirror) and admin.all_partitions_healthy(
                    mirror.bootstrap, len(mirror.brokers)
                ):
                    break
            except Exception:  # noqa: BLE001 - not serving yet
                pass
            if time.monotonic() > deadline:
                raise BenchTimeout("mirror brokers not healthy 180s after the bare restart")
            time.sleep(0.1)
        return time.perf_counter() - start
    finally:
        mm2.restore(states, timeout=180)
        shutil.rmtree(target, ignore_errors=True)


# --- the run --------------------------------------------------------------------------


def seal_rate(backup: dict[str, Any]) -> float | None:
    seconds = backup["steps"].get("seal_content")
    if not seconds or not backup.get("records_sealed"):
        return None
    return float(backup["records_sealed"]) / float(seconds)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def run(
    workdir: Path,
    records: int,
    scale: int,
    repeats: int,
    deep_records: int,
    backlog_records: int = 200_000,
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "records": records,
        "scale": scale,
        "backlog_records": backlog_records,
        "notes": [],
    }
    notes: list[str] = results["notes"]
    kcat, kcat_note = ensure_kcat()
    if kcat is None:
        log(kcat_note)
    notes.append(f"kcat: {kcat_note}")

    lab = Lab(workdir / "lab")
    log(f"starting a fresh lab in {lab.workdir}")
    try:
        _, up_seconds = timed(lambda: lab.up(primary_brokers=1, mirror_brokers=3))
        log(f"lab up in {up_seconds:.1f}s")
        config = load_config(lab.config_path)
        backups = Backups(config)

        log(f"producing {records} records (~1 KiB average) to {TOPIC}")
        loaded = load(config, records, seed=7)
        results["load_1x"] = loaded
        wait_mirrored(config, records, timeout=300)

        # (2) writes to the primary, around the first backup; no producer runs.
        before = end_offsets_by_topic(config.primary.bootstrap)

        # (1a) the tool's consistent backup.
        log("consistent backup (1x)")
        summary1, manifest1, backup_seconds = take_backup(backups)
        after = end_offsets_by_topic(config.primary.bootstrap)
        # After `after`: asking for the group's offsets may itself create __consumer_offsets.
        groups_after = reader_group_committed(config.primary.bootstrap)
        deltas = {
            t: after.get(t, 0) - before.get(t, 0)
            for t in sorted(set(before) | set(after))
            if after.get(t, 0) != before.get(t, 0)
        }
        results["primary_writes"] = {
            "total": sum(after.values()) - sum(before.values()),
            "sum_before": sum(before.values()),
            "sum_after": sum(after.values()),
            "changed_topics": deltas,
            "new_topics": sorted(set(after) - set(before)),
            "topics_checked": sorted(after),
            "reader_group_committed_after": len(groups_after),
        }
        if groups_after:
            notes.append(
                f"group {READER_GROUP} has committed offsets on the primary: {groups_after}"
            )
        results["backup_1x"] = backup_figures(summary1, backup_seconds)

        # (1b) the bare operations on the same brokers.
        log("bare stop + cp -a + start of the mirror brokers")
        bare = bare_stop_copy_start(lab, backups, workdir / "bare-copy")
        # (1c) more rounds of both, in alternation: one of each varies by about 10 %.
        rounds = [(summary1, bare)]
        for i in range(1, repeats):
            log(f"downtime round {i + 1} of {repeats}: consistent backup, then bare")
            summary, _, _ = take_backup(backups)
            rounds.append((summary, bare_stop_copy_start(lab, backups, workdir / "bare-copy")))
        results["downtime_rounds"] = [
            {
                "mirror_unavailable_seconds": s["mirror_unavailable_seconds"],
                "mm2_stopped_seconds": s["downtime_seconds"],
                "bare_seconds": round(b, 3),
            }
            for s, b in rounds
        ]
        results["downtime_median"] = {
            name: round(statistics.median(r[name] for r in results["downtime_rounds"]), 3)
            for name in results["downtime_rounds"][0]
        }
        results["bare_stop_copy_start_seconds"] = results["downtime_median"]["bare_seconds"]

        # (3) and (4 at 1x) on the restored cluster of the first backup.
        log(f"restoring {summary1['backup_id']}")
        restored1 = restore(backups, manifest1)
        head1, head1_all, report1 = median_verify(config, manifest1, restored1, repeats)
        results["head_verify_1x"] = {
            "median_seconds": round(head1, 4),
            "runs": [round(t, 4) for t in head1_all],
            "verdict": report1.verdict,
            "partitions": len(report1.partitions),
        }
        if isinstance(backups.platform, LocalPlatform):
            backups.platform.stop_restored(summary1["backup_id"])  # fewer JVMs for (4)

        # (4) 10x the data: produce 9x more, back up again, restore, head-window verify.
        more = records * (scale - 1)
        log(f"producing {more} more records ({scale}x in all)")
        results["load_more"] = load(config, more, seed=8)
        wait_mirrored(config, records * scale, timeout=900)
        log(f"consistent backup ({scale}x)")
        summary2, manifest2, backup2_seconds = take_backup(backups)
        results[f"backup_{scale}x"] = {
            "backup_id": summary2["backup_id"],
            "seconds": round(backup2_seconds, 3),
            "mirror_unavailable_seconds": summary2["mirror_unavailable_seconds"],
        }
        log(f"restoring {summary2['backup_id']}")
        restored2 = restore(backups, manifest2)
        head10, head10_all, report10 = median_verify(config, manifest2, restored2, repeats)
        results[f"head_verify_{scale}x"] = {
            "median_seconds": round(head10, 4),
            "runs": [round(t, 4) for t in head10_all],
            "verdict": report10.verdict,
            "partitions": len(report10.partitions),
            "restored_records": sum(
                (p.restored_end_offset or 0) - (p.restored_log_start_offset or 0)
                for p in report10.partitions
            ),
        }
        if isinstance(backups.platform, LocalPlatform):
            backups.platform.stop_restored(summary2["backup_id"])

        # (3) deep verify against kcat, on a backup of ~1 KiB records.
        log(f"producing {deep_records:,} records of ~1 KiB to {bench_deep.TOPIC}")
        bench_deep.load(config.primary.bootstrap, deep_records)
        wait_mirrored(config, deep_records, timeout=1800, topic=bench_deep.TOPIC)
        log("consistent backup (deep)")
        summary3, manifest3, backup3_seconds = take_backup(backups)
        results["backup_deep"] = backup_figures(summary3, backup3_seconds)
        sealed = manifest_of(backups, summary3["backup_id"]).partitions
        results["backup_deep"]["records_sealed"] = sum(
            h.content_seal.records for h in sealed if h.content_seal and h.content_seal.sealed
        )
        log(f"restoring {summary3['backup_id']}")
        restored3 = restore(backups, manifest3)
        results["deep_verify"] = bench_deep.run(
            lab.config_path,
            summary3["backup_id"],
            config.primary.bootstrap,
            restored3,
            kcat,
            deep_records,
            repeats,
            log,
        )
        if isinstance(backups.platform, LocalPlatform):
            backups.platform.stop_restored(summary3["backup_id"])

        # (5) consumer groups.
        results["groups"] = bench_groups.run(
            config,
            backups,
            take_backup,
            restore,
            lambda n: wait_mirrored(config, n, timeout=300, topic=bench_groups.TOPIC),
            repeats,
            log,
        )

        # (6) a backup under MM2 backlog, last: its topic stays out of the figures above.
        results["backlog"] = bench_backlog.run(
            lab,
            config,
            backups,
            backlog_records,
            take_backup,
            lambda: bare_stop_copy_start(lab, backups, workdir / "bare-copy"),
            log,
        )
    finally:
        log("stopping the lab")
        try:
            lab.down()
        except Exception as exc:  # noqa: BLE001 - report, keep cleaning up
            log(f"lab down failed: {exc}")

    results["ratios"] = {
        "mirror_unavailable_vs_bare": ratio(
            results["downtime_median"]["mirror_unavailable_seconds"],
            results["downtime_median"]["bare_seconds"],
        ),
        "mm2_stopped_vs_bare": ratio(
            results["downtime_median"]["mm2_stopped_seconds"],
            results["downtime_median"]["bare_seconds"],
        ),
        "deep_verify_vs_kcat_records_per_second": results["deep_verify"].get("ratio"),
        # Sealing's time per record over kcat's reading the same kind of records once (aim
        # <= 1.2): records sealed/s against kcat's records read/s, inverted.
        "seal_vs_kcat_time_per_record": ratio(
            (results["deep_verify"].get("kcat") or {}).get("records_per_second"),
            seal_rate(results["backup_deep"]),
        ),
        "deep_verify_ceiling_vs_kcat": results["deep_verify"].get("ratio_ceiling_verify"),
        f"head_verify_{scale}x_vs_1x": ratio(head10, head1),
        "backlog_mirror_unavailable_vs_bare": ratio(
            results["backlog"]["mirror_unavailable_seconds"], results["backlog"]["bare_seconds"]
        ),
        "backlog_mm2_stopped_vs_bare": ratio(
            results["backlog"]["mm2_stopped_seconds"], results["backlog"]["bare_seconds"]
        ),
    }
    writes = results["primary_writes"]
    if writes["total"] != 0:
        notes.append(f"the backup wrote to the primary: {writes['changed_topics']}")
    elif writes["new_topics"]:
        notes.append(
            f"topics created on the primary during the backup, with no records: "
            f"{writes['new_topics']} (librdkafka's coordinator lookup for the group.id of "
            "kasten-bp's read-only consumers auto-creates __consumer_offsets)"
        )
    for name in ("head_verify_1x", f"head_verify_{scale}x"):
        if results[name]["verdict"] != "consistent":
            notes.append(f"{name}: verdict {results[name]['verdict']}")
    return results


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render(r: dict[str, Any]) -> str:
    scale = r["scale"]
    ratios = r["ratios"]
    b1 = r["backup_1x"]
    med = r["downtime_median"]
    rows = [
        (
            "mirror unavailable, consistent backup (s)",
            _f(med["mirror_unavailable_seconds"]),
            f"bare stop+cp -a+start {_f(med['bare_seconds'])}",
            _f(ratios["mirror_unavailable_vs_bare"]),
        ),
        (
            "primary writes during backup (records)",
            _f(r["primary_writes"]["total"]),
            "must be 0",
            "-",
        ),
        (
            "MM2 stopped, consistent backup (s)",
            _f(med["mm2_stopped_seconds"]),
            f"bare stop+cp -a+start {_f(med['bare_seconds'])}",
            _f(ratios["mm2_stopped_vs_bare"]),
        ),
        (
            "mirror unavailable, backup under MM2 backlog (s)",
            _f(r["backlog"]["mirror_unavailable_seconds"]),
            f"bare stop+cp -a+start {_f(r['backlog']['bare_seconds'])}",
            _f(ratios["backlog_mirror_unavailable_vs_bare"]),
        ),
        (
            "MM2 stopped, backup under MM2 backlog (s)",
            _f(r["backlog"]["mm2_stopped_seconds"]),
            f"bare stop+cp -a+start {_f(r['backlog']['bare_seconds'])}",
            _f(ratios["backlog_mm2_stopped_vs_bare"]),
        ),
        (
            "verify --deep (records verified/s)",
            _f(r["deep_verify"].get("verify", {}).get("records_per_second"), 0),
            f"kcat read/s {_f(r['deep_verify'].get('kcat', {}).get('records_per_second'), 0)}",
            _f(ratios["deep_verify_vs_kcat_records_per_second"], 3),
        ),
        (
            "seal_content after a backup (records sealed/s)",
            _f(seal_rate(r["backup_deep"]), 0),
            f"kcat read/s {_f(r['deep_verify'].get('kcat', {}).get('records_per_second'), 0)}",
            _f(ratios["seal_vs_kcat_time_per_record"], 3) + " (time, aim <= 1.2)",
        ),
        (
            "  its ceiling on confluent-kafka (verified/s)",
            _f(r["deep_verify"].get("ceiling_verified_per_second"), 0),
            "consume() only, 2 clusters",
            _f(ratios["deep_verify_ceiling_vs_kcat"], 3),
        ),
        (
            f"head-window verify (s), {scale}x vs 1x data",
            _f(r[f"head_verify_{scale}x"]["median_seconds"], 3),
            f"1x {_f(r['head_verify_1x']['median_seconds'], 3)}",
            _f(ratios[f"head_verify_{scale}x_vs_1x"]),
        ),
    ]
    width = max(len(row[0]) for row in rows)
    lines = [
        f"kasten-bp bench: {r['records']:,} records (~1 KiB avg) in {PARTITIONS} partitions, "
        f"then {scale}x; mirror of 3 brokers",
        f"{'measure':<{width}}  {'kasten-bp':>12}  {'baseline':<28} {'ratio':>7}",
    ]
    for name, ours, base, rat in rows:
        lines.append(f"{name:<{width}}  {ours:>12}  {base:<28} {rat:>7}")
    lines.append("")
    lines.append(
        f"downtime, median of {len(r['downtime_rounds'])} rounds in alternation (mirror "
        "unavailable / MM2 stopped / bare, s): "
        + ", ".join(
            f"{_f(d['mirror_unavailable_seconds'])} / {_f(d['mm2_stopped_seconds'])} / "
            f"{_f(d['bare_seconds'])}"
            for d in r["downtime_rounds"]
        )
    )
    lines.append(
        f"first consistent backup: {_f(b1['seconds'])}s in all, MM2 stopped "
        f"{_f(b1['mm2_stopped_seconds'])}s; steps: "
        + ", ".join(f"{k} {_f(v, 1)}" for k, v in b1["steps"].items())
    )
    pw = r["primary_writes"]
    lines.append(f"primary writes during backup: {pw['total']}")
    lines.append(
        f"primary end offsets: {pw['sum_before']:,} before, {pw['sum_after']:,} after, over "
        f"{len(pw['topics_checked'])} topics ({', '.join(pw['topics_checked'])}); "
        f"group {READER_GROUP} committed offsets: {pw['reader_group_committed_after']}"
    )
    lines.append(bench_deep.render(r["deep_verify"]))
    bd = r["backup_deep"]
    lines.append(
        f"seal_content sealed {_f(bd.get('records_sealed'))} records in "
        f"{_f(bd['steps'].get('seal_content'))}s as a check after the mirror served again and "
        "MM2 resumed: it is in neither 'mirror unavailable' nor 'MM2 stopped'"
    )
    lines.append(
        f"consistent backup with {r['deep_verify']['records']:,} more records: mirror "
        f"unavailable {_f(bd['mirror_unavailable_seconds'])}s, MM2 stopped "
        f"{_f(bd['mm2_stopped_seconds'])}s; steps: "
        + ", ".join(f"{k} {_f(v, 1)}" for k, v in bd["steps"].items())
    )
    h1, h10 = r["head_verify_1x"], r[f"head_verify_{scale}x"]
    lines.append(
        f"head-window verify runs (s): 1x {h1['runs']} ({h1['verdict']}), "
        f"{scale}x {h10['runs']} ({h10['verdict']}, {h10['restored_records']:,} records)"
    )
    bl = r["backlog"]
    lines.append(
        f"backup under MM2 backlog ({_f(r.get('backlog_records', 0))} records loaded with MM2 "
        f"paused, backup at its resume): the cut ran {_f(bl['records_past_mm2_committed'])} "
        f"records past MM2's committed offsets on {bl['partitions_past_mm2_committed']} "
        "partitions; steps: " + ", ".join(f"{k} {_f(v, 1)}" for k, v in bl["steps"].items())
    )
    if "groups" in r:
        lines.append(bench_groups.render(r["groups"]))
    for note in r["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    def expire(signum: int, frame: FrameType | None) -> None:
        raise BenchTimeout(f"bench did not finish within {seconds}s")

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    old_alarm = signal.signal(signal.SIGALRM, expire)
    old_term = signal.signal(signal.SIGTERM, terminate)
    old_hup = signal.signal(signal.SIGHUP, terminate)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_alarm)
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGHUP, old_hup)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=20_000, help="records at 1x")
    parser.add_argument("--scale", type=int, default=10, help="data multiple for (4)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="measured runs of each verify, and downtime rounds"
    )
    parser.add_argument(
        "--deep-records", type=int, default=1_000_000, help="~1 KiB records for (3)"
    )
    parser.add_argument(
        "--backlog-records", type=int, default=200_000, help="records of the backlog case (6)"
    )
    parser.add_argument("--timeout", type=int, default=3600, help="seconds for everything")
    parser.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--verbose", action="store_true", help="show what each wait waits for")
    parser.add_argument("--output", "-o", choices=("text", "json"), default="text")
    args = parser.parse_args()
    if args.records < 1 or args.scale < 2 or args.repeats < 1:
        parser.error("--records must be >= 1, --scale >= 2, --repeats >= 1")
    if args.verbose:
        add_progress_listener(lambda m: print(f"  … {m}", file=sys.stderr, flush=True))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kasten-bp-bench-"))
    try:
        with deadline(args.timeout):
            results = run(
                workdir.resolve(),
                args.records,
                args.scale,
                args.repeats,
                args.deep_records,
                args.backlog_records,
            )
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, the lab is already down
        log(f"failed: {type(exc).__name__}: {exc}")
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir}")
    if args.output == "json":
        print(json.dumps(results, indent=2))
    else:
        print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
