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


@pytest.mark.snc("12.8")
def test_clock_is_synchronised(target: Target) -> None:
    tracking = key_values(target.output("chronyc -n tracking"), ":")
    assert tracking.get("leap status") == "Normal", tracking


@pytest.mark.snc("12.8")
def test_chrony_uses_the_configured_servers(target: Target) -> None:
    conf = target.host.file(target.vars["bp028_time_config_file"]).content_string
    servers = [line.split()[1] for line in conf.splitlines() if line.split()[:1] == ["server"]]
    assert servers == list(target.vars["bp028_time_ntp_servers"])
