"""Apache Kafka jars from Maven Central, resolved with Maven into a versioned cache."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from kasten_bp.errors import UsageError

KAFKA_VERSION = "4.2.0"
_POM = Path(__file__).with_name("kafka-jars.pom.xml")
# Jars whose presence proves a complete resolution (broker, Connect, MM2, logging binding).
_REQUIRED = ("kafka_2.13-", "connect-runtime-", "connect-mirror-", "log4j-slf4j-impl-")


def cache_root() -> Path:
    return Path(os.environ.get("KASTEN_BP_CACHE", Path.home() / ".cache" / "kasten-bp"))


def libs_dir(version: str = KAFKA_VERSION) -> Path:
    return cache_root() / f"kafka-{version}" / "libs"


@functools.cache
def _java_version(java: str) -> str:
    return subprocess.run([java, "-version"], capture_output=True, text=True).stderr


def check_java() -> str:
    """Return the java executable, or raise naming what to install."""
    java = shutil.which("java")
    if not java:
        raise UsageError(
            "java not found: install a JDK >= 17 (e.g. apt-get install openjdk-17-jdk)"
        )
    out = _java_version(java)
    match = re.search(r'version "(\d+)', out)
    if not match or int(match.group(1)) < 17:
        raise UsageError(f"java >= 17 is required, found: {out.splitlines()[0] if out else '?'}")
    return java


def class_archive(kind: str, version: str = KAFKA_VERSION) -> Path:
    """Where the class-data-sharing archive of one kind of lab JVM ("broker", "connect")
    lives: keyed by Kafka version and by the exact JVM, which refuses another's archive."""
    java = check_java()
    jvm = hashlib.sha256(f"{os.path.realpath(java)}\n{_java_version(java)}".encode())
    return cache_root() / f"kafka-{version}" / "cds" / jvm.hexdigest()[:16] / f"{kind}.jsa"


def class_archive_flags(kind: str) -> list[str]:
    """JVM flags that map the archive in when it has been built (`make install` builds it):
    a JVM then starts in about half the time. Without one the JVM starts as before."""
    archive = class_archive(kind)
    if not archive.is_file():
        return []
    # -Xshare:auto: a stale or refused archive is ignored, never fatal.
    return [f"-XX:SharedArchiveFile={archive}", "-Xshare:auto", "-Xlog:cds=off"]


def _complete(libs: Path) -> bool:
    if not libs.is_dir():
        return False
    names = [p.name for p in libs.iterdir()]
    return all(any(n.startswith(prefix) for n in names) for prefix in _REQUIRED)


def ensure_kafka_jars(version: str = KAFKA_VERSION) -> Path:
    """Resolve the jars once; later calls return at once. Returns the libs directory."""
    check_java()
    libs = libs_dir(version)
    if _complete(libs):
        return libs
    mvn = shutil.which("mvn")
    if not mvn:
        raise UsageError("mvn not found: install Apache Maven (e.g. apt-get install maven)")
    staging = libs.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(_POM),
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or not _complete(staging):
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise UsageError(f"could not resolve Kafka {version} jars with Maven: {' | '.join(tail)}")
    # Rename into place so an interrupted resolution never looks complete.
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    return libs


def classpath(version: str = KAFKA_VERSION) -> str:
    return str(libs_dir(version) / "*")


def main() -> None:
    """`python -m kasten_bp.lab.jars`: used by `make install`."""
    try:
        print(ensure_kafka_jars())
    except UsageError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
