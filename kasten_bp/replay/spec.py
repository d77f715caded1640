"""The replay spec (YAML, `--spec`): what to replay, where to, and how.

Key names are a contract (issue 10): topics[].source/target/partitions/
disable_preflight_checks, partitions[].number/from_offset/until_offset, from_datetime,
until_datetime, original_offset_header, parallelism, max_producers, create_topics, dry_run,
max_records_per_second, max_bytes_per_second.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kasten_bp.errors import UsageError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PartitionRange(_Strict):
    """Source offsets of one partition: from inclusive, until exclusive (None: open)."""

    number: int = Field(ge=0)
    from_offset: int | None = Field(default=None, ge=0)
    until_offset: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> PartitionRange:
        if (
            self.from_offset is not None
            and self.until_offset is not None
            and self.until_offset < self.from_offset
        ):
            raise ValueError(
                f"partition {self.number}: until_offset {self.until_offset} is before "
                f"from_offset {self.from_offset}"
            )
        return self

    def overlaps(self, other: PartitionRange) -> bool:
        if self.number != other.number:
            return False
        low = max(self.from_offset or 0, other.from_offset or 0)
        high = min(_open(self.until_offset), _open(other.until_offset))
        return low < high


def _open(until: int | None) -> int:
    return until if until is not None else 2**63


class TopicSpec(_Strict):
    # A topic name of the source, or a regex (full match) over its topic names.
    source: str = Field(min_length=1)
    # Defaults to the source's name; with a regex, may use its groups (\1, \g<name>).
    target: str | None = None
    # Empty: every partition, whole.
    partitions: list[PartitionRange] = Field(default_factory=list)
    # Skip the target checks (partition count, emptiness) for this topic.
    disable_preflight_checks: bool = False

    @model_validator(mode="after")
    def _no_overlap(self) -> TopicSpec:
        for i, a in enumerate(self.partitions):
            for b in self.partitions[i + 1 :]:
                if a.overlaps(b):
                    raise ValueError(
                        f"topic {self.source}: partition {a.number} ranges "
                        f"[{a.from_offset or 0}, {_show(a.until_offset)}) and "
                        f"[{b.from_offset or 0}, {_show(b.until_offset)}) overlap"
                    )
        return self


def _show(until: int | None) -> str:
    return "end" if until is None else str(until)


class ReplaySpec(_Strict):
    topics: list[TopicSpec] = Field(min_length=1)
    # Records whose timestamp t has from_datetime <= t < until_datetime.
    from_datetime: datetime | None = None
    until_datetime: datetime | None = None
    # Header carrying the record's source offset as a decimal string (and, optionally, its
    # source topic and partition).
    original_offset_header: str | None = Field(default=None, min_length=1)
    original_topic_header: str | None = Field(default=None, min_length=1)
    original_partition_header: str | None = Field(default=None, min_length=1)
    # Partitions read and written at once (one consumer assignment, one producer).
    parallelism: int = Field(4, ge=1, le=1024)
    # Producer instances at once; target topics whose settings (max.message.bytes) agree
    # share one.
    max_producers: int = Field(4, ge=1, le=64)
    create_topics: bool = False
    dry_run: bool = False
    # Rate limits (0: none).
    max_records_per_second: float = Field(0, ge=0)
    max_bytes_per_second: float = Field(0, ge=0)

    @field_validator("from_datetime", "until_datetime")
    @classmethod
    def _zoned(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone (e.g. 2026-11-20T10:00:00Z)")
        return value

    @model_validator(mode="after")
    def _window(self) -> ReplaySpec:
        if (
            self.from_datetime is not None
            and self.until_datetime is not None
            and self.until_datetime < self.from_datetime
        ):
            raise ValueError(
                f"until_datetime {self.until_datetime.isoformat()} is before "
                f"from_datetime {self.from_datetime.isoformat()}"
            )
        return self

    @property
    def from_ms(self) -> int | None:
        return _ms(self.from_datetime)

    @property
    def until_ms(self) -> int | None:
        return _ms(self.until_datetime)

    def in_window(self, timestamp: int) -> bool:
        low, high = self.from_ms, self.until_ms
        return (low is None or timestamp >= low) and (high is None or timestamp < high)


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def parse_spec(raw: object, where: str) -> ReplaySpec:
    """A spec from parsed YAML; UsageError (exit 2) with one line naming the field."""
    if not isinstance(raw, dict):
        raise UsageError(f"replay spec {where} must be a mapping")
    try:
        return ReplaySpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise UsageError(f"replay spec {where}: {loc + ': ' if loc else ''}{msg}") from None


def load_spec(path: Path) -> ReplaySpec:
    if not path.exists():
        raise UsageError(f"replay spec {path} not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UsageError(
            f"replay spec {path} is not valid YAML: {str(exc).splitlines()[0]}"
        ) from None
    return parse_spec(raw, str(path))


def with_since(spec: ReplaySpec, since: str) -> ReplaySpec:
    """`--since ISO`: the window's start (overrides from_datetime)."""
    return parse_spec({**spec.model_dump(exclude_none=True), "from_datetime": since}, "--since")


def with_flags(spec: ReplaySpec, **flags: float | int | None) -> ReplaySpec:
    """Command-line flags over the spec's keys (None: not given); judged like the spec, a
    bad value named by its flag."""
    given = {k: v for k, v in flags.items() if v is not None}
    if not given:
        return spec
    try:
        return ReplaySpec.model_validate({**spec.model_dump(), **given})
    except ValidationError as exc:
        first = exc.errors()[0]
        flag = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "a flag"
        raise UsageError(f"{flag}: {first['msg']}") from None
