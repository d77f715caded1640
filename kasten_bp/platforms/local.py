"""The local platform: the mirror is the embedded lab's broker processes; a volume is a
broker's log dir; a snapshot is a copy of it (copy-on-write where the file system can)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kasten_bp.config import Config
from kasten_bp.errors import KastenBpError, LockBusy, UsageError
from kasten_bp.lab import kraft
from kasten_bp.lab.kraft import BrokerSpec, ClusterSpec
from kasten_bp.lab.lab import Lab, LabState
from kasten_bp.manifest import Manifest, SnapshotRef
from kasten_bp.platforms.base import BrokerInfo, MirrorMakerControl
from kasten_bp.platforms.mm2_rest import ConnectRestMirrorMaker
from kasten_bp.platforms.watchdog_process import start_watchdog, stop_watchdog

DELETE_RETRY_SECONDS = 30.0


class LocalPlatform:
    name = "local"

    def __init__(self, config: Config) -> None:
        if config.local is None:
            raise UsageError("config has platform local but no `local.lab_dir`")
        self.config = config
        self.lab = Lab(Path(config.local.lab_dir))
        self.mirrormaker: MirrorMakerControl = ConnectRestMirrorMaker(config.connect)

    # --- state ------------------------------------------------------------------------

    def _state(self) -> LabState:
        return self.lab.require_state()

    @property
    def mirror(self) -> ClusterSpec:
        return self._state().mirror

    @property
    def snapshot_root(self) -> Path:
        catalog = self.config.catalog
        if "://" in catalog and not catalog.startswith("file://"):
            return self.lab.workdir / "snapshots"
        return Path(catalog.removeprefix("file://")) / "snapshots"

    @contextmanager
    def lock(self, owner: str) -> Iterator[None]:
        """An flock on a file: the kernel drops it when the holder dies, so no stale locks."""
        path = self.lab.workdir / "backup.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = path.read_text().strip() or "another process"
                raise LockBusy(
                    f"another kasten-bp run holds the lock on mirror {self.mirror.bootstrap} "
                    f"({holder}); wait for it or check `kasten-bp status`",
                    holder,
                ) from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{owner} (pid {os.getpid()})".encode())
            yield
        finally:
            os.close(fd)

    # --- the hold's watchdog: a detached process -----------------------------------------

    def arm_hold(self, backup_id: str, command: list[str]) -> dict[str, Any]:
        return start_watchdog(command, self.lab.workdir / f"hold-{backup_id}.log")

    def disarm_hold(self, backup_id: str, handle: dict[str, Any]) -> None:
        stop_watchdog(backup_id, handle)

    def preflight(self) -> list[str]:
        problems = []
        state = self.lab.load_state()
        if state is None:
            return [f"no lab in {self.lab.workdir}"]
        for b in state.mirror.brokers:
            if not Path(b.log_dir).is_dir():
                problems.append(f"broker {b.id} log dir {b.log_dir} is missing")
        return problems

    def mirror_cluster_id(self) -> str:
        return self.mirror.cluster_id

    def scope(self) -> str:
        return f"local:{self.mirror.cluster_id}"

    def brokers(self) -> list[BrokerInfo]:
        return [BrokerInfo(b.id, b.handle.alive(), [b.log_dir]) for b in self.mirror.brokers]

    # --- stop / start -------------------------------------------------------------------

    def stop_brokers(self, broker_ids: list[int], timeout: float) -> list[str]:
        brokers = [self.mirror.broker(i) for i in broker_ids]
        killed = kraft.stop_brokers(brokers, timeout=timeout)
        os.sync()  # nothing of the stopped brokers left in the page cache
        for b in brokers:
            if b.handle.alive():
                raise KastenBpError(f"broker {b.id} of the mirror did not stop")
        return [
            f"broker {i} of the mirror did not stop cleanly within {timeout:g}s and was "
            "killed (SIGKILL): its snapshot needs log recovery when restored"
            for i in killed
        ]

    def start_brokers(self, broker_ids: list[int], timeout: float) -> None:
        cluster = self.mirror
        for broker_id in broker_ids:
            kraft.start_broker(cluster, cluster.broker(broker_id))
        self._wait_serving(cluster, timeout)

    def _wait_serving(self, cluster: ClusterSpec, timeout: float) -> None:
        self.lab.wait_cluster_ready(cluster, timeout)

    # --- snapshots ----------------------------------------------------------------------

    def snapshot_dir(self, backup_id: str) -> Path:
        return self.snapshot_root / backup_id

    def snapshot_volumes(
        self, backup_id: str, broker_ids: list[int], timeout: float
    ) -> list[SnapshotRef]:
        """Copy every broker's log dir at once (the brokers are down meanwhile); checksums
        come later, from `seal_snapshots`, once the brokers serve again."""
        brokers = [self.mirror.broker(i) for i in broker_ids]
        targets = [self.snapshot_dir(backup_id) / f"broker-{b.id}" for b in brokers]
        with ThreadPoolExecutor(max_workers=max(1, len(brokers))) as pool:
            sources = [Path(b.log_dir) for b in brokers]
            list(pool.map(copy_tree, sources, targets))
        return [
            SnapshotRef(
                broker_id=b.id, volume=b.log_dir, location=str(target), size_bytes=tree_size(target)
            )
            for b, target in zip(brokers, targets, strict=True)
        ]

    def seal_snapshots(self, backup_id: str, refs: list[SnapshotRef]) -> list[SnapshotRef]:
        """A checksum of each snapshot copy, which restore checks before using it."""
        return [
            ref
            if ref.checksum
            else ref.model_copy(update={"checksum": tree_digest(Path(ref.location))[1]})
            for ref in refs
        ]

    def delete_snapshots(self, backup_id: str) -> list[str]:
        left: list[str] = []

        def failed(function: object, path: str, exc_info: tuple[Any, BaseException, Any]) -> None:
            if os.path.lexists(path):
                left.append(f"{path}: {exc_info[1]}")

        # A killed run's `cp` children outlive it and may still be writing into the copy:
        # delete again until nothing is left, for a bounded time, before reporting.
        _kill_copies_into(self.snapshot_dir(backup_id))
        deadline = time.monotonic() + DELETE_RETRY_SECONDS
        while True:
            left.clear()
            shutil.rmtree(self.snapshot_dir(backup_id), onerror=failed)
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.5)

    # --- restore ------------------------------------------------------------------------

    def restore(self, manifest: Manifest, timeout: float) -> dict[str, Any]:
        state = self._state()
        name = f"restored-{manifest.backup_id}"
        existing = state.restored.get(manifest.backup_id)
        if existing is not None and kraft.brokers_listening(existing):
            return {
                "bootstrap": existing.bootstrap,
                "backup_id": manifest.backup_id,
                "reused": True,
            }
        unsealed = []
        for ref in manifest.snapshots:
            source = Path(ref.location)
            if not source.is_dir():
                raise UsageError(f"snapshot of broker {ref.broker_id} is missing: {source}")
            if not ref.checksum:
                unsealed.append(ref.broker_id)  # the backup's seal_snapshots check failed
                continue
            if tree_digest(source)[1] != ref.checksum:
                raise UsageError(
                    f"snapshot of broker {ref.broker_id} at {source} does not match its checksum"
                )
        cluster = kraft.plan_cluster(
            name, self.lab.workdir / "restored", len(manifest.snapshots), manifest.mirror.cluster_id
        )
        # Keep the node ids of the snapshot: meta.properties in each log dir names them.
        brokers = []
        for ref, planned in zip(
            sorted(manifest.snapshots, key=lambda r: r.broker_id), cluster.brokers, strict=True
        ):
            brokers.append(
                BrokerSpec(
                    id=ref.broker_id,
                    port=planned.port,
                    controller_port=planned.controller_port,
                    log_dir=planned.log_dir,
                    run_dir=planned.run_dir,
                )
            )
        with ThreadPoolExecutor(max_workers=max(1, len(brokers))) as pool:
            sources = [
                Path(r.location) for r in sorted(manifest.snapshots, key=lambda r: r.broker_id)
            ]
            list(pool.map(copy_tree, sources, [Path(b.log_dir) for b in brokers]))
        cluster = ClusterSpec(name=name, cluster_id=manifest.mirror.cluster_id, brokers=brokers)
        state.restored[manifest.backup_id] = cluster
        self.lab.save_state(state)
        # A secured lab: the same TLS/SCRAM listeners (certificates valid for 127.0.0.1);
        # SCRAM users and ACLs come with the snapshot's metadata log.
        kraft.write_configs(cluster, state.security)
        kraft.start_cluster(cluster)
        self._wait_serving(cluster, timeout)
        info: dict[str, Any] = {
            "bootstrap": cluster.bootstrap,
            "backup_id": manifest.backup_id,
            "brokers": [{"id": b.id, "log_dir": b.log_dir} for b in cluster.brokers],
        }
        if unsealed:
            info["unchecked_snapshots"] = unsealed  # no checksum recorded to check against
        return info

    def restored_bootstrap(self, backup_id: str) -> str | None:
        cluster = self._state().restored.get(backup_id)
        return cluster.bootstrap if cluster is not None else None

    def stop_restored(self, backup_id: str) -> None:
        state = self._state()
        cluster = state.restored.get(backup_id)
        if cluster is not None:
            kraft.stop_brokers(cluster.brokers)


def _kill_copies_into(folder: Path) -> None:
    """SIGKILL any `cp` still copying into `folder`: a killed run's children outlive it."""
    needle = str(folder).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0] == b"cp" and any(needle in a for a in argv[1:]):
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)


def copy_tree(source: Path, target: Path) -> None:
    """`cp -a --reflink=auto`: copy-on-write clones where the file system supports them."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    result = subprocess.run(
        ["cp", "-a", "--reflink=auto", str(source), str(target)], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise KastenBpError(f"copying {source} to {target} failed: {result.stderr.strip()}")


def tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def tree_digest(root: Path) -> tuple[int, str]:
    """Total size and a sha256 over every file's relative path and content."""
    h = hashlib.sha256()
    total = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0")
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                total += len(chunk)
    return total, h.hexdigest()
