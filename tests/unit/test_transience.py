"""Which errors a wait or a retry may outlast, and that a wait ends at once on the others."""

from __future__ import annotations

import httpx
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, SSLError
from confluent_kafka import KafkaError, KafkaException
from kubernetes.client.exceptions import ApiException

from kasten_bp.errors import PermanentError, TemporaryError, UsageError, WaitTimeout
from kasten_bp.transience import is_temporary
from kasten_bp.waiting import wait_for


def s3_error(code: str, status: int) -> ClientError:
    response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "PutObject")  # type: ignore[arg-type]


def http_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("PUT", "http://127.0.0.1:8083/connectors/x/stop")
    return httpx.HTTPStatusError("x", request=request, response=httpx.Response(status))


@pytest.mark.parametrize(
    "exc",
    [
        TemporaryError("not yet"),
        KafkaException(KafkaError(KafkaError._TRANSPORT)),
        KafkaException(KafkaError(KafkaError._DESTROY_BROKER)),
        KafkaException(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION)),
        ApiException(status=503),
        ApiException(status=429),
        ApiException(status=0),
        http_error(409),
        http_error(502),
        httpx.ConnectError("refused"),
        s3_error("SlowDown", 503),
        s3_error("Throttling", 400),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9000"),
        ConnectionRefusedError(),
    ],
    ids=repr,
)
def test_temporary(exc: BaseException) -> None:
    assert is_temporary(exc)


@pytest.mark.parametrize(
    "exc",
    [
        PermanentError("broker exited"),
        UsageError("bad flag"),
        KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)),
        ApiException(status=403),
        ApiException(status=404),
        ApiException(status=422),
        http_error(404),
        http_error(501),
        s3_error("AccessDenied", 403),
        SSLError(endpoint_url="https://s3", error="bad certificate"),
        KeyError("bug in a probe"),
        TypeError("bug in a probe"),
    ],
    ids=repr,
)
def test_permanent(exc: BaseException) -> None:
    assert not is_temporary(exc)


def test_a_permanent_error_ends_the_wait_at_once() -> None:
    calls = []

    def probe() -> bool:
        calls.append(1)
        raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(ApiException):
        wait_for("something that is forbidden", probe, timeout=60)
    assert len(calls) == 1


def test_a_temporary_error_is_waited_out_and_named() -> None:
    calls = []

    def probe() -> bool:
        calls.append(1)
        raise TemporaryError("pods 1/3 Ready")

    with pytest.raises(WaitTimeout, match="pods 1/3 Ready"):
        wait_for("pods", probe, timeout=0.3, interval=0.01, max_interval=0.01)
    assert len(calls) > 1


def test_a_temporary_error_then_success() -> None:
    answers: list[BaseException | str] = [httpx.ConnectError("refused"), "ok"]

    def probe() -> str:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    assert wait_for("REST", probe, timeout=5, interval=0.01) == "ok"
