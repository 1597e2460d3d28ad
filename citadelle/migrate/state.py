"""One workspace's migration record: its phase, every step run, who ran it and when.

Kept in the run folder, ``<run>/workspaces/<id>/state.json`` (written atomically after every
change, so a crash leaves the last finished step on disk), beside the sync manifest (the last
listing copied) and one folder per step run. A cutover holds ``cutover.lock`` (an exclusive
``flock``) for its whole run: a second one on the same workspace is refused, and the kernel
drops the lock when the holder dies, so a crashed cutover never blocks its rerun.
"""

from __future__ import annotations

import datetime
import fcntl
import getpass
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from citadelle.errors import CitadelleError
from citadelle.files import write_file
from citadelle.migrate.context import read_json

PHASES = ("planned", "inventoried", "copying", "in sync", "frozen", "verified", "switched",
          "retired")
STEPS = ("preflight", "freeze", "final", "switch", "open")


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def stamp(when: datetime.datetime | None = None) -> str:
    return (when or now()).isoformat(timespec="milliseconds")


def parse(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


def operator() -> str:
    """Who runs a step: the login and host (the chain of custody's "who")."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


@dataclass
class WorkspaceState:
    folder: Path
    data: dict[str, Any]

    @classmethod
    def load(cls, run_dir: Path, workspace: str) -> WorkspaceState:
        folder = run_dir / "workspaces" / workspace
        path = folder / "state.json"
        data = read_json(path, "workspace state") if path.is_file() else {
            "workspace": workspace, "phase": "planned", "steps": {}, "history": []}
        return cls(folder, data)

    @property
    def phase(self) -> str:
        return str(self.data["phase"])

    @property
    def sync_manifest(self) -> Path:
        return self.folder / "sync-manifest.json"

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_file(self.folder / "state.json", json.dumps(self.data, indent=2) + "\n")

    def set_phase(self, phase: str) -> None:
        assert phase in PHASES, phase
        self.data["phase"] = phase
        self.save()

    def record(self, action: str, started: datetime.datetime, **details: Any) -> dict[str, Any]:
        """Append one finished action (sync, verify, a cutover step...) to the history."""
        finished = now()
        entry = {"action": action, "started": stamp(started), "finished": stamp(finished),
                 "seconds": round((finished - started).total_seconds(), 3), "by": operator(),
                 **details}
        self.data.setdefault("history", []).append(entry)
        self.save()
        return entry

    def run_folder(self, action: str) -> Path:
        folder = self.folder / f"{action}-{now().strftime('%Y%m%dT%H%M%S%fZ')}"
        folder.mkdir(parents=True)
        return folder


@contextmanager
def exclusive(state: WorkspaceState, what: str) -> Iterator[None]:
    """Hold the workspace's lock, or refuse: one sync, cutover, rollback or retire at a time."""
    state.folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(state.folder / "cutover.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another run"
            raise CitadelleError(f"workspace {state.data['workspace']}: {holder} is running "
                                 f"on it; {what} refused, nothing changed") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} (pid {os.getpid()}, {operator()})".encode(), 0)
        yield
    finally:
        os.close(fd)
