"""`kasten-bp replay` on the real lab: a backup replayed into the lab's target cluster."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kasten_bp.catalog.base import open_catalog
from kasten_bp.kafka import admin, producing
from kasten_bp.lab.ports import free_ports
from kasten_bp.platforms.local import LocalPlatform
from kasten_bp.records import Record
from kasten_bp.waiting import wait_for

from . import kafka_tools
from .helpers import (
    LabHandle,
    cli,
    cli_json,
    fresh,
    partition_records,
    wait_mirrored,
    write_spec,
)

pytestmark = pytest.mark.integration
RECORDS = 300  # 100 per partition, one second apart in timestamps
OFFSET_HEADER = "x-source-offset"


@dataclass(frozen=True)
class Backup:
    id: str
    topic: str
    base_ms: int  # record i has timestamp base_ms + i * 1000


@pytest.fixture(scope="module")
def target(lab: LabHandle) -> Iterator[str]:
    """The lab's target cluster (`lab up --targets 1` on the running lab); stopped after
    this module, CPU being scarce."""
    if lab.lab is None:
        pytest.skip("target clusters come from the embedded lab")
    state = lab.lab.require_state()
    info = lab.lab.up(
        len(state.primary.brokers),
        len(state.mirror.brokers),
        state.replication_policy,
        targets=1,
    )
    (entry,) = info["targets"]
    assert entry["running"] and lab.config.targets[0].bootstrap == entry["bootstrap"]
    yield entry["bootstrap"]
    lab.lab.stop_targets()


@pytest.fixture(scope="module")
def backup(lab: LabHandle) -> Iterator[Backup]:
    """A consistent backup holding a fresh topic; its restored cluster is started by the
    first replay (the local platform does that) and stopped after this module."""
    name = f"replay-{uuid.uuid4().hex[:8]}"
    admin.create_topic(lab.primary, name, 3)
    base = int(time.time() * 1000) - 3_600_000
    producing.produce(
        lab.primary,
        [
            Record(
                name,
                i % 3,
                -1,
                base + i * 1000,
                f"k{i}".encode(),
                f"v{i}".encode(),
                (("n", str(i).encode()),) if i % 2 else (),
            )
            for i in range(RECORDS)
        ],
    )
    wait_mirrored(lab.primary, lab.mirror, name)
    result = cli_json(lab, "backup")
    assert result["status"] == "COMPLETED"
    yield Backup(result["backup_id"], name, base)
    LocalPlatform(lab.config).stop_restored(result["backup_id"])


def restored(lab: LabHandle, backup: Backup) -> str:
    bootstrap = LocalPlatform(lab.config).restored_bootstrap(backup.id)
    assert bootstrap is not None
    return bootstrap


def replayed(record: Record) -> tuple:
    """What the target must hold for a source record: its content plus the offset header."""
    headers = (*record.headers, (OFFSET_HEADER, str(record.offset).encode()))
    return (record.key, record.value, headers, record.timestamp)


def on_target(target: str, topic: str, partition: int) -> list[tuple]:
    return [r.content() for r in partition_records(target, topic, partition)]


def everything_on(target: str) -> dict[tuple[str, int], tuple[int, int]]:
    """Every partition of every user topic on the target, with its offsets (Kafka's own
    topics may appear when a client first looks up a coordinator)."""
    counts = admin.topics(target)
    keys = [(t, p) for t, n in counts.items() if not t.startswith("__") for p in range(n)]
    return admin.watermarks(target, keys)


def test_whole_topic_under_a_new_name_with_original_offsets(
    lab: LabHandle, target: str, backup: Backup, tmp_path: Path
) -> None:
    name = fresh()
    spec = write_spec(
        tmp_path,
        topics=[{"source": backup.topic, "target": name}],
        create_topics=True,
        original_offset_header=OFFSET_HEADER,
        parallelism=2,
    )
    result = cli_json(lab, "replay", backup.id, "--to", target, "--spec", str(spec))
    assert result["status"] == "completed"
    assert sorted((p["target_topic"], p["partition"]) for p in result["partitions"]) == [
        (name, 0),
        (name, 1),
        (name, 2),
    ]
    assert sum(p["records"] for p in result["partitions"]) == RECORDS
    source = restored(lab, backup)
    for p in range(3):
        expected = partition_records(source, backup.topic, p)
        assert on_target(target, name, p) == [replayed(r) for r in expected]
        (row,) = [x for x in result["partitions"] if x["partition"] == p]
        assert (row["first_source_offset"], row["last_source_offset"]) == (
            expected[0].offset,
            expected[-1].offset,
        )
    report = open_catalog(lab.config.catalog).read_json(
        f"replays/{result['replay_id']}/report.json"
    )
    assert report is not None and report["status"] == "completed"
    assert report["backup_id"] == backup.id
    assert all(p["proof"] == "ok" and p["offset_map"] for p in report["partitions"])


def test_an_offset_range_of_one_partition_into_an_existing_topic(
    lab: LabHandle, target: str, backup: Backup, tmp_path: Path
) -> None:
    name = fresh()
    admin.create_topic(target, name, 3)
    spec = write_spec(
        tmp_path,
        topics=[
            {
                "source": backup.topic,
                "target": name,
                "partitions": [{"number": 1, "from_offset": 10, "until_offset": 40}],
            }
        ],
        original_offset_header=OFFSET_HEADER,
    )
    result = cli_json(lab, "replay", backup.id, "--to", target, "--spec", str(spec))
    assert result["status"] == "completed"
    (row,) = result["partitions"]
    assert (row["partition"], row["records"]) == (1, 30)
    assert (row["first_source_offset"], row["last_source_offset"]) == (10, 39)
    expected = [r for r in partition_records(restored(lab, backup), backup.topic, 1)]
    assert on_target(target, name, 1) == [replayed(r) for r in expected if 10 <= r.offset < 40]
    assert on_target(target, name, 0) == [] and on_target(target, name, 2) == []


def test_a_time_window_replays_the_records_inside_it(
    lab: LabHandle, target: str, backup: Backup, tmp_path: Path
) -> None:
    name = fresh()
    start, end = backup.base_ms + 100_000, backup.base_ms + 200_000  # records 100..199

    def iso(ms: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + "Z"

    spec = write_spec(
        tmp_path,
        topics=[{"source": backup.topic, "target": name}],
        create_topics=True,
        until_datetime=iso(end),
        original_offset_header=OFFSET_HEADER,
    )
    result = cli_json(
        lab, "replay", backup.id, "--to", target, "--spec", str(spec), "--since", iso(start)
    )
    assert result["status"] == "completed"
    assert sum(p["records"] for p in result["partitions"]) == 100
    source = restored(lab, backup)
    for p in range(3):
        expected = [
            r for r in partition_records(source, backup.topic, p) if start <= r.timestamp < end
        ]
        assert expected and on_target(target, name, p) == [replayed(r) for r in expected]


def test_a_dry_run_prints_the_plan_and_changes_nothing(
    lab: LabHandle, target: str, backup: Backup, tmp_path: Path
) -> None:
    name = fresh()
    spec = write_spec(
        tmp_path, topics=[{"source": backup.topic, "target": name}], create_topics=True
    )
    before = everything_on(target)
    result = cli_json(lab, "replay", backup.id, "--to", target, "--spec", str(spec), "--dry-run")
    assert result["status"] == "dry_run" and result["replay_id"] is None
    assert {p["target"] for p in result["partitions"]} == {"created"}
    assert sum(p["records"] for p in result["partitions"]) == RECORDS
    assert everything_on(target) == before


def test_bad_inputs_exit_2_in_one_line_and_write_nothing(
    lab: LabHandle, target: str, backup: Backup, tmp_path: Path
) -> None:
    narrow, full = fresh("narrow"), fresh("full")
    admin.create_topic(target, narrow, 1)
    admin.create_topic(target, full, 3)
    producing.produce(target, [Record(full, 0, -1, 0, b"k", b"there already", ())])
    small = fresh("small")
    # Below the backup's largest record (~120 bytes as a batch of one), above its smallest.
    admin.create_topic(target, small, 3, config={"max.message.bytes": "110"})
    topic = backup.topic
    cases: list[tuple[dict[str, Any], list[str], str]] = [
        (
            {"topics": [{"source": "no-such-topic"}]},
            [],
            "topic no-such-topic: unknown source topic",
        ),
        (
            {"topics": [{"source": topic, "target": fresh()}]},
            [],
            "target missing",
        ),
        (
            {"topics": [{"source": topic, "target": narrow}]},
            [],
            f"topic {narrow}: partition count: the target has 1 partitions",
        ),
        (
            {"topics": [{"source": topic, "target": full}]},
            [],
            f"topic {full}: target not empty",
        ),
        (
            {"topics": [{"source": topic, "target": small}]},
            [],
            f"topic {small}: max.message.bytes: the target accepts up to 110 bytes, the "
            "largest record in range",
        ),
        (
            {
                "topics": [
                    {
                        "source": topic,
                        "partitions": [{"number": 0, "from_offset": 9, "until_offset": 2}],
                    }
                ]
            },
            [],
            "until_offset 2 is before from_offset 9",
        ),
        (
            {
                "topics": [
                    {
                        "source": topic,
                        "partitions": [
                            {"number": 0, "until_offset": 20},
                            {"number": 0, "from_offset": 10},
                        ],
                    }
                ]
            },
            [],
            "overlap",
        ),
        (
            {"topics": [{"source": topic}], "create_topics": True},
            ["--to", f"127.0.0.1:{free_ports(1)[0]}"],
            "unreachable",
        ),
    ]
    before = everything_on(target)
    for raw, extra, message in cases:
        spec = write_spec(tmp_path, **raw)
        to = [] if "--to" in extra else ["--to", target]
        result = cli(lab, "replay", backup.id, *to, *extra, "--spec", str(spec))
        assert result.returncode == 2, (message, result.stderr)
        # One line (progress lines start with "… ").
        (line,) = [ln for ln in result.stderr.splitlines() if not ln.startswith("… ")]
        assert message in line, result.stderr
    assert everything_on(target) == before


def test_any_cluster_as_source_and_a_resume_id_of_another_source(
    lab: LabHandle, target: str, backup: Backup, tmp_path: Path
) -> None:
    name = fresh()
    spec = write_spec(
        tmp_path,
        topics=[{"source": backup.topic, "target": name, "partitions": [{"number": 2}]}],
        create_topics=True,
    )
    result = cli_json(
        lab, "replay", "--source-bootstrap", lab.primary, "--to", target, "--spec", str(spec)
    )
    assert result["status"] == "completed" and result["backup_id"] is None
    assert on_target(target, name, 2) == [
        r.content() for r in partition_records(lab.primary, backup.topic, 2)
    ]
    refused = cli(lab, "replay", backup.id, "--to", target, "--resume", result["replay_id"])
    assert refused.returncode == 2
    assert f"replay {result['replay_id']}: resume: it replays no backup" in refused.stderr


def interrupted_replay(
    lab: LabHandle, target: str, backup: Backup, tmp_path: Path, stop: signal.Signals
) -> tuple[str, str]:
    """A replay stopped half-way by `stop`: (target topic, replay id)."""
    name = fresh()
    spec = write_spec(
        tmp_path,
        topics=[{"source": backup.topic, "target": name}],
        create_topics=True,
        original_offset_header=OFFSET_HEADER,
        max_records_per_second=60,  # slow enough to stop half-way
    )
    args = ["replay", backup.id, "--to", target, "--spec", str(spec), "--output", "json"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "kasten_bp.cli", *args, "--config", str(lab.config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    catalog = open_catalog(lab.config.catalog)

    def started() -> str | None:
        for key in catalog.list_keys("replays/"):
            report = catalog.read_json(key)
            if report and any(
                p["target_topic"] == name and p["records"] > 0 for p in report["partitions"]
            ):
                return str(report["replay_id"])
        return None

    replay_id = wait_for("the replay's report to show progress", started, 300)
    proc.send_signal(stop)
    out, err = proc.communicate(timeout=120)
    if stop == signal.SIGINT:
        assert proc.returncode == 130, err[-2000:]
        assert json.loads(out)["status"] == "interrupted"
    else:
        assert proc.returncode == -signal.SIGKILL
    halfway = sum(hi for (t, _), (_, hi) in everything_on(target).items() if t == name)
    assert 0 < halfway < RECORDS
    return name, replay_id


def assert_replayed_exactly(lab: LabHandle, target: str, backup: Backup, name: str) -> None:
    source = restored(lab, backup)
    for p in range(3):
        expected = partition_records(source, backup.topic, p)
        got = partition_records(target, name, p)
        offsets = [int(dict(r.headers)[OFFSET_HEADER] or b"-1") for r in got]
        assert offsets == [r.offset for r in expected]  # no duplicate, no gap
        assert [r.content() for r in got] == [replayed(r) for r in expected]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_an_interrupted_replay_resumes_with_no_duplicate_and_no_gap(
    lab: LabHandle, target: str, backup: Backup, tmp_path: Path, stop: signal.Signals
) -> None:
    name, replay_id = interrupted_replay(lab, target, backup, tmp_path, stop)
    result = cli_json(lab, "replay", backup.id, "--to", target, "--resume", replay_id)
    assert result["status"] == "completed" and result["replay_id"] == replay_id
    assert sum(p["records"] for p in result["partitions"]) == RECORDS
    assert_replayed_exactly(lab, target, backup, name)


def leftovers(lab: LabHandle, backup: Backup, replay_id: str, partition: int) -> list[Record]:
    """The next source records of a partition after what the report recorded: what a run
    killed before its report caught up had already written."""
    report = open_catalog(lab.config.catalog).read_json(f"replays/{replay_id}/report.json")
    assert report is not None
    (row,) = [p for p in report["partitions"] if p["partition"] == partition]
    last = row["last_source_offset"] if row["last_source_offset"] is not None else -1
    source = partition_records(restored(lab, backup), backup.topic, partition)
    return [r for r in source if r.offset > last][:5]


def test_resume_keeps_what_a_killed_run_wrote_and_refuses_foreign_records(
    lab: LabHandle, target: str, backup: Backup, tmp_path: Path
) -> None:
    # Written by the "killed" run but not in its report: kept, not written twice.
    name, replay_id = interrupted_replay(lab, target, backup, tmp_path, signal.SIGINT)
    unrecorded = leftovers(lab, backup, replay_id, 0)
    producing.produce(
        target,
        [Record(name, 0, -1, r.timestamp, r.key, r.value, replayed(r)[2]) for r in unrecorded],
    )
    result = cli_json(lab, "replay", "--to", target, "--resume", replay_id)
    assert result["status"] == "completed"
    assert_replayed_exactly(lab, target, backup, name)

    # Something else wrote there: refused, nothing more written.
    name, replay_id = interrupted_replay(lab, target, backup, tmp_path, signal.SIGINT)
    producing.produce(target, [Record(name, 1, -1, 0, b"other", b"writer", ())])
    before = everything_on(target)
    refused = cli(lab, "replay", backup.id, "--to", target, "--resume", replay_id)
    assert refused.returncode == 2, refused.stderr
    assert f"topic {name}: resume: {name}[1] holds records past what the report" in (refused.stderr)
    assert everything_on(target) == before


def test_only_committed_transactional_records_are_replayed(
    lab: LabHandle, target: str, tmp_path: Path
) -> None:
    source_topic, name = fresh("tx"), fresh()
    admin.create_topic(lab.primary, source_topic, 2)
    batches = [
        [Record(source_topic, i % 2, -1, 0, b"k", f"batch{b}-{i}".encode(), ()) for i in range(10)]
        for b in range(4)
    ]
    committed = kafka_tools.produce_transactional(lab.primary, batches, f"tx-{name}", abort={1, 3})
    spec = write_spec(
        tmp_path,
        topics=[{"source": source_topic, "target": name}],
        create_topics=True,
        original_offset_header=OFFSET_HEADER,
    )
    result = cli_json(
        lab, "replay", "--source-bootstrap", lab.primary, "--to", target, "--spec", str(spec)
    )
    assert result["status"] == "completed" and result["proof"] == "ok"
    assert sum(p["records"] for p in result["partitions"]) == committed == 20
    for p in range(2):
        expected = partition_records(lab.primary, source_topic, p)
        assert on_target(target, name, p) == [replayed(r) for r in expected]
        assert not any(b"batch1" in (r.value or b"") for r in expected)
    report = open_catalog(lab.config.catalog).read_json(
        f"replays/{result['replay_id']}/report.json"
    )
    assert report is not None
    # Transaction markers occupy source offsets: the offset map breaks its runs there.
    assert all(len(p["offset_map"]) == 2 for p in report["partitions"])


@dataclass(frozen=True)
class Family:
    prefix: str  # topics prefix-0 .. prefix-3 on the primary, 2 partitions each
    records: int  # per topic


@pytest.fixture(scope="module")
def family(lab: LabHandle) -> Family:
    """Four primary topics of ~100 KiB per partition (500-byte values): enough that a
    producer batching as it likes would exceed a target's small max.message.bytes."""
    prefix, per_topic = fresh("family"), 400
    for t in range(4):
        name = f"{prefix}-{t}"
        admin.create_topic(lab.primary, name, 2)
        producing.produce(
            lab.primary,
            [
                Record(name, i % 2, -1, 0, f"k{i}".encode(), bytes([65 + t]) * 500, ())
                for i in range(per_topic)
            ],
        )
    return Family(prefix, per_topic)


