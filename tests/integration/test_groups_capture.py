"""Consumer groups recorded at the cut (issue 8), on the real lab: real groups committing on
the primary through `lab consume`, a real MM2 emitting checkpoints, real backups."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import ConsumerGroupTopicPartitions

from kasten_bp.kafka import admin, clients, groups, producing
from kasten_bp.records import Record
from kasten_bp.waiting import wait_for

from .helpers import LabHandle, wait_mirrored

pytestmark = pytest.mark.integration

RECORDS = 60  # 20 per partition


def run(*args: str, expect: int = 0) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "kasten_bp.cli", *args, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == expect, result.stderr[-2000:]
    return json.loads(result.stdout)


def lab_consume(lab: LabHandle, group: str, topic: str, records: int | None = None) -> Any:
    assert lab.lab is not None
    limit = ["--records", str(records)] if records is not None else []
    args = ["lab", "consume", "--workdir", str(lab.lab.workdir), "--group", group]
    return run(*args, "--topic", topic, *limit)


def backup(config: Path, *args: str) -> Any:
    result = run("backup", "--config", str(config), *args)
    assert result["status"] == "COMPLETED", result
    return result


def config_with_groups(
    lab: LabHandle, tmp_path: Path, include: list[str], exclude: list[str]
) -> Path:
    """The lab's kasten-bp.yaml with another groups section (every path in it is absolute)."""
    data = yaml.safe_load(lab.config_path.read_text())
    data["groups"] = {"include": include, "exclude": exclude}
    path = tmp_path / "kasten-bp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def admin_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], tuple[int, str]]:
    """The group's committed offsets as the admin API's OffsetFetch reports them: a second
    read path, independent of the one the backup uses."""
    client = clients.admin(bootstrap)
    futures = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    (result,) = [f.result() for f in futures.values()]
    return {
        (str(tp.topic), tp.partition): (tp.offset, tp.metadata or "")
        for tp in result.topic_partitions
        if tp.offset >= 0
    }


def recorded(manifest: dict[str, Any], group: str) -> dict[tuple[str, int], dict[str, Any]]:
    (entry,) = [g for g in manifest["groups"] if g["group"] == group]
    return {(p["topic"], p["partition"]): p for p in entry["partitions"]}


