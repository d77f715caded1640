"""The content digest: what must survive mirroring and restore, and nothing else."""

from __future__ import annotations

import hashlib
import struct

from kasten_bp.records import Header, Record, content_digest, window_digest


def rec(
    key: bytes | None = b"k",
    value: bytes | None = b"v",
    headers: tuple[Header, ...] = (),
    ts: int = 1000,
    topic: str = "t",
    partition: int = 0,
    offset: int = 0,
) -> Record:
    return Record(topic, partition, offset, ts, key, value, headers)


def test_digest_is_sha256_of_the_length_prefixed_content() -> None:
    # Manifests hold these digests: a backup taken by one version is verified by another,
    # so the encoding is pinned byte for byte (timestamp, key, value, header count, then
    # each header's name and value; a null is length -1).
    expected = hashlib.sha256(
        struct.pack(">q", 1000)
        + struct.pack(">i", 1) + b"k"
        + struct.pack(">i", -1)
        + struct.pack(">i", 1)
        + struct.pack(">i", 1) + b"h" + struct.pack(">i", 2) + b"hv"
    ).hexdigest()  # fmt: skip
    r = rec(value=None, headers=(("h", b"hv"),))
    assert r.digest() == expected
    assert content_digest(r) == expected


def test_key_and_value_matter() -> None:
    assert rec(key=b"k").digest() != rec(key=b"K").digest()
    assert rec(value=b"v").digest() != rec(value=b"w").digest()
    assert rec(key=b"a", value=b"b").digest() != rec(key=b"b", value=b"a").digest()


def test_header_value_matters() -> None:
    assert rec(headers=(("h", b"1"),)).digest() != rec(headers=(("h", b"2"),)).digest()
    assert rec(headers=(("h", b"1"),)).digest() != rec(headers=(("g", b"1"),)).digest()


def test_topic_partition_offset_do_not_count() -> None:
    # MM2 renumbers and may rename the topic; the content is what must match.
    assert rec().digest() == rec(topic="primary.t", partition=2, offset=12345).digest()
    # Equal content built from distinct objects: nothing but the content counts.
    a = rec(key=bytes([107]), value=b"".join([b"v"]), headers=(("h", b"1"),), offset=1)
    b = rec(key=b"k", value=b"v", headers=(("h", b"1"),), topic="u", offset=2)
    assert a.digest() == b.digest()


def test_null_and_empty_key_differ() -> None:
    assert rec(key=None).digest() != rec(key=b"").digest()


def test_null_and_empty_value_differ() -> None:
    assert rec(value=None).digest() != rec(value=b"").digest()


def test_key_and_value_boundary_matters() -> None:
    # Length prefixes: bytes cannot slide from the key into the value.
    assert rec(key=b"ab", value=b"c").digest() != rec(key=b"a", value=b"bc").digest()
    assert rec(key=None, value=b"").digest() != rec(key=b"", value=None).digest()


def test_timestamp_matters() -> None:
    assert rec(ts=1000).digest() != rec(ts=1001).digest()


def test_headers_matter_in_order() -> None:
    a = ("a", b"1")
    b = ("b", b"2")
    assert rec(headers=(a, b)).digest() != rec(headers=(b, a)).digest()
    assert rec(headers=(a,)).digest() != rec().digest()
    assert rec(headers=(a, b)).digest() == rec(headers=(a, b)).digest()


def test_header_null_and_empty_value_differ() -> None:
    assert rec(headers=(("h", None),)).digest() != rec(headers=(("h", b""),)).digest()


def test_header_name_value_boundary_matters() -> None:
    assert rec(headers=(("ab", b"c"),)).digest() != rec(headers=(("a", b"bc"),)).digest()


def test_duplicate_headers_count() -> None:
    h = ("h", b"1")
    assert rec(headers=(h,)).digest() != rec(headers=(h, h)).digest()


def test_content_excludes_position() -> None:
    r = rec(headers=(("h", b"1"),))
    assert r.content() == (b"k", b"v", (("h", b"1"),), 1000)
    assert r.content() == rec(headers=(("h", b"1"),), topic="x", partition=3, offset=7).content()


def test_window_digest_depends_on_order_and_members() -> None:
    r1, r2 = rec(value=b"1"), rec(value=b"2")
    assert window_digest([r1, r2]) != window_digest([r2, r1])
    assert window_digest([r1, r2]) != window_digest([r1])
    assert window_digest([r1, r2]) == window_digest([rec(value=b"1", offset=9), r2])
    assert window_digest([]) != window_digest([r1])