def test_max_producers_1_shares_one_producer_across_topics_of_the_same_settings(
    lab: LabHandle, target: str, family: Family, tmp_path: Path
) -> None:
    copy = fresh("shared")
    spec = write_spec(
        tmp_path,
        topics=[{"source": f"{family.prefix}-.*", "target": copy + r"-\g<0>"}],
        create_topics=True,
        parallelism=8,
        original_offset_header=OFFSET_HEADER,
    )
    result = cli_json(
        lab,
        "replay",
        "--source-bootstrap",
        lab.primary,
        "--to",
        target,
        "--spec",
        str(spec),
        "--max-producers",
        "1",
    )
    assert result["status"] == "completed" and result["proof"] == "ok"
    assert len(result["partitions"]) == 8
    assert result["records"] == 4 * family.records
    # Four created topics with the source's configs: one max.message.bytes, one producer.
    assert result["producers"] == {"created": 1, "peak": 1}
    report = open_catalog(lab.config.catalog).read_json(
        f"replays/{result['replay_id']}/report.json"
    )
    assert report is not None and report["spec"]["max_producers"] == 1
    for t in range(4):
        for p in range(2):
            expected = partition_records(lab.primary, f"{family.prefix}-{t}", p)
            got = on_target(target, f"{copy}-{family.prefix}-{t}", p)
            assert got == [replayed(r) for r in expected]


