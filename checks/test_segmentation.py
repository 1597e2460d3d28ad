"""Network segmentation on the host: default-drop firewall, SSH from the admin tier only,
role services from their declared sources, nothing else listening.

SecNumCloud 3.2 13.2 (segmentation), 9.7 (isolation), 9.6.d (administration interfaces not
reachable from public networks); BP-028 R80 (minimal network services), R79 (exposed services).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from checks.target import Case, Target

TABLE = "inet citadelle"


def _chain(target: Target, chain: str) -> str:
    return target.output(f"nft list chain {TABLE} {chain}")


def _set_elements(target: Target, name: str) -> set[str]:
    text = target.output(f"nft list set {TABLE} {name}")
    if "elements = {" not in text:
        return set()
    body = text.split("elements = {", 1)[1].split("}", 1)[0]
    return {str(ipaddress.ip_network(e.strip())) for e in body.replace("\n", " ").split(",")
            if e.strip()}


def service_cases(target: Target) -> Iterator[Case]:
    for service in target.vars["bp028_firewall_allowed_services"]:
        for source in service["sources"]:
            yield Case(f"{service['name']}-{source}", {**service, "source": source})


CASES = {"service": service_cases}


@pytest.mark.snc("13.2", "9.7")
@pytest.mark.bp028("R80")
def test_input_policy_is_drop(target: Target) -> None:
    assert "policy drop;" in _chain(target, "input")


@pytest.mark.snc("13.2")
@pytest.mark.bp028("R80")
def test_forward_policy_is_the_role_one(target: Target) -> None:
    policy = target.vars["bp028_firewall_forward_policy"]
    assert f"policy {policy};" in _chain(target, "forward")


@pytest.mark.snc("13.2", "9.6")
@pytest.mark.bp028("R80")
def test_ssh_only_from_the_admin_tier(target: Target) -> None:
    expected = {str(ipaddress.ip_network(c)) for c in target.vars["bp028_firewall_admin_cidrs"]
                if ":" not in c}
    assert _set_elements(target, "admin_v4") == expected
    port = target.vars["bp028_firewall_ssh_port"]
    ssh_rules = [line.strip() for line in _chain(target, "input").splitlines()
                 if f"dport {port} " in line and "accept" in line]
    assert ssh_rules, "no SSH accept rule"
    assert all("saddr @admin_v" in rule for rule in ssh_rules), ssh_rules


@pytest.mark.snc("13.2", "9.7")
@pytest.mark.bp028("R79", "R80")
@pytest.mark.applies(when="bp028_firewall_allowed_services")
def test_role_service_open_only_to_its_sources(target: Target, service: dict[str, object]) -> None:
    rule = (f"{service['proto']} dport {service['port']} ip saddr {service['source']} accept")
    assert rule in _chain(target, "input")


@pytest.mark.snc("13.2")
@pytest.mark.bp028("R62", "R80")
def test_listening_sockets_are_the_allowed_ones(target: Target) -> None:
    allowed = {("tcp", int(target.vars["bp028_ssh_port"]))}
    allowed |= {(str(s["proto"]), int(s["port"]))
                for s in target.vars["bp028_firewall_allowed_services"]}
    exposed = set()
    for line in target.host.check_output("ss -H -tuln").splitlines():
        fields = line.split()
        proto, local = fields[0], fields[4]
        address, _, port = local.rpartition(":")
        address = address.strip("[]").split("%")[0]
        if address != "*" and ipaddress.ip_address(address).is_loopback:
            continue
        # The DHCP client of the cloud network (networkd) listens on UDP 68 by design.
        if (proto, port) == ("udp", "68"):
            continue
        exposed.add((proto, int(port)))
    assert exposed <= allowed, f"unexpected listeners: {sorted(exposed - allowed)}"
