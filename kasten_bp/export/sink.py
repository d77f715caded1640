"""Where a file being written goes: a bounded in-memory buffer that spills to disk, hashed
and counted as it is written (the sha256 of the index is of exactly the uploaded bytes)."""

from __future__ import annotations

import hashlib
import tempfile
from typing import IO

# Up to this much of a file stays in memory; the rest spills to a temporary file.
IN_MEMORY_BYTES = 8 * 1024 * 1024


class HashingSink:
    """A write-only file object for the format writers (they never seek)."""

    def __init__(self) -> None:
        # Closed by discard() once uploaded, not by a with block.
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY_BYTES)  # noqa: SIM115
        self._hash = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._hash.update(data)
        self.file.write(data)
        n = len(data)
        self.size += n
        return n

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        """Nothing to flush: bytes go straight to the spooled file (writers call this)."""

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        # Writers may close their sink; the bytes stay readable for the upload.
        self.closed = True

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def discard(self) -> None:
        self.file.close()
