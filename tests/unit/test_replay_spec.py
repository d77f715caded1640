"""The replay spec, planning and the target's preflight: pure judgments, no cluster."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kasten_bp.cli import app
from kasten_bp.cli.replay import render
from kasten_bp.errors import UsageError
from kasten_bp.records import Record
from kasten_bp.replay.copy import replayed_headers
from kasten_bp.replay.plan import PartitionPlan, plan_replay
from kasten_bp.replay.preflight import (
    BATCH_OVERHEAD,
    HEADER_OVERHEAD,
    RECORD_OVERHEAD,
    Largest,
    TargetTopic,
    batch_bytes,
    create_problems,
    log_append_time_sources,
    size_problems,
    size_reads,
    target_problems,
    timestamp_problems,
    write_problems,
)
from kasten_bp.replay.report import OffsetRun, PartitionProgress
from kasten_bp.replay.source import SourcePartition, SourceTopic
from kasten_bp.replay.spec import ReplaySpec, load_spec, parse_spec, with_since


def topic(name: str, partitions: int = 3, end: int = 100, original: str | None = None):
    parts = tuple(SourcePartition(p, 0, end) for p in range(partitions))
    return SourceTopic(name, original or name, parts)


SOURCE = {
    t.name: t
    for t in (
        topic("orders"),
        topic("payments", 2, 50),
        topic("orders-eu", 1, 10),
        topic("heartbeats", 1, 5),
        topic("primary.audit", 1, 20, original="audit"),
    )
}


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def spec(**raw) -> ReplaySpec:
    return parse_spec(raw, "test")


def bad(raw: dict) -> str:
    with pytest.raises(UsageError) as info:
        parse_spec(raw, "test.yaml")
    return str(info.value)


# --- the spec ------------------------------------------------------------------------


def test_spec_file_with_every_documented_key_loads(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "topics:\n"
        "  - source: orders\n"
        "    target: orders-qa\n"
        "    partitions: [{number: 1, from_offset: 10, until_offset: 20}]\n"
        "    disable_preflight_checks: true\n"
        "from_datetime: 2026-11-20T10:00:00Z\n"
        "until_datetime: 2026-11-21T10:00:00+01:00\n"
        "original_offset_header: x-source-offset\n"
        "parallelism: 2\n"
        "create_topics: true\n"
        "dry_run: true\n"
    )
    loaded = load_spec(path)
    assert loaded.topics[0].target == "orders-qa"
    assert loaded.topics[0].partitions[0].until_offset == 20
    assert loaded.topics[0].disable_preflight_checks
    assert loaded.from_ms == ms(datetime(2026, 11, 20, 10, tzinfo=UTC))
    assert loaded.until_ms == ms(datetime(2026, 11, 21, 9, tzinfo=UTC))
    assert (loaded.parallelism, loaded.create_topics, loaded.dry_run) == (2, True, True)


def test_unknown_key_is_refused_naming_it() -> None:
    message = bad({"topics": [{"source": "orders", "partition": []}]})
    assert message.startswith("replay spec test.yaml: topics.0.partition:")


def test_until_before_from_is_refused_for_offsets_and_times() -> None:
    message = bad(
        {
            "topics": [
                {"source": "o", "partitions": [{"number": 0, "from_offset": 9, "until_offset": 3}]}
            ]
        }
    )
    assert "until_offset 3 is before from_offset 9" in message
    message = bad(
        {
            "topics": [{"source": "o"}],
            "from_datetime": "2026-11-20T10:00:00Z",
            "until_datetime": "2026-11-20T09:00:00Z",
        }
    )
    assert "is before from_datetime" in message


def test_overlapping_ranges_of_one_partition_are_refused() -> None:
    message = bad(
        {
            "topics": [
                {
                    "source": "orders",
                    "partitions": [
                        {"number": 0, "from_offset": 0, "until_offset": 10},
                        {"number": 0, "from_offset": 9},
                    ],
                }
            ]
        }
    )
    assert "topic orders: partition 0 ranges [0, 10) and [9, end) overlap" in message


def test_adjacent_ranges_of_one_partition_are_fine() -> None:
    s = spec(
        topics=[
            {
                "source": "orders",
                "partitions": [
                    {"number": 0, "from_offset": 20, "until_offset": 30},
                    {"number": 0, "from_offset": 0, "until_offset": 20},
                ],
            }
        ]
    )
    (item,) = plan_replay(s, SOURCE).partitions
    assert item.ranges == ((0, 20), (20, 30))


def test_datetimes_need_a_zone_and_since_sets_the_start() -> None:
    assert "needs a time zone" in bad(
        {"topics": [{"source": "o"}], "from_datetime": "2026-11-20T10:00:00"}
    )
    s = with_since(spec(topics=[{"source": "o"}]), "2026-11-20T10:00:00+00:00")
    start = ms(datetime(2026, 11, 20, 10, tzinfo=UTC))
    assert s.from_ms == start and s.in_window(start)
    assert not s.in_window(start - 1)


# --- planning --------------------------------------------------------------------------


def test_a_topic_by_name_maps_to_a_new_name_whole() -> None:
    result = plan_replay(spec(topics=[{"source": "orders", "target": "orders-qa"}]), SOURCE)
    assert result.problems == []
    assert [(p.source_topic, p.target_topic, p.partition, p.ranges) for p in result.partitions] == [
        ("orders", "orders-qa", n, ((0, 100),)) for n in range(3)
    ]


def test_a_regex_matches_user_topics_only_and_expands_groups() -> None:
    result = plan_replay(spec(topics=[{"source": r"(orders.*)", "target": r"\1-copy"}]), SOURCE)
    assert {(p.source_topic, p.target_topic) for p in result.partitions} == {
        ("orders", "orders-copy"),
        ("orders-eu", "orders-eu-copy"),
    }
    everything = plan_replay(spec(topics=[{"source": ".*"}]), SOURCE).partitions
    assert "heartbeats" not in {p.source_topic for p in everything}


def test_a_renamed_mirror_topic_is_found_by_its_primary_name_and_keeps_it() -> None:
    (item,) = plan_replay(spec(topics=[{"source": "audit"}]), SOURCE).partitions
    assert (item.source_topic, item.target_topic) == ("primary.audit", "audit")


def test_offsets_are_clamped_to_the_source_bound() -> None:
    s = spec(
        topics=[
            {
                "source": "payments",
                "partitions": [{"number": 1, "from_offset": 5, "until_offset": 500}],
            }
        ]
    )
    (item,) = plan_replay(s, SOURCE).partitions
    assert (item.partition, item.ranges, item.span) == (1, ((5, 50),), 45)


def test_unknown_topics_partitions_and_offsets_each_make_one_line() -> None:
    s = spec(
        topics=[
            {"source": "nope"},
            {"source": "payments", "partitions": [{"number": 7}, {"number": 0, "from_offset": 51}]},
        ]
    )
    assert plan_replay(s, SOURCE).problems == [
        "topic nope: unknown source topic: no topic of the source matches",
        "topic payments: unknown partition: 7 (the source has partitions 0-1)",
        "topic payments: from_offset: partition 0 from 51 is past the source's end offset 50",
    ]


def test_one_source_partition_in_two_entries_and_two_sources_into_one_target() -> None:
    twice = spec(topics=[{"source": "orders"}, {"source": "orde.*", "target": "x"}])
    problems = plan_replay(twice, SOURCE).problems
    assert any("topic orders: overlapping partition ranges: partition 0" in p for p in problems)
    merged = spec(
        topics=[{"source": "orders", "target": "all"}, {"source": "payments", "target": "all"}]
    )
    problems = plan_replay(merged, SOURCE).problems
    assert (
        "topic all: one target partition, two sources: partition 0 would receive orders[0] "
        "and payments[0]" in problems
    )


def test_resume_point_and_window_start_cut_the_ranges() -> None:
    item = PartitionPlan("t", "t", 0, ((0, 10), (20, 30)))
    assert item.from_offset(5).ranges == ((5, 10), (20, 30))
    assert item.from_offset(15).ranges == ((20, 30),)
    assert item.from_offset(30).ranges == () and item.from_offset(30).span == 0
    assert item.selects(25) and not item.selects(15)


# --- the target's preflight --------------------------------------------------------------


def plan_of(raw: dict) -> list[PartitionPlan]:
    return plan_replay(spec(**raw), SOURCE).partitions


def test_target_missing_fewer_partitions_and_not_empty() -> None:
    items = plan_of(
        {"topics": [{"source": "orders"}, {"source": "payments"}, {"source": "orders-eu"}]}
    )
    target = {
        "payments": TargetTopic("payments", {0: (0, 0)}),
        "orders-eu": TargetTopic("orders-eu", {0: (0, 4)}),
    }
    assert target_problems(items, SOURCE, target, create_topics=False, allow_non_empty=False) == [
        "topic orders: target missing: no such topic on the target "
        "(create it, or set create_topics: true)",
        "topic payments: partition count: the target has 1 partitions, the source payments has 2",
        "topic orders-eu: target not empty: partitions 0 hold records "
        "(pass --allow-non-empty to append)",
    ]
    assert target_problems(items, SOURCE, target, create_topics=True, allow_non_empty=True) == [
        "topic payments: partition count: the target has 1 partitions, the source payments has 2",
    ]


def test_disabled_checks_still_need_the_partition() -> None:
    items = plan_of({"topics": [{"source": "payments", "disable_preflight_checks": True}]})
    target = {"payments": TargetTopic("payments", {0: (0, 9)})}
    assert target_problems(items, SOURCE, target, False, False) == [
        "topic payments: partition count: the target has no partition 1"
    ]


# --- records and the report -------------------------------------------------------------------


def test_original_offset_topic_and_partition_headers_follow_the_source_headers() -> None:
    record = Record("orders", 2, 41, 1000, b"k", b"v", (("h", b"1"),))
    s = spec(
        topics=[{"source": "orders"}],
        original_offset_header="x-offset",
        original_partition_header="x-partition",
    )
    assert replayed_headers(record, s) == (("h", b"1"), ("x-offset", b"41"), ("x-partition", b"2"))
    assert replayed_headers(record, spec(topics=[{"source": "orders"}])) == (("h", b"1"),)


def test_acknowledgements_build_the_offset_map_in_runs() -> None:
    progress = PartitionProgress(
        source_topic="orders",
        target_topic="copy",
        partition=0,
        ranges=[(0, 100)],
        target_start_offset=7,
        next_target_offset=7,
    )
    for source, target in ((3, 7), (4, 8), (5, 9), (9, 10), (10, 11)):
        progress.acked(source, target)
    assert progress.offset_map == [
        OffsetRun(source_from=3, source_until=6, target_from=7),
        OffsetRun(source_from=9, source_until=11, target_from=10),
    ]
    assert (progress.records, progress.first_source_offset, progress.last_source_offset) == (
        5,
        3,
        10,
    )
    assert progress.next_target_offset == 12


def test_only_targets_accepting_less_than_their_source_need_their_records_measured() -> None:
    items = plan_of(
        {"topics": [{"source": "orders"}, {"source": "payments"}, {"source": "heartbeats"}]}
    )
    source = {"orders": {"max.message.bytes": "1048588"}, "payments": {"max.message.bytes": "10"}}
    target = {
        "orders": {"max.message.bytes": "1000"},  # less than its source: measured
        "payments": {"max.message.bytes": "10"},  # as much: every record fits, no read
        "heartbeats": {"max.message.bytes": "5000"},  # the source does not say: measured
    }
    assert size_reads(items, source, target) == {"orders": 1000, "heartbeats": 5000}
    skipped = plan_of({"topics": [{"source": "orders", "disable_preflight_checks": True}]})
    assert size_reads(skipped, source, target) == {}


def test_a_record_larger_than_its_target_accepts_is_refused_naming_it() -> None:
    reads = {"orders": 1000, "heartbeats": 5000}
    largest = {
        "orders": Largest(1001, "orders", 2, 17),
        "heartbeats": Largest(5000, "heartbeats", 0, 3),  # exactly fits
    }
    assert size_problems(reads, largest) == [
        "topic orders: max.message.bytes: the target accepts up to 1000 bytes, the largest "
        "record in range (orders[2] at offset 17) needs 1001"
    ]
    assert size_problems(reads, {}) == []  # nothing selected: nothing too large


def test_a_batch_of_one_record_counts_key_value_and_every_header() -> None:
    record = Record("orders", 0, 5, 0, b"k" * 10, b"v" * 100, (("h", b"x" * 5),))
    bare = batch_bytes(record, ())
    assert bare == BATCH_OVERHEAD + RECORD_OVERHEAD + 110
    assert batch_bytes(record, record.headers) == bare + HEADER_OVERHEAD + 6


def test_writable_needs_write_on_each_existing_target_and_create_on_each_missing_one() -> None:
    items = plan_of({"topics": [{"source": "orders"}, {"source": "payments"}, {"source": "audit"}]})
    operations = {
        "orders": frozenset({"READ", "DESCRIBE"}),
        "payments": frozenset({"WRITE", "DESCRIBE"}),
        "audit": None,  # a broker before KIP-430: it does not say, the producer will
    }
    assert write_problems(items, operations, "user qa") == [
        "topic orders: writable: user qa may not write to it: grant WRITE on topic orders"
    ]
    assert write_problems(items, {"orders": frozenset()}, "user qa") == [
        "topic orders: writable: user qa may not write to it: grant WRITE on topic orders"
    ]
    refusals = {
        "new-a": "TOPIC_AUTHORIZATION_FAILED: Authorization failed.",
        "new-b": "INVALID_REPLICATION_FACTOR: Replication factor: 3 larger than brokers: 1.",
    }
    assert create_problems(refusals, "user qa") == [
        "topic new-a: writable: user qa may not create it: grant CREATE on topic new-a "
        "(or the cluster)",
        "topic new-b: create: the target would refuse it: INVALID_REPLICATION_FACTOR: "
        "Replication factor: 3 larger than brokers: 1.",
    ]


def test_log_append_time_is_refused_on_the_target_and_reported_on_the_source() -> None:
    items = plan_of({"topics": [{"source": "orders"}, {"source": "payments"}]})
    stamped = {"message.timestamp.type": "LogAppendTime"}
    kept = {"message.timestamp.type": "CreateTime"}
    assert timestamp_problems(items, {"orders": kept, "payments": stamped}) == [
        "topic payments: message.timestamp.type: the target stamps LogAppendTime, which "
        "would replace the replayed records' timestamps"
    ]
    assert log_append_time_sources(items, {"orders": stamped, "payments": kept}) == ["orders"]


# --- the command line: arguments judged before any cluster is reached --------------------


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    data = {
        "primary": {"bootstrap": "127.0.0.1:1"},
        "mirror": {"bootstrap": "127.0.0.1:2"},
        "connect": {"url": "http://127.0.0.1:3", "connectors": ["source"]},
        "catalog": str(tmp_path / "catalog"),
        "local": {"lab_dir": str(tmp_path / "lab")},
    }
    path = tmp_path / "kasten-bp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "error: replay needs --spec FILE (or --resume REPLAY_ID)"),
        (["--resume", "rp-1", "--dry-run"], "error: --resume continues with the replay's own spec"),
        (["--spec", "missing.yaml"], "error: replay spec missing.yaml not found"),
    ],
)
def test_replay_arguments_are_one_line_errors_with_exit_2(
    config_file: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(
        app, ["replay", "bk-1", "--to", "127.0.0.1:9", "--config", str(config_file), *args]
    )
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(message), result.stderr


def test_a_bad_spec_file_names_the_field(config_file: Path, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("topics: [{source: orders}]\nparallelism: 0\n")
    result = CliRunner().invoke(
        app, ["replay", "--to", "x:1", "--spec", str(spec), "--config", str(config_file)]
    )
    assert result.exit_code == 2
    assert f"replay spec {spec}: parallelism: " in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--targets", "-1"], "error: --targets must be 0 or more, got -1"),
        (["--targets", "1", "--secure"], "error: --targets is not supported with --secure yet"),
    ],
)
def test_lab_up_refuses_bad_targets_before_starting_anything(
    tmp_path: Path, args: list[str], message: str
) -> None:
    workdir = tmp_path / "lab"
    result = CliRunner().invoke(app, ["lab", "up", "--workdir", str(workdir), *args])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(message), result.stderr
    assert not workdir.exists()


def test_the_text_report_names_each_partition_and_the_way_to_resume() -> None:
    text = render(
        {
            "replay_id": "rp-1",
            "status": "interrupted",
            "records": 3,
            "source": "backup bk-1 on 127.0.0.1:1",
            "target": "127.0.0.1:2",
            "partitions": [
                {
                    "source_topic": "orders",
                    "target_topic": "copy",
                    "partition": 0,
                    "records": 3,
                    "first_source_offset": 4,
                    "last_source_offset": 6,
                    "proof": None,
                }
            ],
        }
    )
    assert "orders[0] -> copy[0]  3 records  source offsets 4..6" in text
    assert "--resume rp-1" in text
