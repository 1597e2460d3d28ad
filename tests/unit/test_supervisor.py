"""The lab's process supervisor: a recorded PID counts only while it is still the lab's process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from citadelle.errors import CitadelleError
from citadelle.lab.supervisor import alive, await_ready, launch, recorded, stop, stop_recorded

pytestmark = pytest.mark.unit


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[tuple[int, Path, str]]:
    """A process another run of the lab started: judged by /proc, not by a Popen handle."""
    marker = str(tmp_path / "sleeper-marker")
    pid_file = tmp_path / "sleeper.pid"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    pid_file.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 10
    while marker.encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, "the sleeper never exec'd"
        time.sleep(0.01)
    yield proc.pid, pid_file, marker
    proc.kill()
    proc.wait()


def test_a_live_process_carrying_its_marker_is_recorded(
        sleeper: tuple[int, Path, str]) -> None:
    pid, pid_file, marker = sleeper
    assert recorded(pid_file, marker) == pid


def test_a_reused_pid_is_not_recorded(sleeper: tuple[int, Path, str]) -> None:
    _, pid_file, _ = sleeper
    # The same PID judged with another service's marker: a reused PID is never the lab's.
    assert recorded(pid_file, "/nowhere/another-service") is None


def test_a_stopped_process_is_not_recorded(tmp_path: Path) -> None:
    marker = str(tmp_path / "service-marker")
    pid_file = tmp_path / "service.pid"
    pid = launch([sys.executable, "-c", "import time; time.sleep(60)", marker],
                 tmp_path / "service.log", pid_file)
    assert recorded(pid_file, marker) == pid
    stop(pid, marker, grace=1.0, what="service")
    assert recorded(pid_file, marker) is None


@pytest.mark.parametrize("content", [None, "", "not a pid\n"])
def test_a_missing_or_garbled_pid_file_is_not_recorded(tmp_path: Path,
                                                       content: str | None) -> None:
    pid_file = tmp_path / "service.pid"
    if content is not None:
        pid_file.write_text(content)
    assert recorded(pid_file, str(tmp_path)) is None


def test_await_ready_returns_once_ready(tmp_path: Path) -> None:
    marker, flag = str(tmp_path / "ready-marker"), tmp_path / "ready"
    pid = launch([sys.executable, "-c", "import pathlib, sys, time; "
                  "pathlib.Path(sys.argv[1]).touch(); time.sleep(60)", str(flag), marker],
                 tmp_path / "ready.log")
    try:
        await_ready(pid, marker, flag.exists, what="service", log=tmp_path / "ready.log",
                    timeout=20, interval=0.05)
    finally:
        stop(pid, marker, grace=1.0, what="service")


def test_await_ready_refuses_a_process_that_exits_with_its_log(tmp_path: Path) -> None:
    log, marker = tmp_path / "dying.log", str(tmp_path / "dying-marker")
    pid = launch([sys.executable, "-c", "import sys; print('port 17443 in use'); sys.exit(1)",
                  marker], log)
    with pytest.raises(CitadelleError, match=r"^service exited at start: port 17443 in use$"):
        await_ready(pid, marker, lambda: False, what="service", log=log, timeout=20)


def test_await_ready_stops_a_process_that_never_answers(tmp_path: Path) -> None:
    log, marker = tmp_path / "mute.log", str(tmp_path / "mute-marker")
    pid = launch([sys.executable, "-c", "import time; time.sleep(60)", marker], log)
    with pytest.raises(CitadelleError, match=r"^service: no answer after 1 s; see "):
        await_ready(pid, marker, lambda: False, what="service", log=log, timeout=1)
    assert not alive(pid, marker)


def test_stop_recorded_stops_the_lab_process_and_forgets_it(tmp_path: Path) -> None:
    marker, pid_file = str(tmp_path / "svc-marker"), tmp_path / "svc.pid"
    pid = launch([sys.executable, "-c", "import time; time.sleep(60)", marker],
                 tmp_path / "svc.log", pid_file)
    assert stop_recorded(pid_file, marker, what="service", grace=1.0) is True
    assert not alive(pid, marker) and not pid_file.exists()
    assert stop_recorded(pid_file, marker, what="service") is False


def test_stop_recorded_never_signals_a_reused_pid(sleeper: tuple[int, Path, str]) -> None:
    pid, pid_file, marker = sleeper
    assert stop_recorded(pid_file, "/nowhere/another-service", what="service") is False
    assert alive(pid, marker) and not pid_file.exists()
