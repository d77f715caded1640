"""Run a command in a pod through the API server's exec stream, and the `sync` that flushes
each broker's volume before its pod stops."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import websocket
from kubernetes import client as k8s_client
from kubernetes.stream import stream

from kasten_bp.errors import KastenBpError, UsageError
from kasten_bp.platforms.kube.api import Kube
from kasten_bp.waiting import announce

log = logging.getLogger(__name__)
# Opening an exec stream (TCP, TLS, the websocket upgrade) takes at most this long: the
# Kubernetes client gives the websocket no timeout of its own, so a hung API server would
# hold the run forever.
EXEC_OPEN_SECONDS = 30.0


class ExecUnavailable(KastenBpError):
    """The API server could not open an exec stream (no kubelet reachable for the pod)."""


def exec_in_pod(
    kube: Kube, namespace: str, pod: str, container: str | None, command: list[str], timeout: float
) -> tuple[int | None, str]:
    """Run a command in a pod; (exit code or None if unknown, output). Raises
    ExecUnavailable when the API server cannot reach a kubelet for this pod."""
    core = k8s_client.CoreV1Api(kube.api)
    kwargs: dict[str, Any] = {
        "command": command,
        "stderr": True,
        "stdout": True,
        "stdin": False,
        "tty": False,
        "_preload_content": False,
    }
    if container:
        kwargs["container"] = container
    # websocket-client's default applies to the sockets it opens from here on (and to each
    # read, which only follows a poll saying data is there).
    websocket.setdefaulttimeout(min(EXEC_OPEN_SECONDS, timeout))
    try:
        resp = stream(core.connect_get_namespaced_pod_exec, pod, namespace, **kwargs)
    except k8s_client.ApiException as exc:
        raw = f"{exc.status} {exc.reason} {exc.body or ''}"
        found = re.search(r'"message":"([^"]*)"', raw)
        text = found.group(1) if found else raw.strip().splitlines()[0][:200]
        if exc.status == 403:
            raise UsageError(
                f"forbidden: cannot create pods/exec in namespace {namespace} (user {kube.user()})"
            ) from None
        raise ExecUnavailable(f"pod {namespace}/{pod}: exec unavailable: {text}") from None
    except Exception as exc:  # noqa: BLE001 - websocket handshake errors vary by version
        text = str(exc)
        found = re.search(r'"message":"([^"]*)"', text)
        reason = found.group(1) if found else text.splitlines()[0][:200]
        raise ExecUnavailable(f"pod {namespace}/{pod}: exec unavailable: {reason}") from None
    output: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while resp.is_open() and time.monotonic() < deadline:
            resp.update(timeout=1)
            if resp.peek_stdout():
                output.append(resp.read_stdout())
            if resp.peek_stderr():
                output.append(resp.read_stderr())
        if resp.is_open():
            raise KastenBpError(
                f"pod {namespace}/{pod}: `{' '.join(command)}` did not finish within {timeout:.0f}s"
            )
        return resp.returncode, "".join(output)
    finally:
        resp.close()


def sync_pods(
    kube: Kube, namespace: str, pods: list[str], container: str | None, timeout: float
) -> None:
    """`sync` in each pod, so nothing a broker wrote waits in the page cache when its volume
    is snapshotted. Only when the API server cannot open an exec stream at all (no kubelet
    behind it) is a pod skipped, with a warning: the broker's clean shutdown fsyncs its logs
    and unmounting the volume flushes the rest."""
    for pod in pods:
        try:
            code, out = exec_in_pod(kube, namespace, pod, container, ["sync"], min(timeout, 60))
        except ExecUnavailable as exc:
            message = f"{exc}; skipped `sync` (clean shutdown and unmount flush the volume)"
            log.warning(message)
            announce(f"warning: {message}")
            continue
        if code not in (0, None):
            raise KastenBpError(f"pod {namespace}/{pod}: `sync` exited {code}: {out.strip()}")
