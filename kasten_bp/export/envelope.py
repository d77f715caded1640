"""The envelope: one exported record, whatever the file format.

Every format holds the same fields: `topic`, `partition`, `offset`, `timestamp` (ms since
the epoch), `timestamp_type` (`CreateTime` or `LogAppendTime`), `key` and `value` (bytes or
null) and `headers` (a list of `{key: str, value: bytes or null}`, order kept).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from dataclasses import dataclass
from typing import Any

from kasten_bp.records import Record

CREATE_TIME = "CreateTime"
LOG_APPEND_TIME = "LogAppendTime"


@dataclass(frozen=True)
class Envelope:
    record: Record
    timestamp_type: str

    def row(self) -> dict[str, Any]:
        """The envelope as Avro and Parquet hold it (bytes stay bytes)."""
        r = self.record
        return {
            "topic": r.topic,
            "partition": r.partition,
            "offset": r.offset,
            "timestamp": r.timestamp,
            "timestamp_type": self.timestamp_type,
            "key": r.key,
            "value": r.value,
            "headers": [{"key": k, "value": v} for k, v in r.headers],
        }


def timestamp_type(topic_config: dict[str, str]) -> str:
    """A topic's records all carry the type its message.timestamp.type names."""
    if topic_config.get("message.timestamp.type") == LOG_APPEND_TIME:
        return LOG_APPEND_TIME
    return CREATE_TIME


def from_row(row: dict[str, Any]) -> Envelope:
    """An envelope back from a row of any format (headers as dicts or (key, value) pairs)."""
    headers = tuple(
        (str(h["key"]), h["value"]) if isinstance(h, dict) else (str(h[0]), h[1])
        for h in row.get("headers") or ()
    )
    record = Record(
        str(row["topic"]),
        int(row["partition"]),
        int(row["offset"]),
        int(row["timestamp"]),
        _bytes(row.get("key")),
        _bytes(row.get("value")),
        headers,
    )
    return Envelope(record, str(row["timestamp_type"]))


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


# --- JSON Lines: bytes as standard base64 (with padding), null stays null ------------------


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text, validate=True)


@functools.lru_cache(maxsize=1024)
def _json_string(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode()


def _b64_json(data: bytes | None) -> bytes:
    if data is None:
        return b"null"
    return b'"' + binascii.b2a_base64(data, newline=False) + b'"'


def to_json_line(envelope: Envelope) -> bytes:
    """One line, assembled from parts (json.dumps of a dict per record was the cost)."""
    r = envelope.record
    headers = b",".join(
        b'{"key":' + _json_string(k) + b',"value":' + _b64_json(v) + b"}" for k, v in r.headers
    )
    return b"".join(
        (
            b'{"topic":',
            _json_string(r.topic),
            b',"partition":%d,"offset":%d,"timestamp":%d,"timestamp_type":'
            % (r.partition, r.offset, r.timestamp),
            _json_string(envelope.timestamp_type),
            b',"key":',
            _b64_json(r.key),
            b',"value":',
            _b64_json(r.value),
            b',"headers":[',
            headers,
            b"]}\n",
        )
    )


def from_json_line(line: bytes) -> Envelope:
    doc = json.loads(line)
    doc["key"] = _unb64(doc.get("key"))
    doc["value"] = _unb64(doc.get("value"))
    doc["headers"] = [
        {"key": h["key"], "value": _unb64(h.get("value"))} for h in doc.get("headers") or ()
    ]
    return from_row(doc)
