"""File writes that a concurrent reader (a sensor, the API, the next replay) can trust."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Write a file so that readers see either the old or the whole new content, never a part.

    The temporary file is hidden (leading dot, `.tmp` suffix) and in the same
    folder, so the rename is atomic and no glob for the real names matches it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
