"""Files the project writes for people and tools: atomically, never wider than their mode."""

from __future__ import annotations

import os
from pathlib import Path


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` atomically, the file created with ``mode`` (never wider, even briefly)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    tmp.chmod(mode)
    tmp.replace(path)


def private_dir(path: Path) -> Path:
    """``path`` as a directory of its owner's only (0700), created so, tightened if it was not."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path
