"""Unix socket paths that fit ``sun_path`` whatever the checkout's path (QMP, SSH ControlPath)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# sun_path holds 108 bytes on Linux, terminating NUL included; keep a margin.
UNIX_PATH_MAX = 100
# ssh(1) expands %C to 40 hex characters and binds the master socket at the ControlPath plus a
# random suffix ('.' and 16 characters) before renaming it.
_CONTROL_TAIL = len("/cm-") + 40 + 17


def socket_dir(preferred: Path, budget: int = UNIX_PATH_MAX) -> Path:
    """``preferred`` if sockets of ``budget`` bytes fit there, else a private dir under /tmp."""
    if len(str(preferred)) <= budget:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:16]
    return Path("/tmp") / f"citadelle-{os.getuid()}-{digest}"  # noqa: S108 - short path


def control_path(preferred: Path) -> str:
    """An SSH ``ControlPath`` in ``preferred`` (or a short private dir), created 0700."""
    directory = socket_dir(preferred, UNIX_PATH_MAX - _CONTROL_TAIL)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return str(directory / "cm-%C")
