"""Kafka Connect REST client for the MM2 connectors: state, stop, resume, offsets."""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from kasten_bp.config import BasicAuth, ConnectConfig, SslConfig
from kasten_bp.errors import KastenBpError, PermanentError, TemporaryError, UsageError
from kasten_bp.transience import is_temporary
from kasten_bp.waiting import time_left

# Connector states as Connect reports them (KIP-875 added STOPPED).
RUNNING, PAUSED, STOPPED = "RUNNING", "PAUSED", "STOPPED"
# States that pass during a Connect rebalance and settle into RUNNING (a person or an
# operator sets only RUNNING, PAUSED or STOPPED; FAILED is refused before a backup).
PASSING = ("UNASSIGNED", "RESTARTING")


def restorable(state: str) -> str:
    """The state to put a connector back into: a passing state is the RUNNING it settles
    into, so a state seen mid-rebalance is never journaled as one `resume` cannot set.
    Anything else is kept as it is (a workload's replica count among the recorded states)."""
    return RUNNING if state in PASSING else state


# A request inside a wait that is about to end still gets this long.
MIN_REQUEST_SECONDS = 2.0

_retry = retry(
    retry=retry_if_exception(is_temporary),
    wait=wait_exponential_jitter(multiplier=0.2, max=3),
    stop=stop_after_delay(60),
    reraise=True,
)


def ssl_context(tls: SslConfig | None) -> ssl.SSLContext | bool:
    """What httpx verifies the Connect REST server with: the system CAs (True), or a
    context trusting `ca_file` and presenting a client certificate. Key password read now."""
    if tls is None:
        return True
    pem = tls.pem_from_secrets("connect")
    try:
        context = ssl.create_default_context(cafile=tls.ca_file, cadata=pem.get("ca"))
        if tls.has_cert:
            password = tls.key_password("connect") if tls.has_key_password else None
            with client_cert_files(tls, pem) as (cert_file, key_file):
                context.load_cert_chain(cert_file, key_file, password)
    except (OSError, ssl.SSLError) as exc:
        # The reason only (e.g. "No such file or directory", "bad decrypt"): never a secret.
        reason = (
            getattr(exc, "strerror", None) or getattr(exc, "reason", None) or type(exc).__name__
        )
        raise UsageError(f"connect ssl: cannot load the CA, certificate or key: {reason}") from None
    return context


@contextmanager
def client_cert_files(tls: SslConfig, pem: dict[str, str]) -> Iterator[tuple[str, str]]:
    """The client certificate and key as files: Python's ssl loads them only from files, so
    what came from a Kubernetes secret lives in a private directory (0700) just for the load."""
    if "cert" not in pem and "key" not in pem:
        assert tls.cert_file is not None and tls.key_file is not None
        yield tls.cert_file, tls.key_file
        return
    with tempfile.TemporaryDirectory(prefix="kasten-bp-tls-") as private:
        paths = []
        for name, file in (("cert", tls.cert_file), ("key", tls.key_file)):
            if file is None:
                file = os.path.join(private, name + ".pem")
                fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(pem[name])
            paths.append(file)
        yield paths[0], paths[1]


def basic_auth(auth: BasicAuth | None) -> httpx.BasicAuth | None:
    if auth is None:
        return None
    return httpx.BasicAuth(auth.username, auth.password("connect basic_auth"))


