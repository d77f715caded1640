"""KRaft clusters made of local broker processes (each broker also a controller).

A static quorum (`controller.quorum.voters`) is used on purpose: a dynamic quorum records
voter endpoints in the metadata log, and a cluster restored from a snapshot must come up on
new ports.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import BaseModel

from kasten_bp.errors import UsageError
from kasten_bp.lab import jars, processes
from kasten_bp.lab.ports import free_ports, is_listening
from kasten_bp.lab.security import LabSecurity

BROKER_HEAP = os.environ.get("KASTEN_BP_BROKER_HEAP", "384m")
# C1-only JIT and the serial GC keep eight JVMs on two cores responsive.
JVM_FLAGS = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"]
LOG4J2 = Path(__file__).with_name("log4j2.properties")


class BrokerSpec(BaseModel):
    id: int
    port: int
    controller_port: int
    log_dir: str
    run_dir: str

    @property
    def config_path(self) -> Path:
        return Path(self.run_dir) / "server.properties"

    @property
    def handle(self) -> processes.Supervised:
        run = Path(self.run_dir)
        return processes.Supervised("broker", run / "broker.pid", run / "broker.out")

    @property
    def server_log(self) -> Path:
        return Path(self.run_dir) / "server.log"


class ClusterSpec(BaseModel):
    name: str
    cluster_id: str
    brokers: list[BrokerSpec]

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{b.port}" for b in self.brokers)

    def broker(self, broker_id: int) -> BrokerSpec:
        for b in self.brokers:
            if b.id == broker_id:
                return b
        raise UsageError(f"cluster {self.name} has no broker {broker_id}")


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def plan_cluster(name: str, root: Path, size: int, cluster_id: str | None = None) -> ClusterSpec:
    """Choose ports and directories for a cluster of `size` brokers under root/name."""
    if size < 1:
        raise UsageError(f"cluster {name} needs at least 1 broker, got {size}")
    ports = free_ports(2 * size)
    brokers = [
        BrokerSpec(
            id=i + 1,
            port=ports[2 * i],
            controller_port=ports[2 * i + 1],
            log_dir=str(root / name / f"broker-{i + 1}" / "data"),
            run_dir=str(root / name / f"broker-{i + 1}"),
        )
        for i in range(size)
    ]
    return ClusterSpec(name=name, cluster_id=cluster_id or new_cluster_id(), brokers=brokers)


def broker_properties(
    cluster: ClusterSpec, broker: BrokerSpec, security: LabSecurity | None = None
) -> str:
    rf = min(3, len(cluster.brokers))
    voters = ",".join(f"{b.id}@127.0.0.1:{b.controller_port}" for b in cluster.brokers)
    props = {
        "process.roles": "broker,controller",
        "node.id": broker.id,
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{broker.port},CONTROLLER://127.0.0.1:{broker.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker.port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": broker.log_dir,
        "num.partitions": 3,
        "default.replication.factor": rf,
        "min.insync.replicas": 1,
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": rf,
        "offsets.topic.num.partitions": 5,
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": 1,
        "transaction.state.log.num.partitions": 5,
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": 1,
        "group.initial.rebalance.delay.ms": 0,
        # A restarted broker cannot register again until its previous incarnation's
        # session has expired: the session bounds every restart (measured: a 3-broker
        # restart 8.1-8.6 s with 4 s, 5.7-6.4 s with 1.5 s). 2 s leaves 8 heartbeats of
        # slack on a loaded machine.
        "broker.heartbeat.interval.ms": 250,
        "broker.session.timeout.ms": 2000,
        # A restarted broker gives up and exits when its quorum has not accepted its
        # registration after this long (default 60 s): on a loaded machine a whole
        # cluster restarting took longer (CI: "unable to register with the controller
        # quorum"). The lab's own waits end sooner, with a message.
        "initial.broker.registration.timeout.ms": 300000,
        # Every restart replays the metadata log from its newest snapshot. A test session
        # that creates hundreds of topics grew it to 18,000 records with no snapshot
        # (default: one per 20 MiB), replayed in 2-4 s here and up to 25 s under load.
        "metadata.log.max.record.bytes.between.snapshots": 262144,
        "unclean.leader.election.enable": "false",
        # The lab always stops a whole cluster at once. A controlled shutdown needs the
        # controller quorum, which the last brokers to go no longer have: they would hang
        # until killed, without clean-shutdown markers. Skipping it still flushes every log
        # and writes the markers.
        "controlled.shutdown.enable": "false",
        # The cleaner sleeps this long when it finds nothing to compact (default 15 s): a
        # compacted topic of the lab is cleaned within a second or two of becoming dirty.
        "log.cleaner.backoff.ms": 1000,
        "num.io.threads": 2,
        "num.network.threads": 2,
        "num.recovery.threads.per.data.dir": 1,
        "background.threads": 2,
    }
    if security is not None:
        props.update(security.broker_overrides(broker.port, broker.controller_port))
    return "".join(f"{k}={v}\n" for k, v in props.items())


def write_configs(cluster: ClusterSpec, security: LabSecurity | None = None) -> None:
    for broker in cluster.brokers:
        Path(broker.run_dir).mkdir(parents=True, exist_ok=True)
        if security is None:
            broker.config_path.write_text(broker_properties(cluster, broker))
            continue
        # A secured broker's properties hold the inter-broker SCRAM password.
        fd = os.open(broker.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(broker_properties(cluster, broker, security))
        os.chmod(broker.config_path, 0o600)


def format_storage(cluster: ClusterSpec, security: LabSecurity | None = None) -> None:
    """`kafka-storage format` for every broker whose log dir is not formatted yet; a
    secured lab's SCRAM users are created here, in the bootstrap metadata."""
    java = jars.check_java()
    for broker in cluster.brokers:
        if (Path(broker.log_dir) / "meta.properties").exists():
            continue
        cmd = [java, *JVM_FLAGS, *jars.class_archive_flags("broker"), "-cp", jars.classpath()]
        cmd += ["kafka.tools.StorageTool", "format"]
        cmd += ["-t", cluster.cluster_id, "-c", str(broker.config_path)]
        if security is not None:
            cmd += security.scram_format_args()
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise UsageError(
                f"formatting broker {broker.id} of cluster {cluster.name} failed: "
                + (result.stderr or result.stdout).strip().splitlines()[-1]
            )