def test_targets_of_different_limits_get_their_own_producers_one_at_a_time(
    lab: LabHandle, target: str, family: Family, tmp_path: Path
) -> None:
    # Two targets accept 20 000-byte batches, two the broker's default: two settings.
    copy = fresh("limits")
    for t in range(4):
        config = {"max.message.bytes": "20000"} if t % 2 else {}
        admin.create_topic(target, f"{copy}-{t}", 2, config=config)
    spec = write_spec(
        tmp_path,
        topics=[{"source": f"{family.prefix}-{t}", "target": f"{copy}-{t}"} for t in range(4)],
        max_producers=1,
    )
    result = cli_json(
        lab, "replay", "--source-bootstrap", lab.primary, "--to", target, "--spec", str(spec)
    )
    assert result["status"] == "completed" and result["proof"] == "ok"
    assert result["producers"] == {"created": 2, "peak": 1}
    for t in range(4):
        for p in range(2):
            expected = partition_records(lab.primary, f"{family.prefix}-{t}", p)
            assert on_target(target, f"{copy}-{t}", p) == [r.content() for r in expected]


def test_a_record_larger_than_the_target_accepts_is_refused_before_anything_is_written(
    lab: LabHandle, target: str, tmp_path: Path
) -> None:
    source, small, roomy = fresh("big"), fresh("small"), fresh("roomy")
    admin.create_topic(lab.primary, source, 1)
    big = Record(source, 0, -1, 0, b"big", b"x" * 30_000, ())
    producing.produce(
        lab.primary,
        [Record(source, 0, -1, 0, b"k", b"v", ()), big, Record(source, 0, -1, 0, b"k", b"w", ())],
    )
    admin.create_topic(target, small, 1, config={"max.message.bytes": "20000"})
    admin.create_topic(target, roomy, 1, config={"max.message.bytes": "40000"})
    before = everything_on(target)
    spec = write_spec(tmp_path, topics=[{"source": source, "target": small}])
    result = cli(
        lab, "replay", "--source-bootstrap", lab.primary, "--to", target, "--spec", str(spec)
    )
    assert result.returncode == 2, result.stderr
    (line,) = [ln for ln in result.stderr.splitlines() if not ln.startswith("… ")]
    assert (
        f"topic {small}: max.message.bytes: the target accepts up to 20000 bytes, the largest "
        f"record in range ({source}[0] at offset 1) needs 30100"
    ) in line
    assert everything_on(target) == before
    # Without the big record (offsets 0 and 2 only), the same target takes the rest; and a
    # target accepting less than its source but more than the big record takes all three.
    spec = write_spec(
        tmp_path,
        topics=[
            {
                "source": source,
                "target": small,
                "partitions": [
                    {"number": 0, "until_offset": 1},
                    {"number": 0, "from_offset": 2},
                ],
            }
        ],
    )
    result = cli_json(
        lab, "replay", "--source-bootstrap", lab.primary, "--to", target, "--spec", str(spec)
    )
    assert result["status"] == "completed" and result["records"] == 2
    spec = write_spec(tmp_path, topics=[{"source": source, "target": roomy}])
    result = cli_json(
        lab, "replay", "--source-bootstrap", lab.primary, "--to", target, "--spec", str(spec)
    )
    assert result["status"] == "completed" and result["records"] == 3
    expected = partition_records(lab.primary, source, 0)
    assert on_target(target, roomy, 0) == [r.content() for r in expected]
    assert expected[1].value == big.value
