"""A test stand-in for a CSI driver: a small, real "hostpath" CSI driver that holds bytes.

Never imported by the product (`kasten_bp/`). The REAL kubernetes-csi sidecars
(csi-provisioner, csi-snapshotter) drive it over a unix socket, so it speaks CSI spec
v1.12.0 through gRPC stubs generated from the spec's own csi.proto (`load_stubs`).

Layout under the root directory:

- `volumes/<name>/` (+ `volumes/<name>.json`): dynamically provisioned volumes;
- `snapshots/<name>/` (+ `snapshots/<name>.json`): snapshots, plain copies of the source;
- `groups/<name>.json`: volume group snapshots (membership);
- `faults.json`: injected faults (`set_faults` / `clear_faults`), read on every call.

A volume id and a snapshot id are the absolute paths of their directories. Any existing
absolute directory is accepted as a source volume id (static PVs point at real broker log
dirs), but only what lives under `volumes/`, `snapshots/` and `groups/` is ever deleted.

Run: `python -m tests.kube.csi_hostpath --socket PATH --root DIR [--name NAME]`, or
`--prepare` to only fetch csi.proto and generate the stubs.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib
import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import grpc

SPEC_MODULE = "github.com/container-storage-interface/spec"
SPEC_VERSION = "v1.12.0"
DEFAULT_NAME = "hostpath.csi.kasten-bp.test"
VENDOR_VERSION = "0.1.0-test"
GIB = 1 << 30

log = logging.getLogger("csi_hostpath")


# ---------------------------------------------------------------------------------------
# Stubs generated from the spec's csi.proto


class Stubs(NamedTuple):
    pb2: ModuleType  # csi_pb2: messages
    grpc: ModuleType  # csi_pb2_grpc: client stubs


_stubs: Stubs | None = None
_stubs_lock = threading.Lock()


def _cache_dir() -> Path:
    base = os.environ.get("KASTEN_BP_CACHE") or str(Path.home() / ".cache" / "kasten-bp")
    return Path(base) / f"csi-spec-{SPEC_VERSION}"


def _go_binary() -> str:
    found = shutil.which("go")
    if found:
        return found
    if Path("/usr/local/go/bin/go").is_file():
        return "/usr/local/go/bin/go"
    raise RuntimeError("go not found (PATH, /usr/local/go/bin/go): needed to fetch csi.proto")


def _download_proto(dest: Path) -> None:
    """csi.proto is at the root of the spec's Go module: the Go module proxy serves it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    module = f"{SPEC_MODULE}@{SPEC_VERSION}"
    proc = subprocess.run(
        [_go_binary(), "mod", "download", "-json", module],
        capture_output=True,
        text=True,
        cwd=dest.parent,  # outside any go.mod: module@version is then all that matters
        check=False,
        timeout=600,
    )
    try:
        info = json.loads(proc.stdout)
    except ValueError:
        info = {}
    if proc.returncode != 0 or not info.get("Dir"):
        why = info.get("Error") or proc.stderr.strip() or f"exit {proc.returncode}"
        raise RuntimeError(f"go mod download {module} failed: {why}")
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    try:
        shutil.copyfile(Path(info["Dir"]) / "csi.proto", tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _proto_file() -> Path:
    override = os.environ.get("KASTEN_BP_CSI_PROTO")
    if override:
        if not Path(override).is_file():
            raise FileNotFoundError(f"KASTEN_BP_CSI_PROTO={override}: no such file")
        return Path(override)
    cached = _cache_dir() / "csi.proto"
    if not cached.is_file():
        _download_proto(cached)
    return cached


def _stub_dir(proto: bytes) -> Path:
    """Keyed by the proto and the generator: stubs of another grpcio-tools may not load."""
    import grpc_tools

    version = getattr(grpc_tools, "__version__", "") or _grpc_tools_version()
    digest = hashlib.sha256(proto + version.encode()).hexdigest()[:16]
    return _cache_dir() / "python" / digest


def _grpc_tools_version() -> str:
    from importlib.metadata import version

    return version("grpcio-tools")


def _generate(proto: bytes, out: Path) -> None:
    """Generate into a private temp dir, then rename: a concurrent generator just loses."""
    import grpc_tools
    from grpc_tools import protoc

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".gen-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        # Always named csi.proto so the modules are csi_pb2 / csi_pb2_grpc.
        (tmp / "csi.proto").write_bytes(proto)
        bundled = Path(grpc_tools.__file__).parent / "_proto"  # google/protobuf/*.proto
        args = ["grpc_tools.protoc", f"-I{tmp}", f"-I{bundled}"]
        args += [f"--python_out={tmp}", f"--grpc_python_out={tmp}", str(tmp / "csi.proto")]
        if protoc.main(args) != 0:
            raise RuntimeError(f"grpc_tools.protoc failed on {tmp / 'csi.proto'}")
        with contextlib.suppress(OSError):  # lost the race: out exists, and is as good
            tmp.rename(out)
        if not (out / "csi_pb2_grpc.py").is_file():
            raise RuntimeError(f"no generated stubs in {out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_stubs() -> Stubs:
    """csi_pb2 / csi_pb2_grpc for spec v1.12.0, fetched and generated once, then cached."""
    global _stubs
    with _stubs_lock:
        if _stubs is None:
            proto = _proto_file().read_bytes()
            out = _stub_dir(proto)
            if not (out / "csi_pb2_grpc.py").is_file():
                _generate(proto, out)
            if str(out) not in sys.path:
                sys.path.insert(0, str(out))
            pb2 = importlib.import_module("csi_pb2")
            _stubs = Stubs(pb2, importlib.import_module("csi_pb2_grpc"))
        return _stubs


# ---------------------------------------------------------------------------------------
# Faults


def _valid_fault(key: str, value: object) -> bool:
    if key == "fail_snapshot":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return key == "never_ready" and isinstance(value, bool)


def _write_json(path: Path, data: object) -> None:
    """Readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def set_faults(root: Path, **faults: object) -> None:
    """Replace the faults: fail_snapshot=[substr, ...], never_ready=True."""
    for key, value in faults.items():
        if not _valid_fault(key, value):
            raise TypeError(f"unknown fault or wrong type: {key}={value!r}")
    _write_json(Path(root) / "faults.json", faults)


def clear_faults(root: Path) -> None:
    (Path(root) / "faults.json").unlink(missing_ok=True)


@dataclass(frozen=True)
class Faults:
    fail_snapshot: tuple[str, ...] = ()
    never_ready: bool = False

    def failing(self, sources: list[str]) -> str | None:
        """The first source whose snapshot must fail, if any."""
        for source in sources:
            if any(part in source for part in self.fail_snapshot):
                return source
        return None


def _read_faults(root: Path) -> Faults:
    try:
        data = json.loads((root / "faults.json").read_text())
    except FileNotFoundError:
        return Faults()
    except ValueError as err:
        raise CsiError(grpc.StatusCode.INTERNAL, f"unreadable faults.json: {err}") from err
    failing = data.get("fail_snapshot", [])
    failing = [failing] if isinstance(failing, str) else failing
    return Faults(tuple(str(f) for f in failing), bool(data.get("never_ready", False)))


# ---------------------------------------------------------------------------------------
# Files


class CsiError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(message: str) -> CsiError:
    return CsiError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _not_found(message: str) -> CsiError:
    return CsiError(grpc.StatusCode.NOT_FOUND, message)


def _check_name(name: str, what: str = "name") -> str:
    """Names become one path component; dot-names are reserved for temp dirs."""
    if not name:
        raise _invalid(f"{what} missing in request")
    if "/" in name or "\0" in name or name.startswith(".") or len(name.encode()) > 200:
        raise _invalid(f"{what} {name!r} cannot name a directory here")
    return name


# linux/fs.h FICLONE: the destination shares the source's extents (btrfs, XFS with
# reflink=1, ...): a snapshot in no time and no space. Other filesystems refuse it.
FICLONE = 0x40049409


def _clone(src: str, dst: str) -> bool:
    """Reflink `src` to a new `dst` where the filesystem allows; False (and no `dst`)
    where it does not."""
    with open(src, "rb") as source, open(dst, "wb") as target:
        try:
            fcntl.ioctl(target.fileno(), FICLONE, source.fileno())
        except OSError:
            cloned = False
        else:
            cloned = True
    if not cloned:
        os.unlink(dst)
    return cloned


def _copy_file(src: str, dst: str) -> None:
    """A reflink, else a copy; mtimes kept either way. A FIFO or socket would block or
    fail, and holds no bytes."""
    try:
        if stat.S_ISREG(os.stat(src).st_mode):
            if _clone(src, dst):
                shutil.copystat(src, dst)
            else:
                shutil.copy2(src, dst)
    except FileNotFoundError:
        if os.path.lexists(src):
            raise
        # The file vanished mid-copy (a live broker deletes segments): not in the copy.


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy a directory that may be live: entries that vanish during the copy are skipped."""
    try:
        shutil.copytree(src, dst, symlinks=True, copy_function=_copy_file)
    except shutil.Error as err:
        real = [e for e in err.args[0] if os.path.lexists(e[0])]
        if real:
            raise shutil.Error(real) from err


def _tree_size(top: Path) -> int:
    """Bytes of regular files (not symlinks), as Snapshot.size_bytes."""
    total = 0
    for dirpath, _, files in os.walk(top):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def _remove_dir(path: Path) -> None:
    """Rename out of sight first, so a half-deleted directory is never seen as whole."""
    if not path.exists():
        return
    trash = path.with_name(f".trash-{path.name}-{uuid.uuid4().hex}")
    path.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return data


class _Locks:
    """One lock per (kind, name): operations on the same name run one at a time."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}

    @contextlib.contextmanager
    def hold(self, kind: str, name: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault((kind, name), threading.Lock())
        with lock:
            yield


# ---------------------------------------------------------------------------------------
# The driver


def _source_dir(volume_id: str) -> Path:
    """Any existing absolute directory is a volume (static PVs name real directories)."""
    if not volume_id:
        raise _invalid("source volume id missing in request")
    path = Path(volume_id)
    if not path.is_absolute() or not path.is_dir():
        raise _not_found(f"volume {volume_id} does not exist")
    return path


def _same_set(a: list[str], b: list[str]) -> bool:
    return sorted(a) == sorted(b)


class Driver:
    """The Identity, Controller and GroupController services over one root directory."""

    def __init__(self, root: Path, name: str, pb2: ModuleType) -> None:
        self.root = root
        self.name = name
        self.pb2 = pb2
        self.volumes = root / "volumes"
        self.snapshots = root / "snapshots"
        self.groups = root / "groups"
        for d in (self.volumes, self.snapshots, self.groups):
            d.mkdir(parents=True, exist_ok=True)
        self._locks = _Locks()

    # -- Identity ---------------------------------------------------------------------

    def GetPluginInfo(self, req: Any) -> Any:
        return self.pb2.GetPluginInfoResponse(name=self.name, vendor_version=VENDOR_VERSION)

    def GetPluginCapabilities(self, req: Any) -> Any:
        service = self.pb2.PluginCapability.Service
        caps = [
            self.pb2.PluginCapability(service=service(type=t))
            for t in (service.CONTROLLER_SERVICE, service.GROUP_CONTROLLER_SERVICE)
        ]
        return self.pb2.GetPluginCapabilitiesResponse(capabilities=caps)

    def Probe(self, req: Any) -> Any:
        resp = self.pb2.ProbeResponse()
        resp.ready.value = True
        return resp

    # -- Controller: volumes ----------------------------------------------------------

    def ControllerGetCapabilities(self, req: Any) -> Any:
        rpc = self.pb2.ControllerServiceCapability.RPC
        kinds = (
            rpc.CREATE_DELETE_VOLUME,
            rpc.CREATE_DELETE_SNAPSHOT,
            rpc.LIST_SNAPSHOTS,
            rpc.CLONE_VOLUME,
        )
        caps = [self.pb2.ControllerServiceCapability(rpc=rpc(type=t)) for t in kinds]
        return self.pb2.ControllerGetCapabilitiesResponse(capabilities=caps)

    def CreateVolume(self, req: Any) -> Any:
        name = _check_name(req.name)
        if not req.volume_capabilities:
            raise _invalid("volume_capabilities missing in request")
        required, limit = req.capacity_range.required_bytes, req.capacity_range.limit_bytes
        capacity = _capacity(required, limit)
        source = _content_source(req)
        with self._locks.hold("volume", name):
            meta = self._volume_meta(name)
            if meta is None:
                meta = self._make_volume(name, capacity, source)
            elif meta["content_source"] != source or not _fits(
                meta["capacity_bytes"], required, limit
            ):
                raise CsiError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"volume {name} exists with another capacity or content source",
                )
        return self.pb2.CreateVolumeResponse(volume=self._volume_message(name, meta))

    def _volume_meta(self, name: str) -> dict[str, Any] | None:
        meta = _read_json(self.volumes / f"{name}.json")
        return meta if meta is not None and (self.volumes / name).is_dir() else None

    def _make_volume(self, name: str, capacity: int, source: list[str] | None) -> dict[str, Any]:
        origin = self._content_dir(source)
        if origin is not None and source is not None and source[0] == "snapshot":
            size = _tree_size(origin)
            if size > capacity:
                raise CsiError(
                    grpc.StatusCode.OUT_OF_RANGE,
                    f"capacity {capacity} is less than the snapshot's {size} bytes",
                )
        target = self.volumes / name
        if target.exists():
            raise CsiError(grpc.StatusCode.ALREADY_EXISTS, f"{target} exists without a record")
        tmp = self.volumes / f".tmp-{name}-{uuid.uuid4().hex}"
        try:
            if origin is None:
                tmp.mkdir()
            else:
                _copy_tree(origin, tmp)
            meta = {"name": name, "capacity_bytes": capacity, "content_source": source}
            _write_json(self.volumes / f"{name}.json", meta)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return meta

    def _content_dir(self, source: list[str] | None) -> Path | None:
        if source is None:
            return None
        kind, ident = source
        if kind == "volume":
            return self._guard_source(_source_dir(ident))
        snap = self._snapshot_name(ident)
        if snap is None or self._snapshot_meta(snap) is None:
            raise _not_found(f"snapshot {ident} does not exist")
        return self.snapshots / snap

    def _guard_source(self, path: Path) -> Path:
        """Copying a directory into a temp dir inside itself would never end."""
        real = path.resolve()
        for area in (self.volumes, self.snapshots):
            if real == area or real in area.parents:
                raise _invalid(f"{path} holds the driver's {area}")
        return path

    def _volume_message(self, name: str, meta: dict[str, Any]) -> Any:
        volume = self.pb2.Volume(
            volume_id=str(self.volumes / name), capacity_bytes=meta["capacity_bytes"]
        )
        source = meta["content_source"]
        if source is not None:  # the spec asks it back when the volume was pre-populated
            kind, ident = source
            if kind == "snapshot":
                volume.content_source.snapshot.snapshot_id = ident
            else:
                volume.content_source.volume.volume_id = ident
        return volume

    def DeleteVolume(self, req: Any) -> Any:
        if not req.volume_id:
            raise _invalid("volume_id missing in request")
        name = _child_name(self.volumes, req.volume_id)
        if name is not None:  # anything else (a static PV's directory) is not ours to delete
            with self._locks.hold("volume", name):
                _remove_dir(self.volumes / name)
                (self.volumes / f"{name}.json").unlink(missing_ok=True)
        return self.pb2.DeleteVolumeResponse()

    def ValidateVolumeCapabilities(self, req: Any) -> Any:
        if not req.volume_id:
            raise _invalid("volume_id missing in request")
        if not req.volume_capabilities:
            raise _invalid("volume_capabilities missing in request")
        path = Path(req.volume_id)
        if not path.is_absolute() or not path.is_dir():
            raise _not_found(f"volume {req.volume_id} does not exist")
        confirmed = self.pb2.ValidateVolumeCapabilitiesResponse.Confirmed(
            volume_context=dict(req.volume_context),
            volume_capabilities=list(req.volume_capabilities),
            parameters=dict(req.parameters),
            mutable_parameters=dict(req.mutable_parameters),
        )
        return self.pb2.ValidateVolumeCapabilitiesResponse(confirmed=confirmed)

    # -- Controller: snapshots --------------------------------------------------------

    def CreateSnapshot(self, req: Any) -> Any:
        name = _check_name(req.name)
        source = req.source_volume_id
        if not source:
            raise _invalid("source_volume_id missing in request")
        faults = self._faults_against([source])
        with self._locks.hold("snapshot", name):
            meta = self._cut_snapshot(name, source, group_id="")
        return self.pb2.CreateSnapshotResponse(snapshot=self._snapshot_message(name, meta, faults))

    def _faults_against(self, sources: list[str]) -> Faults:
        faults = _read_faults(self.root)
        failing = faults.failing(sources)
        if failing is not None:
            raise CsiError(grpc.StatusCode.INTERNAL, f"injected fault: snapshot of {failing} fails")
        return faults

    def _snapshot_meta(self, name: str) -> dict[str, Any] | None:
        meta = _read_json(self.snapshots / f"{name}.json")
        return meta if meta is not None and (self.snapshots / name).is_dir() else None

    def _snapshot_name(self, snapshot_id: str) -> str | None:
        return _child_name(self.snapshots, snapshot_id)

    def _cut_snapshot(self, name: str, source: str, group_id: str) -> dict[str, Any]:
        """Idempotent by name: the same name and source get the snapshot already cut."""
        meta = self._snapshot_meta(name)
        if meta is not None:
            if meta["source_volume_id"] != source or meta["group_snapshot_id"] != group_id:
                raise CsiError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"snapshot {name} exists for source {meta['source_volume_id']}",
                )
            return meta
        origin = self._guard_source(_source_dir(source))
        target = self.snapshots / name
        if target.exists():
            raise CsiError(grpc.StatusCode.ALREADY_EXISTS, f"{target} exists without a record")
        tmp = self.snapshots / f".tmp-{name}-{uuid.uuid4().hex}"
        try:
            _copy_tree(origin, tmp)
            meta = {
                "name": name,
                "source_volume_id": source,
                "size_bytes": _tree_size(tmp),
                "creation_time_ns": time.time_ns(),  # the copy is the cut: it just finished
                "group_snapshot_id": group_id,
            }
            _write_json(self.snapshots / f"{name}.json", meta)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return meta

    def _snapshot_message(self, name: str, meta: dict[str, Any], faults: Faults) -> Any:
        snap = self.pb2.Snapshot(
            snapshot_id=str(self.snapshots / name),
            source_volume_id=meta["source_volume_id"],
            size_bytes=meta["size_bytes"],
            ready_to_use=not faults.never_ready,
            group_snapshot_id=meta["group_snapshot_id"],
        )
        snap.creation_time.FromNanoseconds(meta["creation_time_ns"])
        return snap

    def DeleteSnapshot(self, req: Any) -> Any:
        if not req.snapshot_id:
            raise _invalid("snapshot_id missing in request")
        name = self._snapshot_name(req.snapshot_id)
        if name is not None:
            with self._locks.hold("snapshot", name):
                self._delete_snapshot(name, standalone=True)
        return self.pb2.DeleteSnapshotResponse()

    def _delete_snapshot(self, name: str, standalone: bool) -> None:
        meta = self._snapshot_meta(name)
        group = meta["group_snapshot_id"] if meta else ""
        if standalone and group and Path(group).is_file():
            # The spec lets a plugin refuse: members go with their group.
            raise _invalid(f"snapshot {name} is part of group snapshot {group}")
        _remove_dir(self.snapshots / name)
        (self.snapshots / f"{name}.json").unlink(missing_ok=True)

    def ListSnapshots(self, req: Any) -> Any:
        if req.max_entries < 0:
            raise _invalid("max_entries must not be negative")
        faults = _read_faults(self.root)
        names = self._listed_snapshots(req.snapshot_id)
        found = []
        for name in names:
            meta = self._snapshot_meta(name)
            if meta is None:
                continue  # deleted since the listing
            if req.source_volume_id and meta["source_volume_id"] != req.source_volume_id:
                continue
            found.append(self._snapshot_message(name, meta, faults))
        start = _page_start(req.starting_token, len(found))
        end = len(found) if req.max_entries == 0 else min(len(found), start + req.max_entries)
        entries = [self.pb2.ListSnapshotsResponse.Entry(snapshot=s) for s in found[start:end]]
        next_token = str(end) if end < len(found) else ""
        return self.pb2.ListSnapshotsResponse(entries=entries, next_token=next_token)

    def _listed_snapshots(self, snapshot_id: str) -> list[str]:
        if snapshot_id:  # one snapshot, or none: an unknown id is an empty list
            name = self._snapshot_name(snapshot_id)
            return [name] if name is not None else []
        return sorted(
            p.name for p in self.snapshots.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    # -- GroupController ----------------------------------------------------------------

    def GroupControllerGetCapabilities(self, req: Any) -> Any:
        rpc = self.pb2.GroupControllerServiceCapability.RPC
        cap = self.pb2.GroupControllerServiceCapability(
            rpc=rpc(type=rpc.CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT)
        )
        return self.pb2.GroupControllerGetCapabilitiesResponse(capabilities=[cap])

    def CreateVolumeGroupSnapshot(self, req: Any) -> Any:
        name = _check_name(req.name)
        sources = list(req.source_volume_ids)
        if not sources:
            raise _invalid("source_volume_ids missing in request")
        faults = self._faults_against(sources)
        with self._locks.hold("group", name):
            record = _read_json(self.groups / f"{name}.json")
            if record is None:
                record = self._make_group(name, sources)
            elif not _same_set(record["source_volume_ids"], sources):
                raise CsiError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"group snapshot {name} exists for other source volumes",
                )
        group = self._group_message(name, record, faults)
        return self.pb2.CreateVolumeGroupSnapshotResponse(group_snapshot=group)

    def _make_group(self, name: str, sources: list[str]) -> dict[str, Any]:
        """Every member is cut before the answer; a failure leaves no member behind."""
        for source in sources:
            self._guard_source(_source_dir(source))
        group_id = str(self.groups / f"{name}.json")
        members: list[str] = []
        try:
            for index, source in enumerate(sources):
                member = _check_name(f"{name}-{index}", "member snapshot name")
                with self._locks.hold("snapshot", member):
                    self._cut_snapshot(member, source, group_id)
                members.append(member)
        except BaseException:
            for member in members:
                with self._locks.hold("snapshot", member):
                    self._delete_snapshot(member, standalone=False)
            raise
        record = {
            "name": name,
            "source_volume_ids": sources,
            "snapshot_ids": [str(self.snapshots / m) for m in members],
            "creation_time_ns": time.time_ns(),
        }
        _write_json(self.groups / f"{name}.json", record)
        return record

    def _group_message(self, name: str, record: dict[str, Any], faults: Faults) -> Any:
        snapshots = []
        for snapshot_id in record["snapshot_ids"]:
            member = self._snapshot_name(snapshot_id)
            meta = self._snapshot_meta(member) if member is not None else None
            if member is None or meta is None:
                raise _not_found(f"member {snapshot_id} of group snapshot {name} is gone")
            snapshots.append(self._snapshot_message(member, meta, faults))
        group = self.pb2.VolumeGroupSnapshot(
            group_snapshot_id=str(self.groups / f"{name}.json"),
            snapshots=snapshots,
            ready_to_use=all(s.ready_to_use for s in snapshots),
        )
        group.creation_time.FromNanoseconds(record["creation_time_ns"])
        return group

    def _group_name(self, group_id: str) -> str | None:
        file_name = _child_name(self.groups, group_id)
        if file_name is None or not file_name.endswith(".json") or file_name == ".json":
            return None
        return file_name.removesuffix(".json")

    def DeleteVolumeGroupSnapshot(self, req: Any) -> Any:
        if not req.group_snapshot_id:
            raise _invalid("group_snapshot_id missing in request")
        name = self._group_name(req.group_snapshot_id)
        if name is None:
            return self.pb2.DeleteVolumeGroupSnapshotResponse()
        asked = list(req.snapshot_ids)
        with self._locks.hold("group", name):
            record = _read_json(self.groups / f"{name}.json")
            if record is not None and asked and not _same_set(asked, record["snapshot_ids"]):
                raise _invalid(f"snapshot_ids do not match group snapshot {name}")
            for snapshot_id in record["snapshot_ids"] if record else asked:
                self._delete_member(snapshot_id, req.group_snapshot_id)
            (self.groups / f"{name}.json").unlink(missing_ok=True)
        return self.pb2.DeleteVolumeGroupSnapshotResponse()

    def _delete_member(self, snapshot_id: str, group_id: str) -> None:
        member = self._snapshot_name(snapshot_id)
        if member is None:
            return
        with self._locks.hold("snapshot", member):
            meta = self._snapshot_meta(member)
            if meta is None or meta["group_snapshot_id"] == group_id:
                self._delete_snapshot(member, standalone=False)

    def GetVolumeGroupSnapshot(self, req: Any) -> Any:
        if not req.group_snapshot_id:
            raise _invalid("group_snapshot_id missing in request")
        name = self._group_name(req.group_snapshot_id)
        record = _read_json(self.groups / f"{name}.json") if name is not None else None
        if name is None or record is None:
            raise _not_found(f"group snapshot {req.group_snapshot_id} does not exist")
        asked = list(req.snapshot_ids)
        if asked and not _same_set(asked, record["snapshot_ids"]):
            raise _invalid(f"snapshot_ids do not match group snapshot {name}")
        group = self._group_message(name, record, _read_faults(self.root))
        return self.pb2.GetVolumeGroupSnapshotResponse(group_snapshot=group)


def _capacity(required: int, limit: int) -> int:
    if required < 0 or limit < 0:
        raise _invalid("capacity_range must not be negative")
    if limit and required > limit:
        raise CsiError(grpc.StatusCode.OUT_OF_RANGE, f"required {required} > limit {limit}")
    return required or min(GIB, limit or GIB)


def _fits(capacity: int, required: int, limit: int) -> bool:
    return capacity >= required and (not limit or capacity <= limit)


def _content_source(req: Any) -> list[str] | None:
    """["snapshot" | "volume", id] (a list: it round-trips through JSON unchanged)."""
    if not req.HasField("volume_content_source"):
        return None
    source = req.volume_content_source
    kind = source.WhichOneof("type")
    if kind == "snapshot" and source.snapshot.snapshot_id:
        return ["snapshot", source.snapshot.snapshot_id]
    if kind == "volume" and source.volume.volume_id:
        return ["volume", source.volume.volume_id]
    raise _invalid("volume_content_source names no snapshot or volume")


def _child_name(parent: Path, ident: str) -> str | None:
    """The entry name if ident is the absolute path of a direct child of parent, else None."""
    path = Path(ident)
    if not path.is_absolute() or path.parent != parent:
        return None
    name = path.name
    if not name or name in (".", "..") or name.startswith("."):
        return None
    return name


def _page_start(token: str, total: int) -> int:
    if not token:
        return 0
    if not token.isdigit() or int(token) > total:
        raise CsiError(grpc.StatusCode.ABORTED, f"invalid starting_token {token!r}")
    return int(token)


# ---------------------------------------------------------------------------------------
# gRPC plumbing

_IMPLEMENTED = {
    "Identity": ("GetPluginInfo", "GetPluginCapabilities", "Probe"),
    "Controller": (
        "ControllerGetCapabilities",
        "CreateVolume",
        "DeleteVolume",
        "ValidateVolumeCapabilities",
        "CreateSnapshot",
        "DeleteSnapshot",
        "ListSnapshots",
    ),
    "GroupController": (
        "GroupControllerGetCapabilities",
        "CreateVolumeGroupSnapshot",
        "DeleteVolumeGroupSnapshot",
        "GetVolumeGroupSnapshot",
    ),
}

# Logged request fields: identities only (never secrets or parameters).
_LOGGED = (
    "name",
    "volume_id",
    "source_volume_id",
    "source_volume_ids",
    "snapshot_id",
    "snapshot_ids",
    "group_snapshot_id",
    "max_entries",
    "starting_token",
)


def _key_args(req: Any) -> str:
    parts = []
    for field, value in req.ListFields():
        if field.name in _LOGGED:
            shown = ",".join(value) if field.name.endswith("_ids") else value
            parts.append(f"{field.name}={shown}")
        elif field.name == "capacity_range":
            parts.append(f"required_bytes={value.required_bytes}")
        elif field.name == "volume_content_source":
            ident = value.snapshot.snapshot_id or value.volume.volume_id
            parts.append(f"source={value.WhichOneof('type')}:{ident}")
    return " ".join(parts)


def _unimplemented(method: str) -> Callable[[Any], Any]:
    def handler(req: Any) -> Any:
        raise CsiError(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented")

    return handler


def _unary(method: str, impl: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
    """Runs impl, logs one line, and turns CsiError (or any crash) into a gRPC status."""

    def handle(req: Any, context: Any) -> Any:
        try:
            head = f"{method} {_key_args(req)}".rstrip()
        except Exception as err:  # a log line must never fail the call
            head = f"{method} (unprintable request: {err})"
        try:
            resp = impl(req)
        except CsiError as err:
            log.info("%s -> %s: %s", head, err.code.name, err.message)
            context.abort(err.code, err.message)
        except Exception as err:
            log.exception("%s -> INTERNAL", head)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}")
        log.info("%s -> OK", head)
        return resp

    return handle


def _service_handler(pb2: ModuleType, driver: Driver, service: str) -> Any:
    """Every method of the service from the proto's descriptor: the rest are UNIMPLEMENTED."""
    desc = pb2.DESCRIPTOR.services_by_name[service]
    table = {}
    for method in desc.methods:
        impl = getattr(driver, method.name) if method.name in _IMPLEMENTED[service] else None
        table[method.name] = grpc.unary_unary_rpc_method_handler(
            _unary(method.name, impl or _unimplemented(method.name)),
            request_deserializer=getattr(pb2, method.input_type.name).FromString,
            response_serializer=lambda resp: resp.SerializeToString(),
        )
    return grpc.method_handlers_generic_handler(desc.full_name, table)


def _clear_stale_socket(socket: Path) -> None:
    socket.parent.mkdir(parents=True, exist_ok=True)
    if socket.is_socket():
        socket.unlink()
    elif socket.exists():
        raise FileExistsError(f"{socket} exists and is not a socket")


def serve(socket: str, root: Path, name: str = DEFAULT_NAME) -> grpc.Server:
    """Start the driver on a unix socket (no Node service: no kubelet here); not blocking."""
    pb2 = load_stubs().pb2
    root = Path(root).resolve()
    driver = Driver(root, name, pb2)
    socket_path = Path(socket).absolute()
    _clear_stale_socket(socket_path)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    handlers = [_service_handler(pb2, driver, s) for s in _IMPLEMENTED]
    server.add_generic_rpc_handlers(handlers)
    server.add_insecure_port(f"unix:{socket_path}")
    server.start()
    log.info("serving %s on %s, root %s", name, socket_path, root)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kube.csi_hostpath")
    parser.add_argument("--socket", help="unix socket path to serve on")
    parser.add_argument("--root", type=Path, help="directory that holds volumes, snapshots")
    parser.add_argument("--name", default=DEFAULT_NAME, help="driver name")
    parser.add_argument("--prepare", action="store_true", help="only fetch and generate stubs")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s csi-hostpath %(message)s"
    )
    if args.prepare:
        load_stubs()
        return 0
    if not args.socket or not args.root:
        parser.error("--socket and --root are required (or --prepare)")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = serve(args.socket, args.root, args.name)
    while not stop.wait(1.0):
        pass
    log.info("stopping")
    server.stop(grace=5).wait()
    Path(args.socket).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
