"""The embedded lab: a primary and a mirror KRaft cluster with MM2 between them.

Everything lives under one directory: lab.json (the plan: ports, ids, dirs), one run dir
per process with its pid file and logs, and kasten-bp.yaml for later commands.
`lab up --secure` adds security/ (CA, certificates, SCRAM passwords: see lab/security.py),
TLS + SCRAM-SHA-512 listeners, ACLs, and Connect REST over TLS. `lab up --targets N` adds N
single-broker target clusters (target-1, ...) that `replay --to` writes into.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from kasten_bp.config import (
    ClientSecurity,
    Config,
    ConnectConfig,
    KafkaEndpoint,
    LocalPlatformConfig,
    ReplicationConfig,
    SaslConfig,
    SslConfig,
    write_config,
)
from kasten_bp.connect import PAUSED, RUNNING, STOPPED, ConnectClient, reached
from kasten_bp.errors import KastenBpError, PermanentError, UsageError
from kasten_bp.kafka import admin, clients
from kasten_bp.lab import jars, kraft, mm2, processes, security
from kasten_bp.lab.kraft import ClusterSpec
from kasten_bp.lab.ports import free_ports, is_listening
from kasten_bp.lab.security import LabSecurity
from kasten_bp.waiting import announce, wait_for

STATE_FILE = "lab.json"
CONFIG_FILE = "kasten-bp.yaml"
# A broker that exits while its cluster starts is started again this many times: under
# load a start-up can fail for a reason that clears (its quorum too slow to register it).
START_RETRIES = 2


class LabState(BaseModel):
    version: int = 1
    primary: ClusterSpec
    mirror: ClusterSpec
    connect: mm2.ConnectSpec
    replication_policy: str = "identity"
    restored: dict[str, ClusterSpec] = {}
    # `lab up --secure`: TLS + SCRAM everywhere. None keeps a plain lab's JSON as it was.
    security: LabSecurity | None = None
    # Plain single-broker clusters that `replay --to` writes into (`lab up --targets N`).
    targets: list[ClusterSpec] = []


class Lab:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir.resolve()

    @property
    def state_path(self) -> Path:
        return self.workdir / STATE_FILE

    @property
    def config_path(self) -> Path:
        return self.workdir / CONFIG_FILE

    @property
    def catalog_dir(self) -> Path:
        return self.workdir / "catalog"

    def load_state(self) -> LabState | None:
        if not self.state_path.exists():
            return None
        return LabState.model_validate_json(self.state_path.read_text())

    def save_state(self, state: LabState) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(state.model_dump_json(indent=2, exclude_none=True))
        os.replace(tmp, self.state_path)

    def require_state(self) -> LabState:
        state = self.load_state()
        if state is None:
            raise UsageError(
                f"no lab in {self.workdir} (run `kasten-bp lab up --workdir {self.workdir}`)"
            )
        return state

    # --- up -------------------------------------------------------------------------

    def up(
        self,
        primary_brokers: int = 1,
        mirror_brokers: int = 3,
        policy: str = "identity",
        timeout: float = 240.0,
        secure: bool = False,
        targets: int = 0,
    ) -> dict[str, Any]:
        if primary_brokers < 1:
            raise UsageError(f"--primary-brokers must be at least 1, got {primary_brokers}")
        if mirror_brokers < 1:
            raise UsageError(f"--mirror-brokers must be at least 1, got {mirror_brokers}")
        if policy not in mm2.POLICIES:
            raise UsageError(f"--replication-policy must be identity or default, got {policy}")
        if targets < 0:
            raise UsageError(f"--targets must be 0 or more, got {targets}")
        if targets and secure:
            raise UsageError("--targets is not supported with --secure yet: targets are plain")
        jars.ensure_kafka_jars()
        state = self.load_state()
        if state is not None:
            self._check_same_shape(state, primary_brokers, mirror_brokers, policy)
            if (state.security is not None) != secure:
                have, want = ("secured", "plain") if state.security else ("plain", "secured")
                raise UsageError(
                    f"{self.workdir} holds a {have} lab, not a {want} one: "
                    f"{'drop' if secure else 'add'} --secure or choose another --workdir"
                )
        else:
            if self.workdir.exists() and any(self.workdir.iterdir()):
                raise UsageError(
                    f"{self.workdir} is not empty and holds no lab: choose another --workdir"
                )
            self.workdir.mkdir(parents=True, exist_ok=True)
            state = LabState(
                primary=kraft.plan_cluster("primary", self.workdir, primary_brokers),
                mirror=kraft.plan_cluster("mirror", self.workdir, mirror_brokers),
                connect=mm2.ConnectSpec(
                    port=free_ports(1)[0],
                    run_dir=str(self.workdir / "connect"),
                    https=True if secure else None,
                ),
                replication_policy=policy,
                security=security.generate(self.workdir / "security") if secure else None,
            )
            self.save_state(state)
        self._plan_targets(state, targets)
        self.use_admin(state)
        self._start(state, timeout)
        self._write_config(state)
        return self.describe(state)

    def _plan_targets(self, state: LabState, count: int) -> None:
        """Add target clusters until there are `count` (never removes one: a target may hold
        a replay someone still looks at)."""
        while len(state.targets) < count:
            name = f"target-{len(state.targets) + 1}"
            state.targets.append(kraft.plan_cluster(name, self.workdir, 1))
        self.save_state(state)

    def start_targets(self, count: int, timeout: float = 240.0) -> list[str]:
        """Plan, start and wait for `count` target clusters of a running plain lab (no other
        process is touched); kasten-bp.yaml gains them. Returns their bootstraps."""
        state = self.require_state()
        if state.security is not None:
            raise UsageError("target clusters are not supported in a secured lab yet")
        self._plan_targets(state, count)
        self._start_clusters(state.targets, None, timeout)
        self._write_config(state)
        return [t.bootstrap for t in state.targets]

    def stop_targets(self) -> None:
        """Stop the target clusters (their data stays; `lab up` starts them again)."""
        state = self.require_state()
        kraft.stop_brokers([b for t in state.targets for b in t.brokers])

    def _start_clusters(
        self, clusters: list[ClusterSpec], sec: LabSecurity | None, timeout: float
    ) -> None:
        for cluster in clusters:
            kraft.write_configs(cluster, sec)
            kraft.format_storage(cluster, sec)
            kraft.start_cluster(cluster)
        for cluster in clusters:
            self.wait_cluster_ready(cluster, timeout)

    def _check_same_shape(self, state: LabState, primary: int, mirror: int, policy: str) -> None:
        have = (len(state.primary.brokers), len(state.mirror.brokers), state.replication_policy)
        if have != (primary, mirror, policy) and self.any_running(state):
            raise UsageError(
                f"{self.workdir} belongs to a running lab with {have[0]} primary and {have[1]} "
                f"mirror brokers ({have[2]} policy): run `kasten-bp lab down --workdir "
                f"{self.workdir}` first or choose another --workdir"
            )
        if have != (primary, mirror, policy):
            raise UsageError(
                f"{self.workdir} holds a stopped lab with {have[0]} primary and {have[1]} mirror "
                f"brokers ({have[2]} policy): choose another --workdir or remove it"
            )

    def _start(self, state: LabState, timeout: float) -> None:
        self._start_clusters([state.primary, state.mirror, *state.targets], state.security, timeout)
        if state.security is not None:
            self._create_acls(state, timeout)
        state.connect.config_path.parent.mkdir(parents=True, exist_ok=True)
        state.connect.config_path.write_text(
            mm2.worker_properties(
                state.connect, state.mirror.bootstrap, len(state.mirror.brokers), state.security
            )
        )
        mm2.start_worker(state.connect)
        self._ensure_connectors(state, timeout)

    def wait_cluster_ready(
        self, cluster: ClusterSpec, timeout: float, restarts: int = START_RETRIES
    ) -> None:
        """Wait until every partition is served; a broker that exits meanwhile is started
        again up to `restarts` times (as a kubelet restarts a pod), then named."""
        left = [restarts]

        def ready() -> bool:
            dead = kraft.dead_broker(cluster)
            if dead is not None:
                reason = kraft.exit_reason(dead)
                what = f"broker {dead.id} of cluster {cluster.name} exited"
                if left[0] <= 0:
                    raise PermanentError(f"{what}: {reason}")
                left[0] -= 1
                announce(f"{what} ({reason}): starting it again")
                kraft.start_broker(cluster, dead)
                return False
            return kraft.brokers_listening(cluster) and admin.all_partitions_healthy(
                cluster.bootstrap, len(cluster.brokers)
            )

        what = (
            f"every partition of cluster {cluster.name} ({len(cluster.brokers)} brokers) "
            "to have a leader and a full ISR"
        )
        # Polled tightly: while a backup waits here the mirror is unavailable.
        wait_for(what, ready, timeout, interval=0.1, max_interval=0.2)

    def _create_acls(self, state: LabState, timeout: float) -> None:
        assert state.security is not None
        sec = state.security
        for role, cluster in (("primary", state.primary), ("mirror", state.mirror)):

            def created(cluster: ClusterSpec = cluster, role: str = role) -> bool:
                admin.create_acls(
                    cluster.bootstrap, security.acls(role), sec.librdkafka(security.ADMIN)
                )
                return True

            wait_for(f"ACLs on cluster {cluster.name}", created, timeout)

    def _ensure_connectors(self, state: LabState, timeout: float) -> None:
        spec = state.connect

        def worker_up() -> bool:
            if not spec.handle.alive():
                log = Path(spec.run_dir) / "connect.log"
                why = " (its port is in use)" if _says_port_in_use(log) else ""
                raise PermanentError(f"Connect worker exited{why}: see {log}")
            with self.connect_client(state) as client:
                return client.reachable()

        wait_for(f"Connect worker REST API at {spec.url}", worker_up, timeout)
        with self.connect_client(state) as client:

            def created() -> bool:
                existing = set(client.connectors())
                for name, cls in zip(mm2.connector_names(), mm2.CONNECTOR_CLASSES, strict=True):
                    if name not in existing:
                        client.put_config(
                            name,
                            mm2.connector_config(
                                cls,
                                state.primary.bootstrap,
                                state.mirror.bootstrap,
                                len(state.mirror.brokers),
                                state.replication_policy,
                                state.security,
                            ),
                        )
                return True

            # Within the lab's timeout, not only the client's own retries: a loaded worker
            # answered none of its requests for over a minute (CI, `lab up --secure`).
            wait_for("MM2's connectors to be created on Connect", created, timeout)
            for name in mm2.connector_names():

                def running(name: str = name) -> bool:
                    status = client.status(name)
                    state = status["connector"]["state"]
                    if state in (PAUSED, STOPPED):
                        # Only a person or a run's journal resumes it: a held backup may
                        # want it so. Waiting cannot change that.
                        raise PermanentError(
                            f"connector {name} is {state}: `kasten-bp resume` finishes the run "
                            "that left it so, or resume it on Connect"
                        )
                    return reached(name, status, RUNNING)

                wait_for(f"connector {name} and its tasks to be RUNNING", running, timeout)

    def use_admin(self, state: LabState) -> None:
        """A secured lab's own work (readiness waits, ACLs, `lab load`, tests) runs as the
        admin super user: register its credentials for the lab's clusters. Nothing for a
        plain lab."""
        if state.security is None:
            return
        for cluster in (state.primary, state.mirror, *state.restored.values(), *state.targets):
            use_cluster_security(cluster.bootstrap, state.security, security.ADMIN)

    def connect_client(self, state: LabState) -> ConnectClient:
        return connect_client(state.connect.url, state.security)

    def _write_config(self, state: LabState) -> None:
        if state.security is not None:
            write_config_yaml(self._secure_config(state), self.config_path)
            return
        write_config(self._plain_config(state), self.config_path)

    def _plain_config(self, state: LabState) -> Config:
        """kasten-bp.yaml of the lab before any client security."""
        return Config(
            platform="local",
            primary=KafkaEndpoint(bootstrap=state.primary.bootstrap),
            mirror=KafkaEndpoint(bootstrap=state.mirror.bootstrap),
            connect=ConnectConfig(url=state.connect.url, connectors=mm2.connector_names()),
            replication=ReplicationConfig(
                policy="identity" if state.replication_policy == "identity" else "default",
                source_alias=mm2.SOURCE_ALIAS,
            ),
            catalog=str(self.catalog_dir),
            local=LocalPlatformConfig(lab_dir=str(self.workdir)),
            targets=[KafkaEndpoint(bootstrap=t.bootstrap) for t in state.targets],
        )

    def _secure_config(self, state: LabState) -> dict[str, Any]:
        """kasten-bp.yaml of a secured lab: the kasten-bp user, secrets only by file name."""
        assert state.security is not None
        sec = state.security
        config = self._plain_config(state)
        raw: dict[str, Any] = config.model_dump(mode="json", exclude_none=True)
        for side in ("primary", "mirror"):
            raw[side] = {
                "bootstrap": raw[side]["bootstrap"],
                "security_protocol": "SASL_SSL",
                "ssl": {"ca_file": str(sec.ca_file)},
                "sasl": {
                    "mechanism": security.MECHANISM,
                    "username": security.KASTEN_BP,
                    "password_file": str(sec.password_file(security.KASTEN_BP)),
                },
            }
        raw["connect"]["ssl"] = {"ca_file": str(sec.ca_file)}
        return raw

    # --- status / down ----------------------------------------------------------------

    def all_processes(self) -> list[processes.Supervised]:
        return processes.all_under(self.workdir) if self.workdir.exists() else []

    def any_running(self, state: LabState | None = None) -> bool:
        return any(p.alive() for p in self.all_processes())

    def describe(self, state: LabState | None = None) -> dict[str, Any]:
        state = state or self.require_state()

        def brokers(cluster: ClusterSpec) -> list[dict[str, Any]]:
            return [
                {
                    "id": b.id,
                    "port": b.port,
                    "log_dirs": [b.log_dir],
                    "pid": b.handle.pid() if b.handle.alive() else None,
                    "running": b.handle.alive(),
                }
                for b in cluster.brokers
            ]

        return {
            "primary": {"bootstrap": state.primary.bootstrap, "brokers": brokers(state.primary)},
            "mirror": {
                "bootstrap": state.mirror.bootstrap,
                "cluster_id": state.mirror.cluster_id,
                "brokers": brokers(state.mirror),
            },
            "connect": {
                "url": state.connect.url,
                "pid": state.connect.handle.pid() if state.connect.handle.alive() else None,
                "running": state.connect.handle.alive(),
                "connectors": mm2.connector_names(),
            },
            "replication_policy": state.replication_policy,
            "restored": {k: {"bootstrap": v.bootstrap} for k, v in state.restored.items()},
            "targets": [
                {"name": t.name, "bootstrap": t.bootstrap, "running": kraft.brokers_listening(t)}
                for t in state.targets
            ],
            "config": str(self.config_path),
        } | ({"security": state.security.describe()} if state.security is not None else {})

    def status(self) -> dict[str, Any]:
        state = self.require_state()
        self.use_admin(state)
        info = self.describe(state)
        connectors: dict[str, str] = {}
        if state.connect.handle.alive():
            with self.connect_client(state) as client:
                for name in mm2.connector_names():
                    try:
                        connectors[name] = client.state(name)
                    except KastenBpError as exc:
                        connectors[name] = f"unknown ({exc})"
        info["connect"]["connector_states"] = connectors
        info["healthy"] = (
            all(b["running"] for c in ("primary", "mirror") for b in info[c]["brokers"])
            and info["connect"]["running"]
            and all(s == "RUNNING" for s in connectors.values())
        )
        return info

    def fail(self, cluster: str) -> dict[str, Any]:
        """The disaster drill: SIGKILL every broker of the primary, as when its machines are
        lost. Nothing is flushed or handed over; `lab up` starts them again."""
        if cluster != "primary":
            raise UsageError(f"lab fail: only the primary can be failed, not {cluster!r}")
        state = self.require_state()
        killed = []
        for broker in state.primary.brokers:
            if broker.handle.alive():
                processes.stop(broker.handle, timeout=0, sig=signal.SIGKILL)
                killed.append(broker.id)
        return {"cluster": cluster, "bootstrap": state.primary.bootstrap, "killed_brokers": killed}

    def down(self) -> dict[str, Any]:
        """Stop every process started under the workdir: Connect first, then brokers."""
        procs = self.all_processes()
        connect = [p for p in procs if p.name == "connect"]
        others = [p for p in procs if p.name != "connect"]
        stopped = []
        for group in (connect, others):
            live = [p for p in group if p.alive()]
            from concurrent.futures import ThreadPoolExecutor

            if live:
                with ThreadPoolExecutor(max_workers=len(live)) as pool:
                    list(pool.map(lambda p: processes.stop(p, timeout=30), live))
            stopped += [str(p.pid_file.parent) for p in live]
            for p in group:
                p.pid_file.unlink(missing_ok=True)
        ports = self._planned_ports()
        deadline = time.monotonic() + 10
        while any(is_listening(p) for p in ports) and time.monotonic() < deadline:
            time.sleep(0.2)
        still = [p for p in ports if is_listening(p)]
        if still:
            raise KastenBpError(f"lab {self.workdir} is down but ports {still} still listen")
        return {"workdir": str(self.workdir), "stopped": stopped}

    def _planned_ports(self) -> list[int]:
        state = self.load_state()
        if state is None:
            return []
        clusters = [state.primary, state.mirror, *state.restored.values(), *state.targets]
        ports = [state.connect.port]
        for c in clusters:
            for b in c.brokers:
                ports += [b.port, b.controller_port]
        return ports


def _says_port_in_use(log: Path) -> bool:
    try:
        return "Address already in use" in log.read_text(errors="replace")
    except OSError:
        return False


def write_config_yaml(raw: dict[str, Any], path: Path) -> None:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def use_cluster_security(bootstrap: str, sec: LabSecurity, user: str) -> None:
    """Every Kafka client of this process that talks to `bootstrap` does so as `user`."""
    clients.use_security(bootstrap, client_security(sec, user))


def client_security(sec: LabSecurity, user: str) -> ClientSecurity:
    return ClientSecurity(
        security_protocol="SASL_SSL",
        ssl=SslConfig(ca_file=str(sec.ca_file)),
        sasl=SaslConfig(
            mechanism=security.MECHANISM,
            username=user,
            password_file=str(sec.password_file(user)),
        ),
    )


def connect_client(url: str, sec: LabSecurity | None) -> ConnectClient:
    if sec is None:
        return ConnectClient(url)
    return ConnectClient(url, tls=SslConfig(ca_file=str(sec.ca_file)))
