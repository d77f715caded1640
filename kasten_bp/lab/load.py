"""A load generator for the primary: keys, null keys, empty values, headers, varied sizes."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kasten_bp.kafka import admin, producing
from kasten_bp.records import Record


@dataclass(frozen=True)
class LoadSpec:
    topic: str
    records: int
    rate: float = 0.0
    partitions: int = 3
    seed: int = 7


def generate(spec: LoadSpec, start_ms: int | None = None) -> Iterator[Record]:
    """Deterministic records (for one seed): every 7th has a null key, every 11th an empty
    value, every 13th a null value, every 3rd carries headers; sizes from 0 to ~4 KiB."""
    rnd = random.Random(spec.seed)
    base = start_ms if start_ms is not None else int(time.time() * 1000)
    for i in range(spec.records):
        key = None if i % 7 == 0 else f"key-{rnd.randrange(1000)}".encode()
        size = rnd.choice((0, 10, 100, 1000, 4000))
        value: bytes | None = rnd.randbytes(size)
        if i % 11 == 0:
            value = b""
        elif i % 13 == 0:
            value = None
        headers: tuple[tuple[str, bytes | None], ...] = ()
        if i % 3 == 0:
            headers = (("seq", str(i).encode()), ("origin", b"kasten-bp-load"), ("empty", None))
        yield Record(
            spec.topic, -1, -1, base + i if start_ms is not None else 0, key, value, headers
        )


def run_load(bootstrap: str, spec: LoadSpec) -> dict[str, Any]:
    if spec.records < 0:
        from kasten_bp.errors import UsageError

        raise UsageError(f"--records must be >= 0, got {spec.records}")
    admin.create_topic(bootstrap, spec.topic, spec.partitions)
    started = time.monotonic()
    if spec.rate <= 0:
        produced = producing.produce(bootstrap, generate(spec))
    else:
        produced = producing.produce(bootstrap, _paced(generate(spec), spec.rate))
    return {
        "topic": spec.topic,
        "produced": produced,
        "seconds": round(time.monotonic() - started, 2),
    }


def _paced(records: Iterator[Record], rate: float) -> Iterator[Record]:
    started = time.monotonic()
    for i, record in enumerate(records):
        due = started + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield record
