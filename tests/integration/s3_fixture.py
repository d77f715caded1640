"""A real MinIO server for the session (pytest plugin: `-p tests.integration.s3_fixture`, or
list it in `pytest_plugins`).

The `minio` fixture runs `scripts/minio-test-env up <tmpdir>`, loads the env file it writes
(KASTEN_BP_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION) into
os.environ for the whole session and runs `down` at the end. The first run builds MinIO
(`scripts/minio-test-env build`, a few minutes; `make install` does it ahead of time).

KASTEN_BP_TEST_MINIO=DIR uses DIR instead of a temporary directory (reusing a server that is
already up there); KASTEN_BP_KEEP_MINIO=1 leaves the server running after the session.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "minio-test-env"
# Generous: covers a first build of MinIO on a slow machine (normally pre-built).
UP_TIMEOUT = 1800
# Variables that would make the AWS SDK talk to something else than the test server.
_UNSET = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


@dataclass(frozen=True)
class MinioServer:
    workdir: Path
    env_file: Path
    endpoint: str
    access_key: str
    secret_key: str
    region: str

    def client(self) -> Any:
        """A plain boto3 client on the test server, to set up and inspect buckets."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=BotoConfig(s3={"addressing_style": "path"}),
        )


def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    # stderr is not captured: the script's progress shows up in pytest's output on failure.
    return subprocess.run(
        [str(SCRIPT), *args], stdout=subprocess.PIPE, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """A MinIO server for the session, its env file loaded into os.environ."""
    workdir = Path(os.environ.get("KASTEN_BP_TEST_MINIO") or tmp_path_factory.mktemp("minio"))
    try:
        up = _run("up", str(workdir), timeout=UP_TIMEOUT)
        lines = up.stdout.strip().splitlines()
        if up.returncode != 0 or not lines:
            pytest.fail(
                f"{SCRIPT.name} up {workdir} failed (exit {up.returncode}); see its stderr above",
                pytrace=False,
            )
        env_file = Path(lines[-1])
        env = read_env_file(env_file)
        with pytest.MonkeyPatch.context() as mp:
            for name in _UNSET:
                mp.delenv(name, raising=False)
            # Keep any HTTP(S) proxy of the machine away from the local server.
            for name in ("NO_PROXY", "no_proxy"):
                mp.setenv(name, ",".join(filter(None, [os.environ.get(name), "127.0.0.1"])))
            for name, value in env.items():
                mp.setenv(name, value)
            yield MinioServer(
                workdir=workdir,
                env_file=env_file,
                endpoint=env["KASTEN_BP_S3_ENDPOINT"],
                access_key=env["AWS_ACCESS_KEY_ID"],
                secret_key=env["AWS_SECRET_ACCESS_KEY"],
                region=env["AWS_DEFAULT_REGION"],
            )
    finally:
        if not os.environ.get("KASTEN_BP_KEEP_MINIO"):
            _run("down", str(workdir), timeout=120)
