"""A minimal synchronous QMP (QEMU Machine Protocol) client over a unix socket."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from citadelle.errors import CitadelleError


class QMPError(CitadelleError):
    """QEMU answered a command with an error, or the socket misbehaved."""


class QMP:
    """One QMP session: ``with QMP(path) as qmp: qmp.execute("stop")``."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    def __enter__(self) -> QMP:
        self.connect()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def connect(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(str(self.path))
                break
            except (FileNotFoundError, ConnectionRefusedError) as err:
                sock.close()
                if time.monotonic() > deadline:
                    raise QMPError(f"lab: QMP socket {self.path} not answering: {err}") from None
                time.sleep(0.1)
        self._sock = sock
        try:
            greeting = self._read()
        except OSError as err:
            raise QMPError(f"lab: QMP socket {self.path}: {err}") from None
        if "QMP" not in greeting:
            raise QMPError(f"lab: unexpected QMP greeting on {self.path}: {greeting}")
        self.execute("qmp_capabilities")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _read(self) -> dict[str, Any]:
        assert self._sock is not None
        while b"\n" not in self._buffer:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise QMPError(f"lab: QMP socket {self.path} closed by QEMU")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    def execute(self, command: str, **arguments: Any) -> Any:
        """Run one command and return its ``return`` value; events are skipped."""
        if self._sock is None:
            raise QMPError("lab: QMP session is not connected")
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        try:
            self._sock.sendall(json.dumps(request).encode() + b"\n")
            while True:
                reply = self._read()
                if "event" not in reply:
                    break
        except OSError as err:
            raise QMPError(f"lab: QMP {command} on {self.path}: {err}") from None
        if "error" in reply:
            error = reply["error"]
            raise QMPError(f"lab: QMP {command} failed: {error.get('desc', error)}")
        return reply.get("return")
