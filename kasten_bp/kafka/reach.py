"""Naming the cluster that did not answer: librdkafka says "Failed to get metadata: Local:
Broker transport failure" without saying whose."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from confluent_kafka import KafkaException

from kasten_bp.errors import Unreachable

P = ParamSpec("P")
T = TypeVar("T")

# What librdkafka says when no broker of a cluster answers.
NO_ANSWER = {"_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "_RESOLVE", "_TIMED_OUT_QUEUE"}


def unreachable(bootstrap: str, exc: KafkaException) -> Unreachable | None:
    err = exc.args[0] if exc.args else None
    name = getattr(err, "name", None)
    if not callable(name) or name() not in NO_ANSWER:
        return None
    describe = getattr(err, "str", None)
    text = describe() if callable(describe) else str(err)
    return Unreachable(f"Kafka cluster {bootstrap} cannot be reached: {text}")


def names_cluster(call: Callable[P, T]) -> Callable[P, T]:
    """For functions whose first argument is a bootstrap: a cluster that does not answer
    is an Unreachable error that names it."""

    @functools.wraps(call)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return call(*args, **kwargs)
        except KafkaException as exc:
            named = unreachable(str(args[0]), exc)
            if named is None:
                raise
            raise named from None

    return wrapper
