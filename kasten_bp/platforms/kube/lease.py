"""The run lock on Kubernetes: a `coordination.k8s.io/v1` Lease, fail-safe the way client-go's
leader election is.

- The holder renews every third of the Lease's duration, each try bounded. When no renewal
  has succeeded for two thirds of the duration, the run stops acting (`LockLost` in the main
  thread) before anyone may take the Lease, and leaves its journal to the next holder.
- Expiry is judged by the local time at which a change of the Lease was last observed,
  never by comparing the holder's renewTime with this machine's clock: a holder whose clock
  runs behind is not taken for dead. The holder's clock is only trusted the other way: a
  renewTime that looks fresh makes the Lease busy (skew can only make us wait).
- A holder known dead is taken over at once: its pod is gone or has ended, or its process
  is gone on this host. So `resume` right after a killed hook pod need not wait.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kasten_bp.errors import KastenBpError, LockBusy, LockLost, UsageError
from kasten_bp.platforms.kube.api import Conflict, Kube
from kasten_bp.platforms.kube.hold_job import own_pod
from kasten_bp.platforms.kube.resources import LEASES, PODS
from kasten_bp.waiting import announce

log = logging.getLogger(__name__)

DURATION_SECONDS = 60
# Each renewal (one request) is bounded by this share of the duration...
TRY_FRACTION = 1 / 12
# ... and the run stops acting once none has succeeded for this share.
RENEW_DEADLINE_FRACTION = 2 / 3

Clock = Callable[[], float]


@dataclass
class Clocks:
    """Injected in tests: `wall` is what this process writes as renewTime (a skewed
    machine's clock), `monotonic` what it measures waits and observations with."""

    wall: Clock = time.time
    monotonic: Clock = time.monotonic


def micro(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


# --- who holds it -----------------------------------------------------------------------------

_IDENTITY = re.compile(
    r"\((?P<host>\S+) pid (?P<pid>\d+) \w+(?: pod (?P<ns>[^/\s]+)/(?P<pod>\S+))?\)$"
)


def holder_identity(owner: str) -> str:
    """Unique per acquisition (two runs in one process must not share the lock), and telling
    where the holder runs, so that a dead one can be recognised."""
    pod = own_pod()
    where = f" pod {pod[0]}/{pod[1]}" if pod else ""
    return f"{owner} ({socket.gethostname()} pid {os.getpid()} {uuid.uuid4().hex[:6]}{where})"


def holder_gone(kube: Kube, holder: str) -> str | None:
    """Why the holder is known dead, or None when it may be alive."""
    found = _IDENTITY.search(holder)
    if found is None:
        return None
    if found["pod"]:
        try:
            pod = kube.get_optional(PODS, found["ns"], found["pod"])
        except KastenBpError:
            return None  # cannot look: it may be alive
        if pod is None:
            return f"its pod {found['ns']}/{found['pod']} is gone"
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            return f"its pod {found['ns']}/{found['pod']} has ended ({phase})"
        return None
    if found["host"] == socket.gethostname() and not _process_alive(int(found["pid"])):
        return f"its process {found['pid']} on {found['host']} is gone"
    return None


def _process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


# --- taking it ----------------------------------------------------------------------------------


@dataclass
class Observation:
    """What this process has seen of a Lease held by another: expired only once it has not
    changed for its whole duration, by this process's clock."""

    clock: Clock
    seen: tuple[Any, ...] | None = None
    since: float = 0.0
    changes: int = field(default=0)

    def look(self, spec: dict[str, Any]) -> None:
        key = (
            spec.get("holderIdentity"),
            spec.get("renewTime"),
            spec.get("acquireTime"),
            spec.get("leaseTransitions"),
        )
        if key != self.seen:
            self.changes += self.seen is not None
            self.seen, self.since = key, self.clock()

    def unchanged_for(self) -> float:
        return self.clock() - self.since


def acquire(
    kube: Kube,
    namespace: str,
    name: str,
    identity: str,
    duration: int = DURATION_SECONDS,
    clocks: Clocks | None = None,
) -> dict[str, Any]:
    """Take the Lease, or UsageError (exit 2) while another live run holds it."""
    clocks = clocks or Clocks()
    observed = Observation(clocks.monotonic)
    told = False
    while True:
        existing = kube.get_optional(LEASES, namespace, name)
        spec = _spec(identity, duration, clocks)
        if existing is None:
            try:
                return kube.create(LEASES, namespace, {"metadata": {"name": name}, "spec": spec})
            except Conflict:
                continue
        current = existing.get("spec") or {}
        holder = current.get("holderIdentity")
        if not holder or holder == identity:
            return _take(kube, namespace, name, existing, spec)
        gone = holder_gone(kube, holder)
        if gone is not None:
            log.warning("lease %s/%s: taking it over from %s: %s", namespace, name, holder, gone)
            return _take(kube, namespace, name, existing, spec)
        held_for = float(current.get("leaseDurationSeconds") or duration)
        renewed = parse_time(current.get("renewTime")) or parse_time(current.get("acquireTime"))
        observed.look(current)
        looks_fresh = renewed is not None and renewed + held_for > clocks.wall()
        if looks_fresh or observed.changes:
            until = micro((renewed or 0.0) + held_for)[:19] + "Z"
            raise LockBusy(
                f"lease {namespace}/{name} is held by {holder} (renewed until {until} by its "
                "clock): another kasten-bp run is in progress against this cluster; wait for "
                "it or check `kasten-bp status`",
                str(holder),
            )
        if observed.unchanged_for() >= held_for:
            log.warning("lease %s/%s: taking over the expired lease of %s", namespace, name, holder)
            return _take(kube, namespace, name, existing, spec)
        if not told:
            announce(
                f"lease {namespace}/{name}: its holder {holder} has not renewed it by its own "
                f"clock; watching it for up to {held_for:.0f}s before taking it over"
            )
            told = True
        time.sleep(1.0)


def _spec(identity: str, duration: int, clocks: Clocks) -> dict[str, Any]:
    now = micro(clocks.wall())
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": duration,
        "acquireTime": now,
        "renewTime": now,
    }


def _take(
    kube: Kube, namespace: str, name: str, existing: dict[str, Any], spec: dict[str, Any]
) -> dict[str, Any]:
    current = existing.get("spec") or {}
    existing["spec"] = {
        **current,
        **spec,
        "leaseTransitions": int(current.get("leaseTransitions") or 0)
        + (current.get("holderIdentity") != spec["holderIdentity"]),
    }
    try:
        return kube.replace(LEASES, namespace, name, existing)
    except Conflict:
        raise UsageError(
            f"lease {namespace}/{name} was taken by another kasten-bp run at the same moment"
        ) from None


# --- holding it -------------------------------------------------------------------------------


class Renewer:
    """Renews a held Lease in a thread; calls `on_lost` once when it cannot keep it."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        lease: dict[str, Any],
        on_lost: Callable[[str], None],
        clocks: Clocks,
    ) -> None:
        self.namespace, self.name = namespace, name
        self.identity = str(lease["spec"]["holderIdentity"])
        self.duration = float(lease["spec"]["leaseDurationSeconds"])
        self.kube = kube.bounded(self.duration * TRY_FRACTION)
        self.current = lease
        self.on_lost = on_lost
        self.clocks = clocks
        self.stop = threading.Event()
        self.lost: str | None = None
        self.thread = threading.Thread(target=self._run, name=f"lease-{name}", daemon=True)

    def _run(self) -> None:
        interval = self.duration / 3
        last_renewed = self.clocks.monotonic()
        wait = interval
        while not self.stop.wait(wait):
            if self._renew_once():
                last_renewed, wait = self.clocks.monotonic(), interval
            else:
                wait = min(interval, 2.0)  # try again soon: the deadline is near
            late = self.clocks.monotonic() - last_renewed
            if self.lost is None and late > self.duration * RENEW_DEADLINE_FRACTION:
                self.lost = f"not renewed for {late:.0f}s"
            if self.lost is not None:
                self.on_lost(self.lost)
                return

    def _renew_once(self) -> bool:
        try:
            self.current["spec"]["renewTime"] = micro(self.clocks.wall())
            self.current = self.kube.replace(LEASES, self.namespace, self.name, self.current)
            return True
        except Exception as exc:  # noqa: BLE001 - any failure is a missed renewal
            log.warning("lease %s/%s: renewal failed: %s", self.namespace, self.name, exc)
        with contextlib.suppress(Exception):
            fresh = self.kube.get(LEASES, self.namespace, self.name)
            holder = (fresh.get("spec") or {}).get("holderIdentity")
            if holder != self.identity:
                self.lost = f"taken over by {holder}"
            else:
                self.current = fresh  # our own, changed under us: renew that version
        return False


@contextmanager
def lease_lock(
    kube: Kube,
    namespace: str,
    name: str,
    owner: str,
    duration_seconds: int = DURATION_SECONDS,
    clocks: Clocks | None = None,
) -> Iterator[None]:
    """Hold the Lease `namespace/name` while the body runs, renewing it in the background.

    A live lease held by someone else -> UsageError (exit 2). One whose holder is dead, or
    that was seen unchanged for its duration, is taken over. When it cannot be renewed in
    time, the body is stopped with LockLost (exit 4) in the main thread. Released on exit.
    """
    clocks = clocks or Clocks()
    identity = holder_identity(owner)
    lease = acquire(kube, namespace, name, identity, duration_seconds, clocks)
    lost_here = threading.Event()
    main = threading.main_thread()
    in_main = threading.current_thread() is main

    def on_lost(why: str) -> None:
        lost_here.set()
        if in_main and main.ident is not None:
            signal.pthread_kill(main.ident, signal.SIGUSR1)

    def stop_acting(signum: int, frame: object) -> None:
        raise LockLost(
            f"lease {namespace}/{name}: {renewer.lost}; this run stopped acting before "
            "another could take the lease; its watchdog or `kasten-bp resume` finishes it"
        )

    renewer = Renewer(kube, namespace, name, lease, on_lost, clocks)
    previous = signal.signal(signal.SIGUSR1, stop_acting) if in_main else None
    renewer.thread.start()
    try:
        yield
    finally:
        renewer.stop.set()
        renewer.thread.join(timeout=duration_seconds * TRY_FRACTION * 2 + 1)
        if previous is not None:
            signal.signal(signal.SIGUSR1, previous)
        if not lost_here.is_set():
            _release(kube, namespace, name, identity)


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
