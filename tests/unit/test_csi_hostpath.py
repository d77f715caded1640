"""The hostpath CSI driver of tests/kube/csi_hostpath.py through real gRPC on a unix socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.kube import csi_hostpath
from tests.kube.csi_hostpath import GIB, load_stubs

REPO = Path(__file__).resolve().parents[2]
pb2 = load_stubs().pb2
stubs = load_stubs().grpc


@dataclass
class Csi:
    root: Path
    socket: Path
    channel: Any
    identity: Any
    controller: Any
    group: Any


@pytest.fixture
def csi(tmp_path: Path) -> Iterator[Csi]:
    sock = tmp_path / "csi.sock"
    assert len(str(sock)) < 100, "unix socket paths are limited to 107 bytes"
    root = tmp_path / "root"
    server = csi_hostpath.serve(str(sock), root, csi_hostpath.DEFAULT_NAME)
    channel = grpc.insecure_channel(f"unix:{sock}")
    try:
        yield Csi(
            root.resolve(),
            sock,
            channel,
            stubs.IdentityStub(channel),
            stubs.ControllerStub(channel),
            stubs.GroupControllerStub(channel),
        )
    finally:
        channel.close()
        server.stop(grace=None).wait()


def make_source(path: Path) -> Path:
    """A directory like a broker's log dir: nested files, an old mtime, a symlink."""
    (path / "topic-0").mkdir(parents=True)
    (path / "topic-0" / "00000000000000000000.log").write_bytes(b"x" * 1000)
    (path / "topic-0" / "00000000000000000000.index").write_bytes(b"i" * 24)
    (path / "meta.properties").write_text("node.id=1\n")
    os.utime(path / "meta.properties", ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    (path / "latest").symlink_to("topic-0")
    return path


def files_of(top: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(top)): p.read_bytes()
        for p in sorted(top.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def code_of(call: Any, *args: Any, **kw: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call(*args, **kw)
    code: grpc.StatusCode = err.value.code()
    return code


def mount_cap() -> Any:
    mode = pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
    return pb2.VolumeCapability(
        mount=pb2.VolumeCapability.MountVolume(),
        access_mode=pb2.VolumeCapability.AccessMode(mode=mode),
    )


def create_volume(csi: Csi, name: str, required: int = 0, source: Any = None) -> Any:
    req = pb2.CreateVolumeRequest(name=name, volume_capabilities=[mount_cap()])
    if required:
        req.capacity_range.required_bytes = required
    if source is not None:
        req.volume_content_source.CopyFrom(source)
    return csi.controller.CreateVolume(req).volume


def snapshot(csi: Csi, name: str, source: str) -> Any:
    req = pb2.CreateSnapshotRequest(name=name, source_volume_id=source)
    return csi.controller.CreateSnapshot(req).snapshot


def list_snapshots(csi: Csi, **kw: Any) -> Any:
    return csi.controller.ListSnapshots(pb2.ListSnapshotsRequest(**kw))


def from_snapshot(snapshot_id: str) -> Any:
    return pb2.VolumeContentSource(
        snapshot=pb2.VolumeContentSource.SnapshotSource(snapshot_id=snapshot_id)
    )


def test_identity(csi: Csi) -> None:
    info = csi.identity.GetPluginInfo(pb2.GetPluginInfoRequest())
    assert (info.name, info.vendor_version) == ("hostpath.csi.kasten-bp.test", "0.1.0-test")
    caps = csi.identity.GetPluginCapabilities(pb2.GetPluginCapabilitiesRequest())
    service = pb2.PluginCapability.Service
    assert {c.service.type for c in caps.capabilities} == {
        service.CONTROLLER_SERVICE,
        service.GROUP_CONTROLLER_SERVICE,
    }
    probe = csi.identity.Probe(pb2.ProbeRequest())
    assert probe.HasField("ready") and probe.ready.value


def test_capabilities_and_unimplemented(csi: Csi) -> None:
    rpc = pb2.ControllerServiceCapability.RPC
    caps = csi.controller.ControllerGetCapabilities(pb2.ControllerGetCapabilitiesRequest())
    assert {c.rpc.type for c in caps.capabilities} == {
        rpc.CREATE_DELETE_VOLUME,
        rpc.CREATE_DELETE_SNAPSHOT,
        rpc.LIST_SNAPSHOTS,
        rpc.CLONE_VOLUME,
    }
    group = csi.group.GroupControllerGetCapabilities(pb2.GroupControllerGetCapabilitiesRequest())
    assert [c.rpc.type for c in group.capabilities] == [
        pb2.GroupControllerServiceCapability.RPC.CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT
    ]
    publish = pb2.ControllerPublishVolumeRequest(volume_id="/x", node_id="n")
    assert code_of(csi.controller.ControllerPublishVolume, publish) == (
        grpc.StatusCode.UNIMPLEMENTED
    )
    assert code_of(csi.controller.GetCapacity, pb2.GetCapacityRequest()) == (
        grpc.StatusCode.UNIMPLEMENTED
    )
    # No Node service at all (no kubelet here).
    node = stubs.NodeStub(csi.channel)
    assert code_of(node.NodeGetInfo, pb2.NodeGetInfoRequest()) == grpc.StatusCode.UNIMPLEMENTED


def test_create_volume_is_idempotent_by_name(csi: Csi) -> None:
    vol = create_volume(csi, "pvc-1")
    assert vol.volume_id == str(csi.root / "volumes" / "pvc-1")
    assert Path(vol.volume_id).is_dir() and list(Path(vol.volume_id).iterdir()) == []
    assert vol.capacity_bytes == GIB and not vol.HasField("content_source")
    assert create_volume(csi, "pvc-1") == vol
    sized = create_volume(csi, "pvc-2", required=5 * GIB)
    assert sized.capacity_bytes == 5 * GIB
    assert code_of(create_volume, csi, "pvc-1", 2 * GIB) == grpc.StatusCode.ALREADY_EXISTS
    assert code_of(create_volume, csi, "") == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(create_volume, csi, "a/b") == grpc.StatusCode.INVALID_ARGUMENT
    no_caps = pb2.CreateVolumeRequest(name="pvc-3")
    assert code_of(csi.controller.CreateVolume, no_caps) == grpc.StatusCode.INVALID_ARGUMENT


def test_snapshot_copies_bytes_mtimes_and_symlinks(csi: Csi, tmp_path: Path) -> None:
    source = make_source(tmp_path / "broker-log-dir")
    before = time.time()
    snap = snapshot(csi, "snap-1", str(source))
    copy = Path(snap.snapshot_id)
    assert copy == csi.root / "snapshots" / "snap-1"
    assert files_of(copy) == files_of(source)
    assert (copy / "latest").is_symlink() and os.readlink(copy / "latest") == "topic-0"
    assert (copy / "meta.properties").stat().st_mtime_ns == 1_000_000_000_000_000_000
    assert snap.size_bytes == 1000 + 24 + len("node.id=1\n")
    assert snap.source_volume_id == str(source) and snap.ready_to_use
    assert before <= snap.creation_time.ToNanoseconds() / 1e9 <= time.time()
    assert snap.group_snapshot_id == ""
    # The snapshot is a copy: later writes to the source do not reach it.
    (source / "topic-0" / "00000000000000000000.log").write_bytes(b"changed")
    assert (copy / "topic-0" / "00000000000000000000.log").read_bytes() == b"x" * 1000
    # Idempotent by name and source; another source under the same name is refused.
    assert snapshot(csi, "snap-1", str(source)) == snap
    other = make_source(tmp_path / "other")
    assert code_of(snapshot, csi, "snap-1", str(other)) == grpc.StatusCode.ALREADY_EXISTS
    missing = str(tmp_path / "nope")
    assert code_of(snapshot, csi, "snap-2", missing) == grpc.StatusCode.NOT_FOUND
    assert code_of(snapshot, csi, "snap-2", "relative/dir") == grpc.StatusCode.NOT_FOUND
    assert code_of(snapshot, csi, "snap-2", str(csi.root)) == grpc.StatusCode.INVALID_ARGUMENT
    assert not (csi.root / "snapshots" / "snap-2").exists()


def test_restore_and_clone_copy_bytes(csi: Csi, tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    snap = snapshot(csi, "snap-1", str(source))
    restored = create_volume(csi, "pvc-r", required=GIB, source=from_snapshot(snap.snapshot_id))
    assert restored.content_source.snapshot.snapshot_id == snap.snapshot_id
    assert files_of(Path(restored.volume_id)) == files_of(source)
    clone_source = pb2.VolumeContentSource(
        volume=pb2.VolumeContentSource.VolumeSource(volume_id=restored.volume_id)
    )
    clone = create_volume(csi, "pvc-c", source=clone_source)
    assert clone.content_source.volume.volume_id == restored.volume_id
    assert files_of(Path(clone.volume_id)) == files_of(source)
    # Same name, other source: incompatible.
    assert code_of(create_volume, csi, "pvc-c", GIB, from_snapshot(snap.snapshot_id)) == (
        grpc.StatusCode.ALREADY_EXISTS
    )
    gone = from_snapshot(str(csi.root / "snapshots" / "nope"))
    assert code_of(create_volume, csi, "pvc-x", GIB, gone) == grpc.StatusCode.NOT_FOUND
    assert code_of(create_volume, csi, "pvc-y", 10, from_snapshot(snap.snapshot_id)) == (
        grpc.StatusCode.OUT_OF_RANGE
    )
    assert not (csi.root / "volumes" / "pvc-x").exists()


def test_delete_volume_only_deletes_its_own(csi: Csi, tmp_path: Path) -> None:
    vol = create_volume(csi, "pvc-1")
    (Path(vol.volume_id) / "data").write_text("x")
    for _ in range(2):  # idempotent
        csi.controller.DeleteVolume(pb2.DeleteVolumeRequest(volume_id=vol.volume_id))
        assert not Path(vol.volume_id).exists()
    static = make_source(tmp_path / "static-pv")
    csi.controller.DeleteVolume(pb2.DeleteVolumeRequest(volume_id=str(static)))
    assert files_of(static) and (static / "latest").is_symlink()
    # A name is free again after deletion.
    assert create_volume(csi, "pvc-1").volume_id == vol.volume_id


def test_validate_volume_capabilities(csi: Csi, tmp_path: Path) -> None:
    static = make_source(tmp_path / "static")
    req = pb2.ValidateVolumeCapabilitiesRequest(
        volume_id=str(static), volume_capabilities=[mount_cap()]
    )
    resp = csi.controller.ValidateVolumeCapabilities(req)
    assert list(resp.confirmed.volume_capabilities) == [mount_cap()]
    req.volume_id = str(tmp_path / "nope")
    assert code_of(csi.controller.ValidateVolumeCapabilities, req) == grpc.StatusCode.NOT_FOUND


def test_delete_and_list_snapshots(csi: Csi, tmp_path: Path) -> None:
    a, b = make_source(tmp_path / "a"), make_source(tmp_path / "b")
    snaps = [snapshot(csi, f"snap-{i}", str(a if i % 2 else b)) for i in range(5)]
    listed = list_snapshots(csi)
    assert [e.snapshot for e in listed.entries] == sorted(snaps, key=lambda s: s.snapshot_id)
    assert listed.next_token == ""
    only_a = list_snapshots(csi, source_volume_id=str(a))
    assert {e.snapshot.snapshot_id for e in only_a.entries} == {
        snaps[1].snapshot_id,
        snaps[3].snapshot_id,
    }
    one = list_snapshots(csi, snapshot_id=snaps[2].snapshot_id)
    assert [e.snapshot for e in one.entries] == [snaps[2]]
    assert list(list_snapshots(csi, snapshot_id="/no/such/snapshot").entries) == []
    # Paging.
    seen, token = [], ""
    while True:
        page = list_snapshots(csi, max_entries=2, starting_token=token)
        assert len(page.entries) <= 2
        seen += [e.snapshot.snapshot_id for e in page.entries]
        token = page.next_token
        if not token:
            break
    assert seen == sorted(s.snapshot_id for s in snaps)
    assert code_of(list_snapshots, csi, starting_token="bogus") == grpc.StatusCode.ABORTED
    # Delete, twice.
    for _ in range(2):
        csi.controller.DeleteSnapshot(pb2.DeleteSnapshotRequest(snapshot_id=snaps[0].snapshot_id))
    assert not Path(snaps[0].snapshot_id).exists()
    assert list(list_snapshots(csi, snapshot_id=snaps[0].snapshot_id).entries) == []
    assert files_of(b)  # the source is untouched


def test_concurrent_creates_of_one_name_cut_once(csi: Csi, tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    with futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: snapshot(csi, "snap", str(source)), range(16)))
    assert all(a == answers[0] for a in answers)
    assert sorted(p.name for p in (csi.root / "snapshots").iterdir()) == ["snap", "snap.json"]


def test_group_snapshot(csi: Csi, tmp_path: Path) -> None:
    sources = [str(make_source(tmp_path / f"broker-{i}")) for i in range(3)]
    req = pb2.CreateVolumeGroupSnapshotRequest(name="group-1", source_volume_ids=sources)
    group = csi.group.CreateVolumeGroupSnapshot(req).group_snapshot
    assert group.group_snapshot_id == str(csi.root / "groups" / "group-1.json")
    assert Path(group.group_snapshot_id).is_file() and group.ready_to_use
    ids = [s.snapshot_id for s in group.snapshots]
    assert ids == [str(csi.root / "snapshots" / f"group-1-{i}") for i in range(3)]
    for snap, source in zip(group.snapshots, sources, strict=True):
        assert snap.source_volume_id == source and snap.ready_to_use
        assert snap.group_snapshot_id == group.group_snapshot_id
        assert files_of(Path(snap.snapshot_id)) == files_of(Path(source))
    assert csi.group.CreateVolumeGroupSnapshot(req).group_snapshot == group
    other = pb2.CreateVolumeGroupSnapshotRequest(name="group-1", source_volume_ids=sources[:2])
    assert code_of(csi.group.CreateVolumeGroupSnapshot, other) == grpc.StatusCode.ALREADY_EXISTS
    # Members show in ListSnapshots, and go only with their group.
    member = list_snapshots(csi, snapshot_id=ids[0]).entries[0].snapshot
    assert member.group_snapshot_id == group.group_snapshot_id
    delete_member = pb2.DeleteSnapshotRequest(snapshot_id=ids[0])
    assert code_of(csi.controller.DeleteSnapshot, delete_member) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    get = pb2.GetVolumeGroupSnapshotRequest(
        group_snapshot_id=group.group_snapshot_id, snapshot_ids=reversed(ids)
    )
    assert csi.group.GetVolumeGroupSnapshot(get).group_snapshot == group
    wrong = pb2.GetVolumeGroupSnapshotRequest(
        group_snapshot_id=group.group_snapshot_id, snapshot_ids=ids[:1]
    )
    assert code_of(csi.group.GetVolumeGroupSnapshot, wrong) == grpc.StatusCode.INVALID_ARGUMENT
    delete = pb2.DeleteVolumeGroupSnapshotRequest(
        group_snapshot_id=group.group_snapshot_id, snapshot_ids=ids
    )
    for _ in range(2):
        csi.group.DeleteVolumeGroupSnapshot(delete)
    assert not any(Path(i).exists() for i in ids)
    assert not Path(group.group_snapshot_id).exists()
    assert code_of(csi.group.GetVolumeGroupSnapshot, get) == grpc.StatusCode.NOT_FOUND
    assert all(Path(s).is_dir() for s in sources)


def test_fail_snapshot_fault(csi: Csi, tmp_path: Path) -> None:
    good = str(make_source(tmp_path / "data-broker-1"))
    bad = str(make_source(tmp_path / "data-broker-2"))
    csi_hostpath.set_faults(csi.root, fail_snapshot=["broker-2"])
    with pytest.raises(grpc.RpcError) as err:
        snapshot(csi, "snap-bad", bad)
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert err.value.details() == f"injected fault: snapshot of {bad} fails"
    assert snapshot(csi, "snap-good", good).ready_to_use
    req = pb2.CreateVolumeGroupSnapshotRequest(name="g", source_volume_ids=[good, bad])
    assert code_of(csi.group.CreateVolumeGroupSnapshot, req) == grpc.StatusCode.INTERNAL
    left = sorted(p.name for p in (csi.root / "snapshots").iterdir())
    assert left == ["snap-good", "snap-good.json"]
    assert list((csi.root / "groups").iterdir()) == []
    csi_hostpath.clear_faults(csi.root)
    assert snapshot(csi, "snap-bad", bad).ready_to_use
    assert csi.group.CreateVolumeGroupSnapshot(req).group_snapshot.ready_to_use


def test_never_ready_fault(csi: Csi, tmp_path: Path) -> None:
    source = str(make_source(tmp_path / "src"))
    csi_hostpath.set_faults(csi.root, never_ready=True)
    snap = snapshot(csi, "snap", source)
    assert not snap.ready_to_use
    assert files_of(Path(snap.snapshot_id)) == files_of(Path(source))  # bytes are there
    assert not list_snapshots(csi, snapshot_id=snap.snapshot_id).entries[0].snapshot.ready_to_use
    req = pb2.CreateVolumeGroupSnapshotRequest(name="g", source_volume_ids=[source])
    group = csi.group.CreateVolumeGroupSnapshot(req).group_snapshot
    assert not group.ready_to_use and not group.snapshots[0].ready_to_use
    get = pb2.GetVolumeGroupSnapshotRequest(group_snapshot_id=group.group_snapshot_id)
    assert not csi.group.GetVolumeGroupSnapshot(get).group_snapshot.ready_to_use
    csi_hostpath.clear_faults(csi.root)
    assert snapshot(csi, "snap", source).ready_to_use
    assert list_snapshots(csi, snapshot_id=snap.snapshot_id).entries[0].snapshot.ready_to_use
    got = csi.group.GetVolumeGroupSnapshot(get).group_snapshot
    assert got.ready_to_use and got.snapshots[0].ready_to_use


def test_set_faults_rejects_unknown_faults(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        csi_hostpath.set_faults(tmp_path, fail_snapshots=["x"])
    with pytest.raises(TypeError):
        csi_hostpath.set_faults(tmp_path, never_ready="yes")
    assert not (tmp_path / "faults.json").exists()


def test_prepare_generates_stubs_into_the_cache(tmp_path: Path) -> None:
    proto = Path(str(load_stubs().pb2.__file__)).parent / "csi.proto"
    env = {**os.environ, "KASTEN_BP_CACHE": str(tmp_path), "KASTEN_BP_CSI_PROTO": str(proto)}
    run = [sys.executable, "-m", "tests.kube.csi_hostpath", "--prepare"]
    subprocess.run(run, cwd=REPO, env=env, check=True, timeout=120)
    generated = list((tmp_path / "csi-spec-v1.12.0" / "python").glob("*/csi_pb2_grpc.py"))
    assert len(generated) == 1
    assert [p.name for p in (tmp_path / "csi-spec-v1.12.0" / "python").iterdir()] == [
        generated[0].parent.name
    ]


def test_runs_as_a_process_until_sigterm(tmp_path: Path) -> None:
    sock = tmp_path / "run" / "csi.sock"
    sock.parent.mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock))  # a socket file left by a killed driver
    stale.close()
    cmd = [sys.executable, "-m", "tests.kube.csi_hostpath", "--socket", str(sock)]
    cmd += ["--root", str(tmp_path / "new-root")]
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        with grpc.insecure_channel(f"unix:{sock}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            info = stubs.IdentityStub(channel).GetPluginInfo(pb2.GetPluginInfoRequest())
        assert info.name == "hostpath.csi.kasten-bp.test"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "GetPluginInfo -> OK" in stderr
    assert not sock.exists()
    assert (tmp_path / "new-root" / "volumes").is_dir()