class LiveMember:
    """A group member that reads the topic to its end, commits, and stays in the group
    (state STABLE) until stopped."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.consumer = clients.consumer(
            bootstrap, {"group.id": group, "enable.auto.commit": False}
        )
        self.topic = topic
        self.read = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.consumer.subscribe([self.topic])
        while not self._stop.is_set():
            msg = self.consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            self.read += 1
            self.consumer.commit(message=msg, asynchronous=False)
        self.consumer.close()

    def __enter__(self) -> LiveMember:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


@pytest.fixture
def filled(lab: LabHandle, topic: str) -> Iterator[str]:
    records = [Record(topic, i % 3, -1, 0, b"k", f"v-{i}".encode(), ()) for i in range(RECORDS)]
    # First one record per partition, mirrored on its own: MM2 then writes an offset sync
    # at upstream offset 0 for each partition, so it can checkpoint any offset a group
    # commits. In one burst it may not: MM2 keeps at most 10 offset syncs in flight and
    # replaces a partition's unsent sync with its newest (OffsetSyncWriter), and a
    # partition whose only sync is at offset 19 has no checkpoint below it.
    for batch in (records[:3], records[3:]):
        producing.produce(lab.primary, batch)
        wait_mirrored(lab.primary, lab.mirror, topic)
    yield topic


def test_a_consistent_backup_records_the_groups_committed_offsets_at_the_cut(
    lab: LabHandle, filled: str, tmp_path: Path
) -> None:
    topic = filled
    app, skipped, live = f"{topic}-app", f"{topic}-skip", f"{topic}-live"
    consumed = lab_consume(lab, app, topic, records=25)
    assert consumed["group"] == app and consumed["records"] == 25
    assert sum(consumed["committed"].values()) == 25  # mid-stream: 25 of 60 records
    assert lab_consume(lab, skipped, topic, records=10)["records"] == 10

    # MM2 checkpoints the group (every emit.checkpoints.interval.seconds: 1 in the lab).
    cp_topic = groups.checkpoints_topic("primary")
    committed_app = {int(p): o for p, o in consumed["committed"].items()}

    def checkpointed() -> bool:
        latest = groups.latest_checkpoints(lab.mirror, cp_topic).latest
        return all(
            (c := latest.get((app, topic, p))) is not None and c.upstream_offset == o
            for p, o in committed_app.items()
        )

    wait_for(f"MM2 to checkpoint group {app}", checkpointed, 60)

    config = config_with_groups(lab, tmp_path, [f"{topic}-.*"], [f"{topic}-skip"])
    partitions = [(topic, p) for p in range(3)]
    with LiveMember(lab.primary, live, topic) as member:
        wait_for(f"group {live} to read {topic} to its end", lambda: member.read == RECORDS, 60)
        groups_before = set(groups.group_ids(lab.primary))
        ends_before = admin.watermarks(lab.primary, partitions)
        result = backup(config)
        ends_after = admin.watermarks(lab.primary, partitions)
        groups_after = set(groups.group_ids(lab.primary))
        live_offsets = admin_offsets(lab.primary, live)

    # Reading the groups wrote nothing to the primary: no records, no group of kasten-bp's.
    assert ends_after == ends_before
    assert groups_after == groups_before
    assert not [g for g in groups_after if g.startswith("kasten-bp")]
    assert "capture_groups" in [s["name"] for s in result["steps"]]

    manifest = result["manifest"]
    # groups.include selected the topic's groups, groups.exclude dropped one of them.
    assert [g["group"] for g in manifest["groups"]] == [app, live]
    states = {g["group"]: (g["state"], g["members"]) for g in manifest["groups"]}
    assert states == {app: ("EMPTY", 0), live: ("STABLE", 1)}

    # Exactly what the admin API reports, partition by partition.
    app_offsets = admin_offsets(lab.primary, app)
    mine = recorded(manifest, app)
    assert {k: (p["committed_offset"], p["metadata"]) for k, p in mine.items()} == app_offsets
    assert {p: o for (_, p), (o, _) in app_offsets.items()} == committed_app
    theirs = recorded(manifest, live)
    assert {k: (p["committed_offset"], p["metadata"]) for k, p in theirs.items()} == live_offsets
    assert sum(p["committed_offset"] for p in theirs.values()) == RECORDS
    # The consumers commit with their records' leader epochs; the lab's topic never moved.
    assert all(p["leader_epoch"] == 0 for p in [*mine.values(), *theirs.values()])

    # MM2's latest checkpoint for each of the app's partitions, as the mirror held it.
    mirror_ends = {
        (h["topic"], h["partition"]): h["end_offset"]
        for h in manifest["partitions"]
        if h["topic"] == topic
    }
    for key, p in mine.items():
        cp = p["checkpoint"]
        assert cp is not None, key
        assert cp["upstream_offset"] == p["committed_offset"]
        assert 0 <= cp["downstream_offset"] <= mirror_ends[key]


def test_group_on_the_command_line_replaces_the_configured_include(
    lab: LabHandle, filled: str
) -> None:
    topic = filled
    first, second = f"{topic}-first", f"{topic}-second"
    lab_consume(lab, first, topic, records=4)
    read_all = lab_consume(lab, second, topic)  # no --records: to the end of every partition
    assert read_all["records"] == RECORDS and read_all["reached_end"]
    assert read_all["committed"] == {"0": 20, "1": 20, "2": 20}

    # The lab's config includes every group; --group narrows it to one.
    result = backup(lab.config_path, "--group", f"{topic}-sec.*")
    assert [g["group"] for g in result["manifest"]["groups"]] == [second]
    assert recorded(result["manifest"], second) and all(
        p["committed_offset"] == 20 for p in recorded(result["manifest"], second).values()
    )


def test_a_group_regex_that_does_not_compile_is_a_usage_error(lab: LabHandle) -> None:
    out = run("backup", "--config", str(lab.config_path), "--group", "(", expect=2)
    assert "--group" in out["error"] and "not a valid regex" in out["error"]
    out = run("backup", "--config", str(lab.config_path), "--mode", "hot", "--group", "x", expect=2)
    assert "consistent mode only" in out["error"]
