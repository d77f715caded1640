"""The run lock on Kubernetes: a `coordination.k8s.io/v1` Lease, renewed while held."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from kasten_bp.errors import KastenBpError, UsageError
from kasten_bp.platforms.kube.api import REQUEST_TIMEOUT, Conflict, Kube
from kasten_bp.platforms.kube.resources import LEASES

log = logging.getLogger(__name__)


def now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


# --- the run lock: a Lease ------------------------------------------------------------------


def holder_identity(owner: str) -> str:
    """Unique per acquisition: two runs in one process must not share the lock."""
    return f"{owner} ({socket.gethostname()} pid {os.getpid()} {uuid.uuid4().hex[:6]})"


@contextmanager
def lease_lock(
    kube: Kube,
    namespace: str,
    name: str,
    owner: str,
    duration_seconds: int = 60,
) -> Iterator[None]:
    """Hold the Lease `namespace/name` while the body runs, renewing it in the background.

    A live lease held by someone else -> UsageError (exit 2). An expired one (its holder
    died without releasing it) is taken over. Released (holder cleared) on exit.
    """
    identity = holder_identity(owner)
    lease = _acquire(kube, namespace, name, identity, duration_seconds)
    stop = threading.Event()
    lost: list[str] = []

    def renew() -> None:
        current = lease
        while not stop.wait(max(1.0, duration_seconds / 3)):
            try:
                current["spec"]["renewTime"] = now_micro()
                current = kube.replace(LEASES, namespace, name, current)
            except KastenBpError as exc:
                log.warning("lease %s/%s: renewal failed: %s", namespace, name, exc)
                try:
                    fresh = kube.get(LEASES, namespace, name)
                except KastenBpError:
                    continue
                if fresh.get("spec", {}).get("holderIdentity") != identity:
                    lost.append(str(fresh.get("spec", {}).get("holderIdentity")))
                    return
                current = fresh

    thread = threading.Thread(target=renew, name=f"lease-{name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=REQUEST_TIMEOUT)
        _release(kube, namespace, name, identity)
        if lost:
            log.warning("lease %s/%s was taken over by %s during the run", namespace, name, lost[0])


def _acquire(kube: Kube, namespace: str, name: str, identity: str, duration: int) -> dict[str, Any]:
    now = now_micro()
    spec = {
        "holderIdentity": identity,
        "leaseDurationSeconds": duration,
        "acquireTime": now,
        "renewTime": now,
    }
    existing = kube.get_optional(LEASES, namespace, name)
    if existing is None:
        try:
            return kube.create(LEASES, namespace, {"metadata": {"name": name}, "spec": spec})
        except Conflict:
            existing = kube.get(LEASES, namespace, name)
    current = existing.get("spec") or {}
    holder = current.get("holderIdentity")
    renewed = parse_time(current.get("renewTime")) or parse_time(current.get("acquireTime")) or 0.0
    expires = renewed + float(current.get("leaseDurationSeconds") or 0)
    if holder and holder != identity and expires > time.time():
        until = datetime.fromtimestamp(expires, UTC).strftime("%H:%M:%SZ")
        raise UsageError(
            f"lease {namespace}/{name} is held by {holder} (renewed until {until}): another "
            f"kasten-bp run is in progress against this cluster; wait for it or check "
            f"`kasten-bp status`"
        )
    if holder and holder != identity:
        log.warning("lease %s/%s: taking over the expired lease of %s", namespace, name, holder)
    existing["spec"] = {
        **current,
        **spec,
        "leaseTransitions": int(current.get("leaseTransitions") or 0) + 1,
    }
    try:
        return kube.replace(LEASES, namespace, name, existing)
    except Conflict:
        raise UsageError(
            f"lease {namespace}/{name} was taken by another kasten-bp run at the same moment"
        ) from None


def _release(kube: Kube, namespace: str, name: str, identity: str) -> None:
    try:
        lease = kube.get(LEASES, namespace, name)
        if (lease.get("spec") or {}).get("holderIdentity") != identity:
            return
        lease["spec"]["holderIdentity"] = None
        lease["spec"]["leaseDurationSeconds"] = 1
        kube.replace(LEASES, namespace, name, lease)
    except KastenBpError as exc:
        log.warning("lease %s/%s: release failed (it expires by itself): %s", namespace, name, exc)
