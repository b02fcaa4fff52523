"""Spotting repeated rows in a batch: the same idempotency key, or, without a key, the
same kind, destination and content.

Rows are remembered by an 8-byte digest (a million rows take tens of megabytes, and a
collision between two different rows is about one in 10^7 at that size).
"""

from __future__ import annotations

import hashlib
import json

from callgate.domain import JobSpec


def row_key(spec: JobSpec) -> int:
    """The digest two rows share exactly when they are the same job."""
    if spec.idempotency_key is not None:
        doc: object = ["key", spec.idempotency_key]
    else:
        doc = ["content", str(spec.kind), spec.to, spec.payload]
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return int.from_bytes(hashlib.blake2b(raw.encode(), digest_size=8).digest(), "big")


class Deduper:
    """Remembers each row's first line; :meth:`seen` answers it for a repeat."""

    def __init__(self) -> None:
        self._first: dict[int, int] = {}

    def seen(self, line: int, spec: JobSpec) -> int | None:
        """The line this job was first seen on, or None (and remember it) if it is new."""
        key = row_key(spec)
        first = self._first.setdefault(key, line)
        return None if first == line else first

    def __len__(self) -> int:
        return len(self._first)