def start_broker(
    cluster: ClusterSpec, broker: BrokerSpec, archive_flags: list[str] | None = None
) -> processes.Supervised:
    """Start one broker; `archive_flags` replaces the class-archive flags (to dump one)."""
    if broker.handle.alive():
        return broker.handle
    java = jars.check_java()
    argv = [
        java,
        f"-Xmx{BROKER_HEAP}",
        "-Xms64m",
        *JVM_FLAGS,
        *(jars.class_archive_flags("broker") if archive_flags is None else archive_flags),
        f"-Dlog4j2.configurationFile={LOG4J2}",
        f"-Dkasten.log.file={broker.server_log}",
        "-cp",
        jars.classpath(),
        "kafka.Kafka",
        str(broker.config_path),
    ]
    return processes.start("broker", argv, Path(broker.run_dir), marker=str(broker.config_path))


def start_cluster(cluster: ClusterSpec) -> None:
    for broker in cluster.brokers:
        start_broker(cluster, broker)


def stop_brokers(brokers: list[BrokerSpec], timeout: float = 60.0) -> list[int]:
    """Stop brokers concurrently. Each is a KRaft voter, and Kafka completes a voter's
    graceful shutdown at once only while it knows a live leader other than itself (or is
    the only voter); the last voter standing waits out the 5 s fixed in Kafka's
    KafkaRaftClientDriver. Together, that wait is paid once (measured on the lab's 3
    brokers: 5.6-6.0 s in all); leader first then the rest, 6.0-6.4 s; one at a time,
    leader first, 8-12 s on a busy machine (the last alone still waits 5 s).
    Returns the ids of the brokers that had to be killed (SIGKILL) after `timeout`."""
    if not brokers:
        return []
    with ThreadPoolExecutor(max_workers=len(brokers)) as pool:
        killed = list(pool.map(lambda b: processes.stop(b.handle, timeout=timeout), brokers))
    return [b.id for b, k in zip(brokers, killed, strict=True) if k]


def brokers_listening(cluster: ClusterSpec) -> bool:
    return all(b.handle.alive() and is_listening(b.port) for b in cluster.brokers)


def dead_broker(cluster: ClusterSpec) -> BrokerSpec | None:
    """A broker whose process has exited, if any (to fail a wait early with its log)."""
    for b in cluster.brokers:
        if not b.handle.alive():
            return b
    return None


# kafka.Kafka logs this first in every run: where the last run's lines begin.
_RUN_START = "Registered signal handlers"
# The line that says why a broker gave up, e.g. "Shutting down because we were unable to
# register with the controller quorum." or "Fatal error during broker startup".
_FATAL = re.compile(r"\] (?:ERROR|FATAL) (.*(?:Shutting down because|[Ff]atal|Exiting).*)")
_EXCEPTION = re.compile(r"(?:Caused by: )?[\w.$]+(?:Exception|Error): (.+)")
_LOGGER = re.compile(r"\s+\([\w.$]+\)$")
_TAIL_BYTES = 4 << 20  # a start-up's lines fit many times over; a session's log may not


def exit_reason(broker: BrokerSpec) -> str:
    """Why the broker's last run ended: its first fatal line and the messages of the
    exception chain logged with it; else the log's last lines."""
    lines = _tail_lines(broker.server_log)
    starts = [i for i, line in enumerate(lines) if _RUN_START in line]
    run = lines[starts[-1] :] if starts else lines
    for i, line in enumerate(run):
        found = _FATAL.search(line)
        if found is None:
            continue
        parts = [_LOGGER.sub("", found.group(1))]
        for trace in run[i + 1 :]:
            if trace.startswith("["):
                break
            cause = _EXCEPTION.match(trace.strip())
            if cause is not None and not any(cause.group(1) in part for part in parts):
                parts.append(cause.group(1))
        return ": ".join(parts)
    # No fatal line: this run's last lines, else the JVM's own output (a failed launch).
    run = [line for line in run if line.strip()] or [
        line for line in _tail_lines(broker.handle.log_file) if line.strip()
    ]
    return " | ".join(run[-5:]) if run else "(no log)"


def _tail_lines(path: Path) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - _TAIL_BYTES))
            return f.read().decode(errors="replace").splitlines()
    except OSError:
        return []
