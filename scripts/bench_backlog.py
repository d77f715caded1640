"""`make bench`, the backlog case (issue 33): a consistent backup started while MM2 copies a
backlog, against the bare stop + cp -a + start of the same brokers, measured right after it.

MM2's source connector is paused while the primary takes the load, then resumed, and the
backup starts at once: MM2 is busy copying when the backup stops it, on any machine. The
figures: the backup's mirror-unavailable and MM2-stopped seconds, the bare operation's, and
how far the cut ran past MM2's committed offsets (the records its producer delivered as the
task stopped)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kasten_bp.backup import Backups
from kasten_bp.config import Config
from kasten_bp.kafka import admin
from kasten_bp.lab.lab import Lab
from kasten_bp.lab.load import LoadSpec, run_load
from kasten_bp.waiting import wait_for

TOPIC = "bench-backlog"
SOURCE = "MirrorSourceConnector"


def run(
    lab: Lab,
    config: Config,
    backups: Backups,
    records: int,
    take_backup: Callable[[Backups], tuple[dict[str, Any], Any, float]],
    bare: Callable[[], float],
    log: Callable[[str], None],
) -> dict[str, Any]:
    source = next(name for name in config.connect.connectors if name.endswith(SOURCE))
    # The topic mirrored first, so MM2's tasks already own its partitions at the resume.
    run_load(config.primary.bootstrap, LoadSpec(topic=TOPIC, records=30, seed=10))
    wait_for(
        f"MM2 to mirror {TOPIC}",
        lambda: sum(high for _, high in marks(config).values()) >= 30,
        120,
    )
    with lab.connect_client(lab.require_state()) as client:
        client.pause(source)
        try:
            log(f"backlog: MM2 paused, producing {records:,} records to {TOPIC}")
            run_load(config.primary.bootstrap, LoadSpec(topic=TOPIC, records=records, seed=9))
        finally:
            client.resume(source)
        # Resumed, not just asked to: a backup records the states it finds and puts them
        # back, so one that found the connector still PAUSED would leave it paused.
        wait_for(f"{source} RUNNING again", lambda: client.all_running(source), 120)
    log("backlog: MM2 resumed, consistent backup at once")
    summary, manifest, seconds = take_backup(backups)
    ours = [p for p in manifest.partitions if p.primary_topic == TOPIC]
    past = sum(
        (p.cut_primary_offset or 0) - (p.mm2_source_offset or 0)
        for p in ours
        if p.cut_primary_offset is not None and p.mm2_source_offset is not None
    )
    log("backlog: bare stop + cp -a + start of the mirror brokers")
    bare_seconds = bare()
    if past == 0:
        log("backlog: note: MM2 had committed everything the mirror held (no records past)")
    return {
        "backup_id": summary["backup_id"],
        "seconds": round(seconds, 3),
        "mirror_unavailable_seconds": summary["mirror_unavailable_seconds"],
        "mm2_stopped_seconds": summary["downtime_seconds"],
        "bare_seconds": round(bare_seconds, 3),
        "records_past_mm2_committed": past,
        "partitions_past_mm2_committed": sum(
            1 for p in ours if (p.cut_primary_offset or 0) > (p.mm2_source_offset or 0)
        ),
        "steps": {s["name"]: s["seconds"] for s in summary["steps"]},
    }


def marks(config: Config) -> dict[tuple[str, int], tuple[int, int]]:
    topic = config.replication.mirror_topic(TOPIC)
    count = admin.topics(config.mirror.bootstrap).get(topic, 0)
    return admin.watermarks(config.mirror.bootstrap, [(topic, p) for p in range(count)])
