"""The lab's NTP server answers client requests with the host's clock, and nothing else."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from citadelle.lab import ntp

pytestmark = pytest.mark.unit


def test_a_client_request_gets_the_time_of_the_host():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        address = probe.getsockname()
    thread = threading.Thread(target=ntp.serve, args=(address,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    served = None
    while served is None and time.monotonic() < deadline:
        served = ntp.query(address, timeout=0.5)
    assert served is not None
    assert abs(served - time.time()) < 1.0


@pytest.mark.parametrize("mode", [1, 2, 4, 5, 6, 7])
def test_anything_but_a_client_request_is_ignored(mode: int):
    request = ntp._PACKET.pack((4 << 3) | mode, 0, 6, 0, 0, 0, b"\0" * 4, 0, 0, 0, 1)
    assert ntp.answer(request, time.time(), time.time()) is None
    assert ntp.answer(b"short", time.time(), time.time()) is None


def test_the_reply_is_a_stratum_2_server_echoing_the_client_timestamp():
    request = ntp._PACKET.pack((4 << 3) | 3, 0, 6, 0, 0, 0, b"\0" * 4, 0, 0, 0, 12345)
    reply = ntp.answer(request, 1_800_000_000.25, 1_800_000_000.5)
    assert reply is not None
    first, stratum, _, _, _, _, _, _, originate, received, transmit = ntp._PACKET.unpack(reply)
    assert (first >> 6, (first >> 3) & 7, first & 7, stratum) == (0, 4, 4, 2)
    assert originate == 12345
    assert received == ntp.timestamp(1_800_000_000.25)
    assert transmit == ntp.timestamp(1_800_000_000.5)
