"""Fixtures for integration tests: one real lab per session, a fresh topic per test."""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from kasten_bp.backup import Backups
from kasten_bp.config import load_config
from kasten_bp.connect import RUNNING, describe_state
from kasten_bp.errors import RunFailed
from kasten_bp.kafka import admin
from kasten_bp.lab import mm2
from kasten_bp.lab.lab import Lab
from kasten_bp.platforms.local import LocalPlatform

from .helpers import LabHandle

HERE = Path(__file__).parent
_session_labs: list[Lab] = []  # the session's lab, once a test has started it


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration needs real services: mark it `integration`, so
    `-m "not integration"` leaves them all out. (A `pytestmark` in a conftest does nothing:
    pytest reads it from test modules only.)"""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def lab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabHandle]:
    if request.config.getoption("--kafka-from") == "docker":
        yield request.getfixturevalue("docker_lab")
        return
    workdir = Path(os.environ.get("KASTEN_BP_TEST_LAB") or tmp_path_factory.mktemp("lab"))
    the_lab = Lab(workdir)
    _session_labs.append(the_lab)
    the_lab.up(primary_brokers=1, mirror_brokers=3)
    try:
        yield LabHandle(the_lab, the_lab.config_path)
    finally:
        if not os.environ.get("KASTEN_BP_KEEP_LAB"):
            the_lab.down()


@pytest.fixture
def topic(lab: LabHandle) -> Iterator[str]:
    """A fresh primary topic with 3 partitions."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    admin.create_topic(lab.primary, name, 3)
    yield name


@pytest.fixture
def restored_ids(lab: LabHandle) -> Iterator[list[str]]:
    """Backup ids a test restored on the local platform; their clusters are stopped after."""
    ids: list[str] = []
    yield ids
    for backup_id in ids:
        LocalPlatform(lab.config).stop_restored(backup_id)


@pytest.fixture(scope="module", autouse=True)
def no_restored_cluster_outlives_its_module(request: pytest.FixtureRequest) -> Iterator[None]:
    """A restored cluster is three idle brokers; left running, each one slows every test
    after it (heartbeats and raft fetches on two cores). Stop what the session lab still
    has running after each module, and say which module left it."""
    yield
    for the_lab in _session_labs:
        state = the_lab.load_state()
        if state is None:
            continue
        running = [
            backup_id
            for backup_id, cluster in state.restored.items()
            if any(b.handle.alive() for b in cluster.brokers)
        ]
        if not running:
            continue
        left = f"{request.node.nodeid} left restored clusters running: {sorted(running)}"
        warnings.warn(left, stacklevel=1)
        platform = LocalPlatform(load_config(the_lab.config_path))
        for backup_id in running:
            platform.stop_restored(backup_id)


@pytest.fixture(scope="module", autouse=True)
def no_module_leaves_the_mirror_stopped(request: pytest.FixtureRequest) -> Iterator[None]:
    """A module that leaves the session lab's MM2 connectors stopped, or a run of its
    catalog unfinished, breaks every module after it ("run `kasten-bp resume` first").
    Finish what it left (`resume`, then the connectors), and fail its teardown naming it."""
    yield
    left: list[str] = []
    for the_lab in _session_labs:
        state = the_lab.load_state()
        if state is None or not state.connect.handle.alive():
            continue
        backups = Backups(load_config(the_lab.config_path))
        unfinished = [f"{r['backup_id']} {r['status']}" for r in backups.status()["current"]]
        if unfinished:
            left.append(f"unfinished runs {unfinished}")
            with contextlib.suppress(RunFailed):  # a held run with no snapshot: rolled back
                backups.resume()
        with the_lab.connect_client(state) as client:
            for name in mm2.connector_names():
                status = client.status(name)
                if status["connector"]["state"] != RUNNING:
                    left.append(f"{name} ({describe_state(status)})")
                    client.resume(name)
    if left:
        pytest.fail(f"{request.node.nodeid} left the session lab with " + "; ".join(left))
