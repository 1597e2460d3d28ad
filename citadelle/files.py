"""Files the project writes for people and tools: atomically, never wider than their mode."""

from __future__ import annotations

import os
from pathlib import Path


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` atomically, the file created with ``mode`` (never wider, even briefly)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    tmp.chmod(mode)
    tmp.replace(path)
