"""The canonical JSON form a signature covers: sorted keys, no insignificant whitespace,
UTF-8 without escaping, the `signature` field left out."""

from __future__ import annotations

import json
from typing import Any

SIGNATURE = "signature"


def canonical_json(document: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in document.items() if k != SIGNATURE}
    text = json.dumps(
        unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")
