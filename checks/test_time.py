"""Time synchronisation: chrony on the in-region servers, synchronised, serving nobody.

SecNumCloud 3.2 12.8 (clock synchronisation on a reference source); expected values: the
bp028_time variables (servers from config via the inventory).
"""

from __future__ import annotations

import pytest

from checks.target import Target, key_values


@pytest.mark.snc("12.8")
def test_chrony_is_running_and_enabled(target: Target) -> None:
    service = target.host.service(target.vars["bp028_time_service"])
    assert service.is_running
    assert service.is_enabled


@pytest.mark.snc("12.8", "13.2")
def test_no_time_service_offered(target: Target) -> None:
    conf = key_values(target.host.file(target.vars["bp028_time_config_file"]).content_string)
    assert conf.get("port") == "0"
    assert conf.get("cmdport") == "0"


def _sources(target: Target) -> list[list[str]]:
    # The daemon's own view: mode, state, name as configured (-N), ... one CSV line each.
    return [line.split(",") for line in target.output("chronyc -c -N sources").splitlines()
            if line.strip()]


@pytest.mark.snc("12.8")
def test_clock_is_synchronised(target: Target) -> None:
    tracking = key_values(target.output("chronyc -n tracking"), ":")
    assert tracking.get("leap status") == "Normal", tracking
    # Synchronised on one of its servers ('*' = the selected source), not on its own clock.
    selected = [s[2] for s in _sources(target) if s[1] == "*"]
    assert selected and selected[0] in target.vars["bp028_time_ntp_servers"], _sources(target)


@pytest.mark.snc("12.8")
def test_chrony_uses_the_configured_servers(target: Target) -> None:
    servers = [s[2] for s in _sources(target) if s[0] == "^"]  # '^' = a server, not a peer
    assert servers == list(target.vars["bp028_time_ntp_servers"])
