"""The content hash that names a module everywhere: 32 lowercase hex characters."""

from __future__ import annotations

import hashlib


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]
