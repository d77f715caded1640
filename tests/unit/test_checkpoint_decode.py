"""MM2 checkpoint records, decoded from bytes laid out as Kafka's Checkpoint writes them:
key = group STRING, topic STRING, partition INT32; value = version INT16, upstreamOffset
INT64, offset INT64, metadata STRING (STRING: INT16 length, then UTF-8), big-endian. Then
the newest per group partition, read from the end of the checkpoints topic."""

from __future__ import annotations

import struct

import pytest

from kasten_bp.kafka import groups
from kasten_bp.kafka.groups import (
    Checkpoint,
    CheckpointFormatError,
    checkpoints_topic,
    decode_checkpoint,
    latest_checkpoints,
)
from kasten_bp.records import Record


def string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def key(group: str, topic: str, partition: int) -> bytes:
    return string(group) + string(topic) + struct.pack(">i", partition)


def value(upstream: int, downstream: int, metadata: str = "", version: int = 0) -> bytes:
    return struct.pack(">hqq", version, upstream, downstream) + string(metadata)


def test_a_checkpoint_decodes_field_by_field() -> None:
    cp = decode_checkpoint(key("orders-app", "orders", 7), value(1234, 1200, "app-state"))
    assert cp == Checkpoint("orders-app", "orders", 7, 1234, 1200, "app-state")


def test_the_layout_is_exactly_kafkas() -> None:
    # Bytes written out by hand, not by this test's helpers.
    raw_key = b"\x00\x01g" + b"\x00\x02tp" + b"\x00\x00\x00\x02"
    raw_value = b"\x00\x00" + (5).to_bytes(8, "big") + (3).to_bytes(8, "big") + b"\x00\x00"
    assert decode_checkpoint(raw_key, raw_value) == Checkpoint("g", "tp", 2, 5, 3, "")


def test_large_offsets_non_ascii_names_and_metadata_survive() -> None:
    big = 2**62 + 17
    cp = decode_checkpoint(
        key("grüppe-ü", "primary.tópic", 2**31 - 1), value(big, big - 1, "ß\x00")
    )
    assert (cp.group, cp.topic, cp.partition) == ("grüppe-ü", "primary.tópic", 2**31 - 1)
    assert (cp.upstream_offset, cp.downstream_offset, cp.metadata) == (big, big - 1, "ß\x00")


def test_trailing_bytes_after_the_fields_are_ignored() -> None:
    # MM2 reads the fields it knows from a buffer and ignores the rest; so does kasten-bp.
    cp = decode_checkpoint(key("g", "t", 0) + b"\xff", value(1, 1) + b"\xff\xff")
    assert cp.upstream_offset == 1


@pytest.mark.parametrize(
    ("raw_key", "raw_value", "says"),
    [
        (key("g", "t", 0), value(1, 1, version=1), "version 1"),
        (key("g", "t", 0)[:-1], value(1, 1), "past the end"),
        (key("g", "t", 0), value(1, 1)[:10], "past the end"),
        (b"\x00\x09g", value(1, 1), "does not fit"),
        (b"\xff\xffg", value(1, 1), "does not fit"),  # a null STRING: MM2 never writes one
        (string("g") + b"\x00\x01\xff" + struct.pack(">i", 0), value(1, 1), "not UTF-8"),
    ],
)
def test_bytes_that_are_not_a_checkpoint_are_refused_with_the_reason(
    raw_key: bytes, raw_value: bytes, says: str
) -> None:
    with pytest.raises(CheckpointFormatError, match=says):
        decode_checkpoint(raw_key, raw_value)


def test_the_checkpoints_topic_is_named_like_mm2s_replication_policies() -> None:
    assert checkpoints_topic("primary") == "primary.checkpoints.internal"
    assert checkpoints_topic("us-east", "_") == "us-east_checkpoints_internal"


class FakeCheckpointsTopic:
    """One partition of checkpoint records; remembers the ranges read."""

    def __init__(self, entries: list[tuple[str, int]]) -> None:
        # (group, upstream offset) per record, in offset order; all on topic "t", partition 0.
        self.records = [
            Record(TOPIC, 0, i, 0, key(g, "t", 0), value(up, up), ())
            for i, (g, up) in enumerate(entries)
        ]
        self.reads: list[tuple[int, int]] = []

    def read_ranges(
        self, bootstrap: str, ranges: dict[tuple[str, int], tuple[int, int]]
    ) -> dict[tuple[str, int], list[Record]]:
        ((k, (start, end)),) = ranges.items()
        self.reads.append((start, end))
        return {k: self.records[start:end]}


TOPIC = "primary.checkpoints.internal"


@pytest.fixture
def fake_topic(monkeypatch: pytest.MonkeyPatch) -> FakeCheckpointsTopic:
    # Old checkpoints of "a" and "b", then many of "c", then a newer one of "a".
    fake = FakeCheckpointsTopic([("a", 1), ("b", 2), *[("c", i) for i in range(20)], ("a", 3)])
    monkeypatch.setattr(groups.admin, "topics", lambda bootstrap: {TOPIC: 1})
    monkeypatch.setattr(
        groups.admin, "watermarks", lambda bootstrap, keys: {(TOPIC, 0): (0, len(fake.records))}
    )
    monkeypatch.setattr(groups.reading, "read_ranges", fake.read_ranges)
    monkeypatch.setattr(groups, "FIRST_WINDOW", 2)
    return fake


def test_wanted_checkpoints_are_read_backwards_until_all_are_seen(
    fake_topic: FakeCheckpointsTopic,
) -> None:
    found = latest_checkpoints("mirror", TOPIC, {("a", "t", 0), ("c", "t", 0)})
    assert fake_topic.reads == [(21, 23)]  # the newest two records hold both
    assert found.latest[("a", "t", 0)].upstream_offset == 3
    assert found.latest[("c", "t", 0)].upstream_offset == 19


def test_a_key_further_back_widens_the_window_and_newer_records_win(
    fake_topic: FakeCheckpointsTopic,
) -> None:
    found = latest_checkpoints("mirror", TOPIC, {("a", "t", 0), ("b", "t", 0)})
    assert fake_topic.reads == [(21, 23), (13, 21), (0, 13)]
    assert found.latest[("a", "t", 0)].upstream_offset == 3  # not the older 1
    assert found.latest[("b", "t", 0)].upstream_offset == 2


def test_without_wanted_keys_the_whole_topic_is_read_once(
    fake_topic: FakeCheckpointsTopic,
) -> None:
    found = latest_checkpoints("mirror", TOPIC)
    assert fake_topic.reads == [(0, 23)]
    assert {k[0]: cp.upstream_offset for k, cp in found.latest.items()} == {
        "a": 3,
        "b": 2,
        "c": 19,
    }
