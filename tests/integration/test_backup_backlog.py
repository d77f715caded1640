"""A backup taken while MM2 has a backlog (issue 33), on real labs of its own: Connect's stop
of a source task commits the offsets of the records acknowledged so far, then its producer
delivers the records still in flight, so the stopped mirror holds more than MM2 committed.

Each policy gets a lab of its own: the loads here are hundreds of megabytes, which the
session lab's later backups and deep verifies would copy and read."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from kasten_bp.backup import Backups
from kasten_bp.connect import ConnectClient
from kasten_bp.kafka import admin, producing, reading
from kasten_bp.lab.lab import Lab
from kasten_bp.lab.load import LoadSpec, run_load
from kasten_bp.platforms.local import LocalPlatform
from kasten_bp.records import Record
from kasten_bp.waiting import wait_for

from . import kafka_tools
from .helpers import LabHandle, assert_mirror_running, cli_json

SOURCE = "primary->mirror.MirrorSourceConnector"
# The issue's own scenario: 200,000 records of the lab's load (values up to ~4 KiB).
RECORDS = 200_000


@pytest.fixture(scope="module", params=["identity", "default"])
def backlog_lab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabHandle]:
    lab = Lab(Path(tmp_path_factory.mktemp(f"backlog-{request.param}")))
    # Three mirror brokers, as the session lab: MM2's producer waits for acks of three
    # replicas, so records are in flight when its task stops (one broker acks too fast).
    lab.up(primary_brokers=1, mirror_brokers=3, policy=request.param)
    try:
        handle = LabHandle(lab, lab.config_path)
        linger_mm2_producer(handle)
        yield handle
    finally:
        lab.down()


def linger_mm2_producer(lab: LabHandle) -> None:
    """Records in flight when the source task stops are what this module is about. Connect
    waits up to offset.flush.timeout.ms (5 s) for the acks of what its producer sent before
    the final commit, so they stay uncommitted only when acks take longer: a mirror under
    load, as in the issue, but not a quiet one. A producer that holds a partial batch for
    10 s (up to 1 MiB, Connect's per-connector producer override) makes that certain
    whenever MM2 is copying when it stops; full batches still go at once."""
    url = f"{lab.config.connect.url}/connectors/{quote(SOURCE, safe='')}/config"
    config = httpx.get(url, timeout=30).raise_for_status().json()
    config["producer.override.linger.ms"] = "10000"
    config["producer.override.batch.size"] = str(1 << 20)
    httpx.put(url, json=config, timeout=30).raise_for_status()
    with connect(lab) as client:
        wait_for(f"{SOURCE} RUNNING again", lambda: client.all_running(SOURCE), 120)


def mirror_topic(lab: LabHandle, topic: str) -> str:
    return topic if lab.config.replication.policy == "identity" else f"primary.{topic}"


def connect(lab: LabHandle) -> ConnectClient:
    assert lab.lab is not None
    return lab.lab.connect_client(lab.lab.require_state())


def build_backlog(lab: LabHandle, plain: str, tx: str) -> None:
    """MM2's source connector paused while the primary takes 200,000 records and a
    transactional topic, then resumed: MM2 is busy copying when the backup starts, whatever
    the machine's speed (a lab load MM2 copies as it is written may leave no backlog)."""
    with connect(lab) as client:
        client.pause(SOURCE)
        try:
            run_load(lab.primary, LoadSpec(topic=plain, records=RECORDS))
            admin.create_topic(lab.primary, tx, 3)
            batches = [
                [
                    Record(tx, i % 3, -1, 0, f"k{i}".encode(), bytes(1000), ())
                    for i in range(n, n + 300)
                ]
                for n in range(0, 12_000, 300)
            ]
            kafka_tools.produce_transactional(lab.primary, batches, f"tx-{tx}", abort={3, 17})
        finally:
            client.resume(SOURCE)
        # Resumed, not just asked to: a backup records the states it finds and puts them
        # back, so one that found the connector still PAUSED would leave it paused.
        wait_for(f"{SOURCE} RUNNING again", lambda: client.all_running(SOURCE), 120)


def digests(bootstrap: str, topic: str) -> dict[int, list[str]]:
    """Every partition's data records as content digests, in offset order."""
    partitions = admin.topics(bootstrap)[topic]
    marks = admin.watermarks(bootstrap, [(topic, p) for p in range(partitions)])
    out: dict[int, list[str]] = {p: [] for p in range(partitions)}
    for record in reading.stream_ranges(bootstrap, marks):
        out[record.partition].append(record.digest())
    return out


def wait_mirror_ends_like_primary(lab: LabHandle, topic: str) -> None:
    """MM2 resumed and copied the rest: each mirror partition ends in the primary's last
    data record (content). Duplicates would not show here; the full comparison follows."""
    target = mirror_topic(lab, topic)
    partitions = admin.topics(lab.primary)[topic]

    def last_records(bootstrap: str, name: str) -> list[tuple[object, ...] | None]:
        marks = admin.watermarks(bootstrap, [(name, p) for p in range(partitions)])
        tails = reading.read_tails(bootstrap, {k: (lo, hi, 1) for k, (lo, hi) in marks.items()})
        return [
            tails[(name, p)][-1].content() if tails[(name, p)] else None for p in range(partitions)
        ]

    def same() -> bool:
        if target not in admin.topics(lab.mirror):
            return False
        return last_records(lab.mirror, target) == last_records(lab.primary, topic)

    wait_for(f"MM2 to copy the rest of {topic}", same, 300)


def test_backup_under_backlog_completes_and_mm2_resumes_after_the_cut(
    backlog_lab: LabHandle,
) -> None:
    lab = backlog_lab
    plain, tx = f"speed-{uuid.uuid4().hex[:6]}", f"txn-{uuid.uuid4().hex[:6]}"
    build_backlog(lab, plain, tx)
    # No wait for MM2: it has only begun to copy the backlog when the backup stops it.
    result = cli_json(lab, "backup")
    assert result["status"] == "COMPLETED", result
    ours = [p for p in result["manifest"]["partitions"] if p["primary_topic"] in (plain, tx)]
    assert len(ours) == 6
    for p in ours:
        assert p["cut_primary_offset"] >= p["mm2_source_offset"], p
        # The cut is the mirror's real end: its last record is the cut's primary record.
        assert p["head"][-1]["primary_offset"] == p["cut_primary_offset"], p
    ahead = [p for p in ours if p["cut_primary_offset"] > p["mm2_source_offset"]]
    committed = {(p["topic"], p["partition"]): p["mm2_source_offset"] for p in ours}
    assert ahead, f"the test produced no backlog: MM2 had committed everything {committed}"

    journal = Backups(lab.config).store.load(result["backup_id"])
    assert journal is not None
    moved = journal.step("advance_mm2_offsets").result["mm2_offsets_advanced"]
    assert moved == {
        f"{p['primary_topic']}/{p['partition']}": [p["mm2_source_offset"], p["cut_primary_offset"]]
        for p in ahead
    }

    # Restored and verified against the primary, deep included.
    cli_json(lab, "restore", result["backup_id"])
    try:
        for topic in (plain, tx):
            report = cli_json(
                lab, "verify", result["backup_id"], "--deep", "--topic", mirror_topic(lab, topic)
            )
            assert report["verdict"] == "consistent", report
    finally:
        LocalPlatform(lab.config).stop_restored(result["backup_id"])

    # MM2 resumed after the cut: once it has copied the rest, the live mirror holds every
    # primary record exactly once, in order.
    assert_mirror_running(lab)
    for topic in (plain, tx):
        wait_mirror_ends_like_primary(lab, topic)
        assert digests(lab.mirror, mirror_topic(lab, topic)) == digests(lab.primary, topic)


def test_a_foreign_record_after_the_committed_offset_is_still_refused(
    backlog_lab: LabHandle,
) -> None:
    """The mirror's tail is not the primary's continuation: the backup is refused once the
    stopped mirror has settled (not at the catch-up timeout), rolled back, MM2 running."""
    lab = backlog_lab
    topic = f"foreign-{uuid.uuid4().hex[:6]}"
    admin.create_topic(lab.primary, topic, 1)
    producing.produce(
        lab.primary, [Record(topic, 0, -1, 0, b"k", f"v{i}".encode(), ()) for i in range(20)]
    )
    wait_mirror_ends_like_primary(lab, topic)
    target = mirror_topic(lab, topic)
    producing.produce(lab.mirror, [Record(target, 0, -1, 0, b"k", b"not from the primary", ())])
    try:
        failed = cli_json(lab, "backup", expect=3)
        assert failed["exit_code"] == 3
        error = failed["error"]
        assert "failed and was rolled back" in error
        assert f"{target}[0]: the mirror's records after primary offset 19 are not the " in error
        assert "settled" in error and "timed out" not in error
        journal = Backups(lab.config).store.all()[-1]
        assert journal.state == "FAILED_ROLLED_BACK"
        assert journal.error is not None and "settled" in journal.error
        assert_mirror_running(lab)
    finally:
        # Later backups of this lab must not meet the foreign record.
        kafka_tools.delete_topics(lab.primary, [topic])
        kafka_tools.delete_topics(lab.mirror, [target])