class ConnectClient:
    def __init__(
        self,
        url: str,
        timeout: float = 15.0,
        tls: SslConfig | None = None,
        auth: BasicAuth | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, verify=ssl_context(tls), auth=basic_auth(auth)
        )

    @classmethod
    def for_config(cls, connect: ConnectConfig, timeout: float = 15.0) -> ConnectClient:
        """A client of the configured Connect with its TLS and basic auth: use this one."""
        return cls(connect.url, timeout, connect.ssl, connect.basic_auth)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ConnectClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _path(name: str, suffix: str = "") -> str:
        # Strimzi-style names contain "->": encode everything but nothing else.
        return f"/connectors/{quote(name, safe='')}{suffix}"

    def _request_once(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        response.raise_for_status()
        return response

    _request = _retry(_request_once)

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        left = time_left()
        try:
            if left is None:
                return self._request(method, path, **kwargs)
            # Inside a wait: one try, bounded by the time the wait has left; the wait
            # itself tries again (a retry here could outlast it).
            bound = min(self._http.timeout.read or 15.0, max(MIN_REQUEST_SECONDS, left))
            return self._request_once(method, path, timeout=bound, **kwargs)
        except httpx.HTTPStatusError as exc:
            body = exc.response.text.strip()[:200]
            status = exc.response.status_code
            if status == 404 and "No status found" in body:
                # A connector just created publishes its status a moment later.
                raise TemporaryError(f"{what}: no status yet on Connect {self.url}") from None
            if status == 404:
                raise UsageError(f"{what}: not found on Connect {self.url} ({body})") from None
            error = TemporaryError if is_temporary(exc) else KastenBpError
            raise error(f"{what}: HTTP {status}: {body}") from None
        except httpx.TransportError as exc:
            raise TemporaryError(f"{what}: Connect {self.url} unreachable: {exc}") from None

    def reachable(self) -> bool:
        try:
            return self._http.get("/").status_code == 200
        except httpx.TransportError:
            return False

    def connectors(self) -> list[str]:
        return list(self._call("GET", "/connectors", "listing connectors").json())

    def put_config(self, name: str, config: dict[str, str]) -> None:
        self._call("PUT", self._path(name, "/config"), f"connector {name}", json=config)

    def status(self, name: str) -> dict[str, Any]:
        return dict(self._call("GET", self._path(name, "/status"), f"connector {name}").json())

    def state(self, name: str) -> str:
        return str(self.status(name)["connector"]["state"])

    def all_running(self, name: str) -> bool:
        return all_running(self.status(name))

    def stop(self, name: str) -> None:
        self._call("PUT", self._path(name, "/stop"), f"stopping connector {name}")

    def pause(self, name: str) -> None:
        self._call("PUT", self._path(name, "/pause"), f"pausing connector {name}")

    def resume(self, name: str) -> None:
        self._call("PUT", self._path(name, "/resume"), f"resuming connector {name}")

    def restore_state(self, name: str, state: str) -> None:
        """Put a connector back into a recorded state."""
        if state == RUNNING:
            self.resume(name)
        elif state == PAUSED:
            self.pause(name)
        elif state == STOPPED:
            self.stop(name)
        else:
            # UNASSIGNED or RESTARTING journaled by an older kasten-bp: they settle into
            # RUNNING, and MM2 must not stay stopped for want of a state to set.
            self.resume(name)

    def offsets(self, name: str) -> list[dict[str, Any]]:
        """Committed source offsets (KIP-875): [{"partition": {...}, "offset": {...}}]."""
        body = self._call("GET", self._path(name, "/offsets"), f"offsets of connector {name}")
        return list(body.json().get("offsets", []))

    def alter_offsets(self, name: str, entries: list[dict[str, Any]]) -> None:
        """Set committed source offsets (KIP-875; the connector must be STOPPED)."""
        what = f"altering the offsets of connector {name}"
        self._call("PATCH", self._path(name, "/offsets"), what, json={"offsets": entries})


# Judgements of one `status` answer: a wait's probe asks for the status once per poll.


def all_running(status: dict[str, Any]) -> bool:
    """Connector and every task RUNNING. MM2 connectors have no tasks until there is
    something to do (no topics, no groups yet), so zero tasks is not a failure."""
    tasks = status.get("tasks", [])
    return status["connector"]["state"] == RUNNING and all(t["state"] == RUNNING for t in tasks)


def describe_state(status: dict[str, Any]) -> str:
    """ "connector RUNNING, tasks 0 UNASSIGNED 1 RUNNING": for messages."""
    tasks = " ".join(f"{t.get('id')} {t.get('state')}" for t in status.get("tasks", []))
    return f"connector {status['connector']['state']}, tasks {tasks or 'none'}"


def reached(name: str, status: dict[str, Any], state: str) -> bool:
    """Whether connector `name` is in `state` (RUNNING: its tasks too), for a wait's probe:
    True; PermanentError when it or a task failed (waiting cannot mend that); otherwise
    TemporaryError naming what it is instead, which the wait's timeout reports."""
    trace = failed_trace(status)
    if trace:
        raise PermanentError(f"connector {name} failed: {trace}")
    done = all_running(status) if state == RUNNING else status["connector"]["state"] == state
    if not done:
        raise TemporaryError(f"connector {name}: {describe_state(status)}")
    return True


def failed_trace(status: dict[str, Any]) -> str | None:
    for part in [status["connector"], *status.get("tasks", [])]:
        if part.get("state") == "FAILED":
            return str(part.get("trace", "")).strip().splitlines()[0]
    return None
