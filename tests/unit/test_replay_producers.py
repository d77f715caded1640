"""How a replay shares producers and paces itself: pure, with an injected clock."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kasten_bp.cli import app
from kasten_bp.errors import UsageError
from kasten_bp.replay.copy import Acks, RateLimit
from kasten_bp.replay.producers import Settings, settings_for, waves
from kasten_bp.replay.report import PartitionProgress
from kasten_bp.replay.spec import parse_spec, with_flags

# --- producer settings and waves ---------------------------------------------------------


def test_topics_with_the_same_limit_need_the_same_producer_settings() -> None:
    assert settings_for(1048588) == settings_for(1048588)
    assert dict(settings_for(None))["batch.size"] == 1_000_000  # librdkafka's own
    # Memory stays bounded: a queue of 32 MiB, or room for two of the largest records.
    assert dict(settings_for(None))["queue.buffering.max.kbytes"] == 32 * 1024
    assert dict(settings_for(100_000_000))["queue.buffering.max.kbytes"] * 1024 > 2 * 10**8
    small = dict(settings_for(2000))
    assert small["batch.size"] == 2000  # no batch the topic would refuse
    large = dict(settings_for(10_000_000))
    assert large["batch.size"] == 1_000_000
    assert large["message.max.bytes"] > 10_000_000  # its largest record fits a request


def key_of(item: tuple[str, Settings]) -> Settings:
    return item[1]


def test_waves_bound_partitions_and_distinct_producers() -> None:
    a, b, c = settings_for(1000), settings_for(2000), settings_for(3000)
    items = [("a0", a), ("b0", b), ("a1", a), ("c0", c), ("b1", b), ("a2", a)]
    got = waves(items, key_of, parallelism=4, max_producers=1)
    assert [[name for name, _ in w] for w in got] == [["a0", "a1", "a2"], ["b0", "b1"], ["c0"]]
    got = waves(items, key_of, parallelism=2, max_producers=2)
    assert all(len(w) <= 2 and len({k for _, k in w}) <= 2 for w in got)
    assert sorted(name for w in got for name, _ in w) == sorted(name for name, _ in items)
    # One settings for all: only parallelism splits.
    same = [(f"t{i}", a) for i in range(5)]
    assert [len(w) for w in waves(same, key_of, parallelism=2, max_producers=1)] == [2, 2, 1]


def test_a_producer_serves_every_partition_of_its_settings_before_it_is_closed() -> None:
    a, b = settings_for(1000), settings_for(2000)
    items = [("a0", a), ("b0", b), ("a1", a), ("b1", b)]
    got = waves(items, key_of, parallelism=1, max_producers=1)
    keys = [w[0][1] for w in got]
    # Each settings' waves are consecutive: a producer is created once, not re-created.
    assert keys == [a, a, b, b]


# --- the rate limit ----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_limited(limit: RateLimit, clock: FakeClock, sizes: list[int]) -> list[tuple[float, int]]:
    """Pass records through the limit as the copy loop does: a record passes, then the loop
    waits what the limit says. (time passed, size) of each record."""
    passed = []
    for size in sizes:
        passed.append((clock.now, size))
        clock.now += limit.pause_for(size)
    return passed


def windows(passed: list[tuple[float, int]], start: float) -> dict[int, tuple[int, int]]:
    """Second -> (records, bytes) that passed in it."""
    out: dict[int, tuple[int, int]] = {}
    for at, size in passed:
        second = int(at - start + 1e-6)  # float sums of 1/rate land a hair early
        records, total = out.get(second, (0, 0))
        out[second] = (records + 1, total + size)
    return out


def test_records_per_second_is_honoured_in_every_second() -> None:
    clock = FakeClock()
    passed = run_limited(RateLimit(50, 0, clock), clock, [100] * 1000)
    counts = windows(passed, 1000.0)
    assert len(counts) == 20  # 1000 records at 50/s: 20 seconds
    assert all(records <= 50 for records, _ in counts.values())


def test_bytes_per_second_is_honoured_in_every_second() -> None:
    clock = FakeClock()
    sizes = [(i * 37) % 900 + 1 for i in range(2000)]
    passed = run_limited(RateLimit(0, 10_000, clock), clock, sizes)
    counts = windows(passed, 1000.0)
    assert all(total <= 10_000 + max(sizes) for _, total in counts.values())
    assert sum(sizes) / 10_000 <= len(counts) <= sum(sizes) / 10_000 + 2


def test_both_limits_hold_whichever_is_tighter() -> None:
    clock = FakeClock()
    # 1000-byte records: 20 records/s by count, 5/s by bytes: bytes win.
    passed = run_limited(RateLimit(20, 5_000, clock), clock, [1000] * 100)
    assert all(records <= 5 for records, _ in windows(passed, 1000.0).values())


def test_a_stalled_source_is_not_followed_by_a_burst() -> None:
    clock = FakeClock()
    limit = RateLimit(10, 0, clock)
    run_limited(limit, clock, [1] * 10)
    clock.now += 60  # the source gave nothing for a minute
    start = clock.now
    passed = run_limited(limit, clock, [1] * 30)
    assert all(records <= 10 for records, _ in windows(passed, start).values())


def test_no_limit_never_waits() -> None:
    clock = FakeClock()
    passed = run_limited(RateLimit(0, 0, clock), clock, [10**6] * 100)
    assert {at for at, _ in passed} == {1000.0}


# --- flags over the spec -------------------------------------------------------------------


def test_flags_override_the_spec_and_bad_values_name_the_flag() -> None:
    spec = parse_spec({"topics": [{"source": "orders"}], "max_producers": 3}, "test")
    assert spec.max_producers == 3
    changed = with_flags(spec, max_producers=1, max_records_per_second=100, parallelism=None)
    assert (changed.max_producers, changed.max_records_per_second, changed.parallelism) == (
        1,
        100,
        spec.parallelism,
    )
    with pytest.raises(UsageError, match="^--max-producers: Input should be greater than"):
        with_flags(spec, max_producers=0)
    with pytest.raises(UsageError, match="^--max-bytes-per-second: "):
        with_flags(spec, max_bytes_per_second=-1)


def test_a_bad_flag_is_one_line_exit_2_before_any_cluster(tmp_path) -> None:
    config = tmp_path / "kasten-bp.yaml"
    config.write_text(
        "primary: {bootstrap: '127.0.0.1:1'}\nmirror: {bootstrap: '127.0.0.1:2'}\n"
        f"catalog: {{url: 'file://{tmp_path}/catalog'}}\n"
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text("topics: [{source: orders}]\n")
    args = ["replay", "--to", "127.0.0.1:9", "--spec", str(spec), "--config", str(config)]
    result = CliRunner().invoke(app, [*args, "--max-records-per-second", "-5"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: --max-records-per-second: Input should be greater than or equal to 0"
    ]
    assert not (tmp_path / "catalog").exists()


# --- acknowledgements folded into the report --------------------------------------------


def test_acks_folded_in_runs_equal_acks_recorded_one_by_one() -> None:
    # Source offsets with a gap (a transaction marker at 3) and a target that already held
    # records (target offsets from 10); folded twice, as the copy loop saves twice.
    acks = [(0, 10), (1, 11), (2, 12), (4, 13), (5, 14), (9, 15)]
    one_by_one = PartitionProgress(
        source_topic="o",
        target_topic="c",
        partition=0,
        ranges=[(0, 10)],
        target_start_offset=10,
        next_target_offset=10,
    )
    folded = one_by_one.model_copy(deep=True)
    pending = Acks(folded)
    for i, (source, target) in enumerate(acks):
        one_by_one.acked(source, target)
        pending.add(source, target)
        if i == 3:
            pending.fold()
    pending.fold()
    assert folded == one_by_one
    assert [(r.source_from, r.source_until, r.target_from) for r in folded.offset_map] == [
        (0, 3, 10),
        (4, 6, 13),
        (9, 10, 15),
    ]
    assert (folded.records, folded.last_source_offset, folded.next_target_offset) == (6, 9, 16)
