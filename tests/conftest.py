"""Shared pytest options."""

from __future__ import annotations

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
