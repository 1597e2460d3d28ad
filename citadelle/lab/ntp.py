"""The lab's time source: an NTP server on the host's loopback, which clones reach as 10.0.2.2.

A real environment's hosts synchronise on the in-region NTP servers of citadelle:sovereignty;
the lab's clones cannot reach those, so the lab serves time itself, as it serves the log
collector, and the time checks read the daemon's effective state (``chronyc tracking``,
``chronyc sources``) on the clones instead of being waived.

The server answers RFC 5905 client requests (mode 3) with the host's clock, stratum 2, from
one UDP socket; it never sets any clock. Started and stopped by PID through the lab's one
supervisor (``citadelle lab ntp up|down|status``, and with the collector before the lab is
hardened or verified).
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import time
from pathlib import Path

from citadelle.lab.supervisor import await_ready, launch, recorded, stop_recorded
from citadelle.paths import LAB_DIR

PORT = 123  # what chrony on the clones asks (10.0.2.2:123 is the host's 127.0.0.1:123)
LISTEN = ("127.0.0.1", PORT)
_NTP_EPOCH = 2208988800  # seconds from 1900-01-01 to 1970-01-01
_PACKET = struct.Struct("!BBbbII4sQQQQ")
_STRATUM = 2
_PRECISION = -20  # about a microsecond
_ROOT_DISPERSION = 1 << 6  # 1 ms in 16.16 seconds


def timestamp(seconds: float) -> int:
    """Unix seconds as a 64-bit NTP timestamp (32.32 fixed point since 1900)."""
    whole = int(seconds)
    return ((whole + _NTP_EPOCH) << 32) | int((seconds - whole) * (1 << 32))


def answer(request: bytes, received: float, now: float) -> bytes | None:
    """The server's reply to a client request, or None for anything else."""
    if len(request) < _PACKET.size:
        return None
    first, _, poll, _, _, _, _, _, _, _, transmit = _PACKET.unpack_from(request)
    version, mode = (first >> 3) & 0x7, first & 0x7
    if mode != 3 or not 1 <= version <= 4:  # only client requests
        return None
    return _PACKET.pack((0 << 6) | (version << 3) | 4, _STRATUM, poll, _PRECISION, 0,
                        _ROOT_DISPERSION, b"LAB\0", timestamp(now - 1), transmit,
                        timestamp(received), timestamp(now))


def serve(address: tuple[str, int]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        while True:
            request, client = sock.recvfrom(512)
            received = time.time()
            reply = answer(request, received, time.time())
            if reply is not None:
                sock.sendto(reply, client)


class TimeServer:
    """The lab's NTP server process, its PID file and log under ``root/ntp``."""

    def __init__(self, root: Path = LAB_DIR) -> None:
        # Resolved: the PID marker is a path, and a lab reached through a link is the same lab.
        self.directory = root.resolve() / "ntp"
        self.pid_file = self.directory / "ntp.pid"
        self.log = self.directory / "ntp.log"

    @property
    def marker(self) -> str:
        # On the server's command line: a PID is only ever signalled while it is this server.
        return str(self.log)

    def pid(self) -> int | None:
        return recorded(self.pid_file, self.marker)

    def start(self, timeout: float = 10.0) -> int:
        """Start the server unless it runs already; return its PID once it answers."""
        running = self.pid()
        if running is not None:
            return running
        self.directory.mkdir(parents=True, exist_ok=True)
        pid = launch([sys.executable, "-m", "citadelle.lab.ntp", "--log", str(self.log)],
                     self.log, self.pid_file)
        await_ready(pid, self.marker, lambda: query(LISTEN, timeout=0.5) is not None,
                    what=f"lab NTP server on 127.0.0.1:{PORT}", log=self.log, timeout=timeout,
                    interval=0.1)
        return pid

    def stop(self) -> bool:
        return stop_recorded(self.pid_file, self.marker, what="NTP server")


def query(address: tuple[str, int], timeout: float = 2.0) -> float | None:
    """Ask ``address`` for the time as a client would; the server's Unix time, or None."""
    request = _PACKET.pack((4 << 3) | 3, 0, 6, 0, 0, 0, b"\0" * 4, 0, 0, 0,
                           timestamp(time.time()))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(request, address)
            reply, _ = sock.recvfrom(512)
        except OSError:
            return None
    if len(reply) < _PACKET.size or _PACKET.unpack_from(reply)[0] & 0x7 != 4:
        return None
    transmit = int(_PACKET.unpack_from(reply)[10])
    return float((transmit >> 32) - _NTP_EPOCH) + (transmit & 0xFFFFFFFF) / (1 << 32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the lab's NTP server (run by TimeServer)")
    parser.add_argument("--log", required=True, help="this server's log (its PID marker)")
    parser.parse_args(argv)
    print(f"serving time on {LISTEN[0]}:{LISTEN[1]}", flush=True)
    serve(LISTEN)
    return 0


if __name__ == "__main__":
    sys.exit(main())
