"""Build the class-data-sharing archives that let the lab's JVMs start in about half the
time (`python -m kasten_bp.lab.class_archive`, run by `make install`).

A broker spends most of its start-up loading and verifying the same few thousand classes;
a dynamic CDS archive (`-XX:ArchiveClassesAtExit`) maps them in ready-made instead. Each
archive is dumped by a real JVM doing the real work once: a one-broker cluster that
creates, writes and reads a topic, and a Connect worker running the three MM2 connectors
against it. Idempotent: a JVM whose archive exists is not run again. Without archives
(or with one the JVM refuses) everything works as before, only slower.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from kasten_bp.connect import ConnectClient
from kasten_bp.errors import KastenBpError
from kasten_bp.kafka import admin, producing, reading
from kasten_bp.lab import jars, kraft, mm2, processes
from kasten_bp.lab.ports import free_ports, is_listening
from kasten_bp.records import Record
from kasten_bp.waiting import wait_for

KINDS = ("broker", "connect")
_WAIT = 180.0


def _dump_flags(kind: str) -> list[str]:
    return [f"-XX:ArchiveClassesAtExit={_partial(kind)}", "-Xlog:cds=off"]


def _partial(kind: str) -> Path:
    return jars.class_archive(kind).with_suffix(".partial")


def _publish(kind: str) -> bool:
    """Rename the dumped archive into place, so a half-written one is never used."""
    partial = _partial(kind)
    if not partial.is_file():
        return False
    partial.rename(jars.class_archive(kind))
    return True


def _exercise_broker(bootstrap: str) -> None:
    wait_for("the archive broker to lead its partitions", lambda: _healthy(bootstrap), _WAIT)
    admin.create_topic(bootstrap, "class-archive", 1)
    records = [Record("class-archive", 0, -1, 0, b"k", b"v" * 100) for _ in range(100)]
    producing.produce(bootstrap, records)
    reading.read_ranges(bootstrap, {("class-archive", 0): (0, len(records))})


def _healthy(bootstrap: str) -> bool:
    try:
        return admin.all_partitions_healthy(bootstrap, 1)
    except KastenBpError:
        return False


def _exercise_connect(bootstrap: str, root: Path) -> None:
    spec = mm2.ConnectSpec(port=free_ports(1)[0], run_dir=str(root / "connect"))
    Path(spec.run_dir).mkdir(parents=True)
    spec.config_path.write_text(mm2.worker_properties(spec, bootstrap, 1))
    mm2.start_worker(spec, _dump_flags("connect"))
    try:
        with ConnectClient(spec.url) as client:
            wait_for(f"the archive Connect worker at {spec.url}", client.reachable, _WAIT)
            # Source and target are the same broker: the default policy's renamed topics
            # ("src.…") are never replicated again, so this does not loop.
            for name, cls in zip(mm2.connector_names(), mm2.CONNECTOR_CLASSES, strict=True):
                config = mm2.connector_config(cls, bootstrap, bootstrap, 1, "default")
                client.put_config(name, config)
            for name in mm2.connector_names():

                def running(name: str = name) -> bool:
                    return client.all_running(name)

                wait_for(f"connector {name} RUNNING", running, _WAIT)
    finally:
        processes.stop(spec.handle, timeout=90)  # the archive is written on a clean exit


def ensure_archives() -> list[str]:
    """Dump the archives that are missing; return the kinds now available."""
    missing = [k for k in KINDS if not jars.class_archive(k).is_file()]
    if missing:
        jars.class_archive(missing[0]).parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="kasten-bp-class-archive-") as tmp:
            _dump(missing, Path(tmp))
    return [k for k in KINDS if jars.class_archive(k).is_file()]


def _dump(missing: list[str], root: Path) -> None:
    cluster = kraft.plan_cluster("archive", root, 1)
    kraft.write_configs(cluster)
    kraft.format_storage(cluster)
    broker = cluster.brokers[0]
    kraft.start_broker(cluster, broker, _dump_flags("broker") if "broker" in missing else None)
    try:
        wait_for("the archive broker to listen", lambda: is_listening(broker.port), _WAIT)
        _exercise_broker(cluster.bootstrap)
        if "connect" in missing:
            _exercise_connect(cluster.bootstrap, root)
    finally:
        kraft.stop_brokers(cluster.brokers, timeout=90)
    for kind in missing:
        if not _publish(kind):
            print(f"note: the JVM wrote no {kind} class archive; JVMs start without one")


def main() -> None:
    try:
        jars.ensure_kafka_jars()
        kinds = ensure_archives()
    except KastenBpError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"class archives ready: {', '.join(kinds) or 'none'}", file=sys.stderr)


if __name__ == "__main__":
    main()
