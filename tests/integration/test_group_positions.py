"""Group positions translated onto a restored cluster (issue 8), on the real lab: a
transactional topic (commit markers and aborted batches make the primary's offsets sparse
while the mirror's are dense, so the translation is not the identity), committed offsets
mid-batch, right after a commit marker, at 0, at the cut and past it.

The oracle does not use the translation: a consumer placed at the translated offset on the
restored cluster must read exactly the primary's data records from P up to the cut, by
content."""

from __future__ import annotations

import uuid

import pytest

from kasten_bp.consistency.group_positions import Committed, cut_end, positions
from kasten_bp.kafka import admin, producing
from kasten_bp.manifest import Manifest
from kasten_bp.records import Record

from . import kafka_tools
from .helpers import LabHandle, cli_json, contents, partition_records, wait_mirrored

pytestmark = pytest.mark.integration


def test_positions_are_exact_across_renumbering_markers_and_the_cut(
    lab: LabHandle, restored_ids: list[str]
) -> None:
    topic = f"grp-{uuid.uuid4().hex[:8]}"
    admin.create_topic(lab.primary, topic, 2)
    batches = [
        [Record(topic, i % 2, -1, 0, f"k{j}".encode(), f"b{i}-{j}".encode(), ()) for j in range(8)]
        for i in range(8)
    ]
    kafka_tools.produce_transactional(lab.primary, batches, f"tx-{topic}", abort={2, 5})
    wait_mirrored(lab.primary, lab.mirror, topic)
    result = cli_json(lab, "backup")
    backup_id = result["backup_id"]
    manifest = Manifest.model_validate(result["manifest"])
    heads = [h for h in manifest.partitions if h.primary_topic == topic]
    restored = cli_json(lab, "restore", backup_id)["bootstrap"]
    restored_ids.append(backup_id)
    # Written after the cut: a group that consumed these is past the backup.
    producing.produce(lab.primary, [Record(topic, 0, -1, 0, b"late", b"late", ())] * 5)

    primary = {p: partition_records(lab.primary, topic, p) for p in range(2)}
    ends = {h.partition: cut_end(h) for h in heads}
    assert ends[0] is not None and ends[1] is not None
    # Partition 0 holds batches 0, 2 (aborted), 4, 6; partition 1 holds 1, 3, 5 (aborted), 7.
    data0 = [r.offset for r in primary[0]]
    after_marker = data0[8]  # the first record of the second committed batch on partition 0
    assert after_marker > data0[7] + 1  # a marker and an aborted batch lie between
    wanted = [
        Committed("mid-batch", topic, 0, data0[3]),
        Committed("after-marker", topic, 0, after_marker),
        Committed("at-start", topic, 1, 0),
        Committed("at-cut", topic, 1, ends[1]),
        Committed("past-cut", topic, 0, admin.watermarks(lab.primary, [(topic, 0)])[(topic, 0)][1]),
    ]
    found = {p.committed.group: p for p in positions(lab.primary, restored, heads, wanted)}

    for name in ("mid-batch", "after-marker", "at-start", "at-cut"):
        position = found[name]
        c = position.committed
        t = position.translation
        assert t.method == "exact" and t.reread == 0, (name, t)
        assert position.restored_topic == topic
        assert t.restored_offset is not None
        head = next(h for h in heads if h.partition == c.partition)
        end = ends[c.partition]
        assert end is not None
        would_read = [
            r
            for r in partition_records(restored, topic, c.partition)
            if t.restored_offset <= r.offset < head.end_offset
        ]
        unread = [r for r in primary[c.partition] if c.offset <= r.offset < end]
        assert contents(would_read) == contents(unread), name

    late = found["past-cut"].translation
    assert (late.method, late.restored_offset) == ("past_cut", None)
    assert "5 consumed record(s) are not in the backup" in late.detail
