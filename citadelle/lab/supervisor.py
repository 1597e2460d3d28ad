"""The one process supervisor of every service the lab starts (qemu clones, the log collector,
the loopback cloud's services): start in its own session, judge liveness, stop by PID.

A PID is only ever signalled while it still belongs to the lab: its command line or its
environment holds the service's marker (PIDs get reused). A process this Python process
launched is judged by its Popen handle, since right after the fork its /proc entries can still
be the parent's or empty.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from citadelle.errors import CitadelleError

# Popen handles of the processes this Python process started, so stops can reap them.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def launch(args: Sequence[str], log: Path, pid_file: Path | None = None,
           env: Mapping[str, str] | None = None) -> int:
    """Start a lab process in its own session, output appended to ``log``; record its PID."""
    with log.open("ab") as out:
        proc = subprocess.Popen(list(args), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(env) if env is not None else None)
    _CHILDREN[proc.pid] = proc
    if pid_file is not None:
        pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def alive(pid: int, marker: str) -> bool:
    """True when ``pid`` is a live (not zombie) process of the lab carrying ``marker``."""
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    proc = Path(f"/proc/{pid}")
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes()
        environ = (proc / "environ").read_bytes()
    except (OSError, IndexError):
        return False
    return state != "Z" and marker.encode() in cmdline + b"\0" + environ


def recorded(pid_file: Path, marker: str) -> int | None:
    """The PID ``launch`` recorded in ``pid_file``, if that process is alive and still carries
    ``marker``; None otherwise (no file, garbage, exited or reused)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if alive(pid, marker) else None


def stop_recorded(pid_file: Path, marker: str, *, what: str, grace: float = 5.0) -> bool:
    """Stop the process recorded in ``pid_file`` if it is still the lab's, and forget it;
    True when one was running."""
    pid = recorded(pid_file, marker)
    if pid is not None:
        stop(pid, marker, grace=grace, what=what)
    pid_file.unlink(missing_ok=True)
    return pid is not None


def _reap(pid: int) -> None:
    proc = _CHILDREN.pop(pid, None)
    if proc is not None:
        proc.wait(timeout=10)
        return
    # Started by this process without a handle (an earlier launch in a forked helper): reap.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(pid: int, marker: str, *, grace: float = 5.0, what: str = "process") -> None:
    """SIGTERM, then after ``grace`` seconds SIGKILL to its whole session; wait and reap.

    ``what`` names the process in the error if it survives.
    """
    for sig, target, wait in ((signal.SIGTERM, pid, grace), (signal.SIGKILL, -pid, 10.0)):
        if not alive(pid, marker):
            break
        try:
            os.kill(target, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and alive(pid, marker):
            time.sleep(0.05)
    _reap(pid)
    if alive(pid, marker):
        raise CitadelleError(f"lab: {what} PID {pid} survived SIGKILL")


def await_ready(pid: int, marker: str, ready: Callable[[], bool], *, what: str, log: Path,
                timeout: float, interval: float = 0.2) -> None:
    """Poll ``ready`` until it holds. A process that exits first, or does not get ready within
    ``timeout`` (it is then stopped), is refused in one line naming ``what`` and its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid, marker):
            raise CitadelleError(f"{what} exited at start: {log_tail(log)}")
        if ready():
            return
        time.sleep(interval)
    stop(pid, marker, what=what)
    raise CitadelleError(f"{what}: no answer after {timeout:.0f} s; see {log}")


def log_tail(log: Path) -> str:
    """The last lines of a service's log, on one line, for an error message."""
    lines = log.read_text(errors="replace").strip().splitlines() if log.is_file() else []
    return " / ".join(lines[-3:]) or "no output"
