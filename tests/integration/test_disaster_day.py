"""The disaster day (issue 26) on a real lab of its own: a consistent backup under load
with consumer groups on a plain, a transactional and a compacted topic, then the primary
killed (SIGKILL). Restore, verify and the groups must stand on what the backup recorded.

The lab is this module's: its primary is killed, which the session lab's other tests
cannot live with."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import TopicPartition

from kasten_bp.backup import Backups
from kasten_bp.kafka import admin, clients, producing, reading
from kasten_bp.lab.lab import Lab
from kasten_bp.platforms.local import LocalPlatform
from kasten_bp.records import Record

from . import kafka_tools
from .helpers import BackgroundProducer, LabHandle, cli_json_for, wait_mirrored
from .snapshot_surgery import doctor, replace_bytes
from .test_verify_cases import consume

Key = tuple[str, int]


@dataclass
class Drill:
    lab: LabHandle
    config: Path  # the lab's config, with a short verify.primary_timeout_seconds
    backup_id: str
    topics: dict[str, str]  # kind -> topic
    groups: dict[str, str]  # kind -> group
    # (group, topic, partition) -> the record the group would have read next on the primary
    next_records: dict[tuple[str, str, int], Record]
    restored: str = ""


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drill]:
    workdir = Path(tmp_path_factory.mktemp("disaster"))
    lab = Lab(workdir)
    lab.up(primary_brokers=1, mirror_brokers=1)
    handle = LabHandle(lab, lab.config_path)
    try:
        yield _prepare(handle, workdir)
    finally:
        lab.down()


def _prepare(lab: LabHandle, workdir: Path) -> Drill:
    tag = uuid.uuid4().hex[:6]
    topics = {"plain": f"plain-{tag}", "txn": f"txn-{tag}", "compacted": f"comp-{tag}"}
    admin.create_topic(lab.primary, topics["plain"], 3)
    admin.create_topic(lab.primary, topics["txn"], 2)
    # Compacted, with the default segment settings: the cleaner never runs during the test.
    admin.create_topic(lab.primary, topics["compacted"], 1, config={"cleanup.policy": "compact"})
    producing.produce(
        lab.primary,
        [
            Record(topics["plain"], i % 3, -1, 0, f"k{i}".encode(), f"val-{i:05d}".encode(), ())
            for i in range(600)
        ],
    )
    batches = [
        [Record(topics["txn"], i % 2, -1, 0, b"k", f"t{i}-{j}".encode(), ()) for j in range(20)]
        for i in range(10)
    ]
    kafka_tools.produce_transactional(lab.primary, batches, f"tx-{tag}", abort={2, 7})
    producing.produce(
        lab.primary,
        [
            Record(topics["compacted"], 0, -1, 0, f"key{i}".encode(), f"c{i}".encode(), ())
            for i in range(120)
        ],
    )
    groups = {kind: f"g-{kind}-{tag}" for kind in topics}
    for kind, records in (("plain", 250), ("txn", 70), ("compacted", 50)):
        consume(lab.lab.workdir, groups[kind], topics[kind], records)  # type: ignore[union-attr]
    for topic in topics.values():
        wait_mirrored(lab.primary, lab.mirror, topic)

    config = workdir / "drill.yaml"
    raw = yaml.safe_load(lab.config_path.read_text())
    raw["verify"] = {"primary_timeout_seconds": 3}
    config.write_text(yaml.safe_dump(raw))

    # What each group would read next on the primary: read before the backup, so only
    # records the backup holds (a record written later is past its cut).
    next_records = {}
    for kind, topic in topics.items():
        keys = [(topic, p) for p in range(admin.topics(lab.primary)[topic])]
        committed = kafka_tools.committed_group_offsets(lab.primary, groups[kind], keys)
        marks = admin.watermarks(lab.primary, sorted(committed))
        for (t, p), offset in committed.items():
            end = marks[(t, p)][1]
            following = reading.read_ranges(lab.primary, {(t, p): (offset, end)})[(t, p)]
            if following:
                next_records[(groups[kind], t, p)] = following[0]
    assert {g for g, _, _ in next_records} == set(groups.values()), next_records

    # Under load: a producer writes to the plain topic throughout the backup.
    with BackgroundProducer(lab.primary, topics["plain"], rate=50):
        backup = cli_json_for(config, "backup")
    assert backup["status"] == "COMPLETED", backup
    return Drill(lab, config, backup["backup_id"], topics, groups, next_records)


def first_records(bootstrap: str, group: str, keys: list[Key]) -> dict[Key, Record]:
    """What a consumer of `group` reads first on each partition, from its committed offset."""
    consumer = clients.consumer(
        bootstrap,
        {"group.id": group, "enable.auto.commit": False, "isolation.level": "read_committed"},
    )
    try:
        tps = consumer.committed([TopicPartition(t, p) for t, p in keys], timeout=30)
        consumer.assign([tp for tp in tps if tp.offset >= 0])
        out: dict[Key, Record] = {}
        for _ in range(200):
            for msg in consumer.consume(num_messages=100, timeout=0.5):
                if msg.error() is not None:
                    continue
                key = (str(msg.topic()), int(msg.partition() or 0))
                if key not in out:
                    _, ts = msg.timestamp()
                    headers = tuple((str(n), v) for n, v in (msg.headers() or []))
                    out[key] = Record(
                        key[0], key[1], msg.offset() or 0, ts, msg.key(), msg.value(), headers
                    )  # type: ignore[arg-type]
            if len(out) == len([tp for tp in tps if tp.offset >= 0]):
                break
        return out
    finally:
        consumer.close()


def test_the_primary_killed_restore_with_groups_and_verify_stand_on_the_manifest(
    drill: Drill,
) -> None:
    lab = drill.lab
    assert lab.lab is not None
    lab.lab.fail("primary")
    assert not any(b.handle.alive() for b in lab.lab.require_state().primary.brokers)

    restored = cli_json_for(drill.config, "restore", drill.backup_id, "--with-groups")
    drill.restored = restored["bootstrap"]
    not_applied = [
        (g["group"], p["topic"], p["partition"], p["method"])
        for g in restored["groups"]
        for p in g["partitions"]
        if p["restored_offset"] is None
    ]
    assert not_applied == []

    for deep in ((), ("--deep",)):
        report = cli_json_for(drill.config, "verify", drill.backup_id, *deep)
        assert report["compared_with"] == "manifest"
        assert report["primary"]["reachable"] is False
        assert "cannot be reached" in report["primary"]["error"]
        assert report["verdict"] == "consistent", report
        assert report["groups_verdict"] == "consistent"
        ours = [p for p in report["partitions"] if p["topic"] in drill.topics.values()]
        assert len(ours) == 6 and all(p["status"] == "consistent" for p in ours)
        if deep:
            sealed = [p for p in ours if p["topic"] != drill.topics["compacted"]]
            assert all("unsealed" not in p["detail"] for p in sealed)
            # A compacted topic is never sealed: checked by its heads, and the report says so.
            (compacted,) = [p for p in ours if p["topic"] == drill.topics["compacted"]]
            assert compacted["detail"].startswith("unsealed (compacted")

    # A real consumer of each group resumes on the restored cluster at exactly the record
    # it would have read next on the primary.
    for group in drill.groups.values():
        wanted = {(t, p): r for (g, t, p), r in drill.next_records.items() if g == group}
        got = first_records(drill.restored, group, sorted(wanted))
        assert {k: r.content() for k, r in got.items()} == {
            k: r.content() for k, r in wanted.items()
        }, group


def test_against_primary_with_the_primary_down_is_one_line_exit_2(drill: Drill) -> None:
    assert drill.restored, "runs after the drill's restore"
    done = _run(drill.config, "verify", drill.backup_id, "--against", "primary")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert lines[0].startswith("error: --against primary: the primary ")


def test_faults_are_caught_against_the_manifest(drill: Drill) -> None:
    """Each exit 1, naming the partition: a value changed below the head window (--deep),
    a group offset moved ahead after apply, a foreign record appended."""
    assert drill.restored, "runs after the drill's restore"
    lab = drill.lab
    plain = drill.topics["plain"]
    backups = Backups(lab.config)

    # A value changed far below the head window, its batch CRC recomputed: only the sealed
    # content can see it.
    changed_id = f"{drill.backup_id}-changed"
    doctor(
        backups, drill.backup_id, changed_id, replace_bytes(plain, 1, b"val-00004", b"val-9999X")
    )
    try:
        cli_json_for(drill.config, "restore", changed_id, "--against", "manifest")
        heads = cli_json_for(drill.config, "verify", changed_id, "--against", "manifest")
        assert heads["verdict"] == "consistent"  # below the heads: invisible to them
        deep = cli_json_for(
            drill.config, "verify", changed_id, "--against", "manifest", "--deep", expect=1
        )
        bad = {
            (p["topic"], p["partition"]): p
            for p in deep["partitions"]
            if p["status"] != "consistent"
        }
        assert list(bad) == [(plain, 1)]
        assert "differ from the content sealed at the backup" in bad[(plain, 1)]["detail"]
    finally:
        LocalPlatform(lab.config).stop_restored(changed_id)

    # A group offset moved ahead on the restored cluster after apply.
    group = drill.groups["plain"]
    moved = min(p for g, t, p in drill.next_records if g == group)
    committed = kafka_tools.committed_group_offsets(drill.restored, group, [(plain, moved)])
    _commit(drill.restored, group, plain, moved, committed[(plain, moved)] + 5)
    report = cli_json_for(
        drill.config, "verify", drill.backup_id, "--against", "manifest", expect=1
    )
    assert report["groups_verdict"] == "inconsistent"
    standing = {g["group"]: g for g in report["groups"]}[group]
    assert standing["status"] == "ahead"
    assert {(p["topic"], p["partition"]): p["status"] for p in standing["partitions"]}[
        (plain, moved)
    ] == "ahead"
    _commit(drill.restored, group, plain, moved, committed[(plain, moved)])

    # A foreign record appended to a restored partition.
    producing.produce(drill.restored, [Record(plain, 2, -1, 0, b"x", b"foreign", ())])
    report = cli_json_for(
        drill.config, "verify", drill.backup_id, "--against", "manifest", expect=1
    )
    bad = {
        (p["topic"], p["partition"]): p for p in report["partitions"] if p["status"] != "consistent"
    }
    assert list(bad) == [(plain, 2)]
    assert "restored end offset" in bad[(plain, 2)]["detail"]


def _commit(bootstrap: str, group: str, topic: str, partition: int, offset: int) -> None:
    consumer = clients.consumer(bootstrap, {"group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)
    finally:
        consumer.close()


def _run(config: Path, *args: str) -> Any:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "kasten_bp.cli", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
    )
