"""Shared pytest options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest_plugins = [
    "tests.integration.docker_lab",
    "tests.integration.s3_fixture",
    "tests.integration.kube_fixture",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kafka-from",
        choices=("local", "docker"),
        default="local",
        help="where the lab comes from: local processes (default, what CI runs) or "
        "docker compose (needs a Docker engine; see tests/docker/docker-compose.yml)",
    )


# Under pytest-xdist (`make test` runs two workers) the tests are handed out one group at a
# time: a module's tests stay together, so module- and session-scoped labs start once per
# worker, and every test that needs the Kubernetes test environment (test_secured_lab has
# one) goes to the same worker, so one kube-apiserver and etcd serve them all.
_KUBE_GROUP = "kubernetes"


def _group_of(path: str) -> str:
    stem = Path(path).stem
    if stem.startswith("test_kubernetes_") or stem == "test_secured_lab":
        return _KUBE_GROUP
    return path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    # xdist's own `loadgroup` cannot be used: it renames node ids through an attribute
    # pytest 9 no longer reads. Its module-scope scheduler with our grouping can.
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _group_of(nodeid.split("::", 1)[0])

    return ByGroup(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Groups are handed out in collection order: the Kubernetes group, the longest, first;
    unit tests, the shortest, last, to fill the gaps."""

    def rank(item: pytest.Item) -> int:
        if _group_of(str(item.path)) == _KUBE_GROUP:
            return 0
        return 2 if "unit" in item.path.parts else 1

    items.sort(key=rank)  # stable: the order within each rank is the collection order
