"""Which errors may get better by waiting: the one place that says so.

Retries (tenacity) and bounded waits (`waiting.wait_for`) both ask `is_temporary`. Anything
not named here is permanent: a 403, a missing CRD or a bug inside a probe ends a wait at
once with its own message instead of waiting out the timeout.

Third-party clients stay at the edges (see the import-linter contracts), so their errors are
recognised here by the module that defines them and by the attributes those clients
document, not by importing them.
"""

from __future__ import annotations

import sys

from kasten_bp.errors import KastenBpError, TemporaryError

# librdkafka errors that clear up when a leader moves or a broker comes back, beyond those
# it flags `retriable()` itself.
KAFKA_TEMPORARY = {
    "NOT_LEADER_FOR_PARTITION",
    "LEADER_NOT_AVAILABLE",
    "UNKNOWN_TOPIC_OR_PART",
    "_UNKNOWN_PARTITION",  # the client's metadata lags a restart
    "_UNKNOWN_TOPIC",
    "NOT_ENOUGH_REPLICAS",
    "REQUEST_TIMED_OUT",
    "NOT_COORDINATOR",
    "COORDINATOR_NOT_AVAILABLE",
    "COORDINATOR_LOAD_IN_PROGRESS",
    "_TRANSPORT",
    "_TIMED_OUT",
    "_ALL_BROKERS_DOWN",
    # A request in flight to a broker the client's metadata has just dropped (a cluster
    # restarting re-registers its brokers one by one): a new client finds them again.
    "_DESTROY_BROKER",
}
# S3 error codes worth retrying besides any 5xx status.
S3_TEMPORARY = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "SlowDown",
    "RequestLimitExceeded",
    "TooManyRequests",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestThrottledException",
    "ProvisionedThroughputExceededException",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "InternalError",
    "ServiceUnavailable",
}
# Kafka Connect answers 409 while its workers rebalance.
HTTP_TEMPORARY = {409, 429}
# How Kubernetes reports an optimistic-concurrency conflict (apimachinery's
# OptimisticLockErrorMsg): the writer lost a race and reads the object again. A controller
# that copies such an error into a status (the CSI snapshot controllers do) retries it.
KUBE_CONFLICT_MESSAGE = "the object has been modified; please apply your changes"


def temporary_http_status(status: int) -> bool:
    return status in HTTP_TEMPORARY or (status >= 500 and status != 501)


def temporary_status_error(message: str) -> bool:
    """Whether an error a controller wrote into an object's status is one it retries by
    itself (a lost write race), and so can never be final."""
    return KUBE_CONFLICT_MESSAGE in message


def is_temporary(exc: BaseException) -> bool:
    if isinstance(exc, TemporaryError):
        return True
    if isinstance(exc, KastenBpError):
        return False  # our own errors already say what they are
    module = type(exc).__module__.split(".", 1)[0]
    if module in ("confluent_kafka", "cimpl"):  # cimpl: its C extension
        return _kafka_temporary(exc)
    if module == "kubernetes":
        # ApiException.status is 0 when no HTTP answer came back at all.
        status = getattr(exc, "status", None)
        return isinstance(status, int) and (status == 0 or temporary_http_status(status))
    if module == "botocore":
        return _s3_temporary(exc)
    if module == "urllib3":
        return True  # the kubernetes client's transport: connection reset, refused, timeout
    # httpx (Connect's REST client) only when loaded: an error of it cannot exist before,
    # and importing it here would cost every command a tenth of a second.
    httpx = sys.modules.get("httpx")
    if httpx is not None:
        if isinstance(exc, httpx.HTTPStatusError):
            # Connect answers 409 while it rebalances.
            return temporary_http_status(exc.response.status_code)
        if isinstance(exc, httpx.TransportError):
            return True
    return isinstance(exc, ConnectionError | TimeoutError)


def _kafka_temporary(exc: BaseException) -> bool:
    err = exc.args[0] if exc.args else exc
    retriable = getattr(err, "retriable", None)
    name = getattr(err, "name", None)
    if not callable(retriable) or not callable(name):
        return False
    return bool(retriable()) or name() in KAFKA_TEMPORARY


def _s3_temporary(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "SSLError" in names:
        return False  # a certificate problem is configuration, not weather
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        try:
            status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        except (TypeError, ValueError):
            status = 0
        return code in S3_TEMPORARY or temporary_http_status(status)
    return bool(names & {"ConnectionError", "HTTPClientError"})
