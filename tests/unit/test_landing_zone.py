"""Isolation properties of the landing zone, asserted on the recorded registrations."""

from __future__ import annotations

import ipaddress

import pytest
import yaml

from citadelle import paths
from citadelle.plan.offline import RecordedResource, Recording, is_secret
from citadelle.plan.plan import tiers

pytestmark = pytest.mark.unit

NETWORK = "openstack:networking/network:Network"
SUBNET = "openstack:networking/subnet:Subnet"
ROUTER_IF = "openstack:networking/routerInterface:RouterInterface"
SECGROUP = "openstack:networking/secGroup:SecGroup"
RULE = "openstack:networking/secGroupRule:SecGroupRule"
PORT = "openstack:networking/port:Port"
FIP = "openstack:networking/floatingIp:FloatingIp"
FIP_ASSOC = "openstack:networking/floatingIpAssociate:FloatingIpAssociate"
VOLUME = "openstack:blockstorage/volume:Volume"
VOLUME_TYPE = "openstack:blockstorage/volumeTypeV3:VolumeTypeV3"
SECRET = "openstack:keymanager/secretV1:SecretV1"
SERVER = "openstack:compute/instance:Instance"
CONTAINER = "openstack:objectstorage/container:Container"
LB = "openstack:loadbalancer/loadBalancer:LoadBalancer"
REQUIRED_METADATA = {"environment", "node_role", "data_classification", "owner"}


def _security_group_tier(recording: Recording) -> dict[str, str]:
    tier_of = tiers(recording)
    return {g.id: tier_of[g.urn] for g in recording.of_type(SECGROUP) if g.id}


def _subnet_tier(recording: Recording, tier: str) -> RecordedResource:
    tier_of = tiers(recording)
    return next(s for s in recording.of_type(SUBNET) if tier_of[s.urn] == tier)


def test_every_tier_has_its_network_with_port_security(recording: Recording) -> None:
    tier_of = tiers(recording)
    networks = {tier_of[n.urn]: n for n in recording.of_type(NETWORK)}
    assert set(networks) == {"edge", "app", "data", "admin", "transfer"}
    assert all(n.inputs["portSecurityEnabled"] is True for n in networks.values())


def test_data_tier_has_no_route_to_any_external_network(recording: Recording) -> None:
    data_subnet = _subnet_tier(recording, "data")
    assert data_subnet.inputs["noGateway"] is True
    routed = {i.inputs["subnetId"] for i in recording.of_type(ROUTER_IF)}
    assert data_subnet.id not in routed
    # And the routed tiers are exactly those whose config asks for egress.
    tier_of = tiers(recording)
    routed_tiers = {tier_of[s.urn] for s in recording.of_type(SUBNET) if s.id in routed}
    assert routed_tiers == {"edge", "app", "admin", "transfer"}


def test_floating_ips_only_on_edge_load_balancer_and_bastions(recording: Recording) -> None:
    by_id = recording.by_id()
    tier_of = tiers(recording)
    lb_vip_ports = {lb.outputs["vipPortId"] for lb in recording.of_type(LB)}
    associated = {a.inputs["floatingIp"]: by_id[a.inputs["portId"]]
                  for a in recording.of_type(FIP_ASSOC)}
    for fip in recording.of_type(FIP):
        if "portId" in fip.inputs:
            assert fip.inputs["portId"] in lb_vip_ports, fip.name
        else:
            port = associated[fip.outputs["address"]]
            assert tier_of[port.urn] == "admin" and "-bastion-" in port.inputs["name"], fip.name
    servers = recording.of_type(SERVER)
    bastions = [s for s in servers if s.inputs["metadata"]["node_role"] == "bastion"]
    assert len(associated) == len(bastions) >= 1


def test_security_groups_drop_the_default_allow_all_rules(recording: Recording) -> None:
    groups = recording.of_type(SECGROUP)
    assert len(groups) == 5
    assert all(g.inputs["deleteDefaultRules"] is True for g in groups)


def test_world_open_ingress_is_only_https_on_the_edge(recording: Recording) -> None:
    group_tier = _security_group_tier(recording)
    world = [r for r in recording.of_type(RULE)
             if r.inputs.get("remoteIpPrefix") == "0.0.0.0/0"]
    assert [(group_tier[r.inputs["securityGroupId"]], r.inputs["direction"],
             r.inputs["portRangeMin"]) for r in world] == [("edge", "ingress", 443.0)]


def test_every_rule_names_its_peer_and_a_single_port(recording: Recording) -> None:
    for rule in recording.of_type(RULE):
        inputs = rule.inputs
        assert ("remoteGroupId" in inputs) != ("remoteIpPrefix" in inputs), rule.name
        assert inputs["portRangeMin"] == inputs["portRangeMax"], rule.name
        assert inputs["protocol"] in ("tcp", "udp"), rule.name


def test_ssh_is_only_from_the_bastion_group_or_to_the_bastion_from_admin_cidrs(
    recording: Recording,
) -> None:
    group_tier = _security_group_tier(recording)
    env_file = paths.ENVIRONMENTS_DIR / f"Pulumi.{recording.stack}.yaml"
    admin_cidrs = set(yaml.safe_load(env_file.read_text())["config"]["citadelle:network"]
                      ["adminCidrs"])
    ssh_in = [r for r in recording.of_type(RULE)
              if r.inputs["direction"] == "ingress" and r.inputs["portRangeMin"] == 22]
    assert ssh_in
    for rule in ssh_in:
        tier = group_tier[rule.inputs["securityGroupId"]]
        if tier == "admin":
            assert rule.inputs["remoteIpPrefix"] in admin_cidrs
        else:
            assert group_tier[rule.inputs["remoteGroupId"]] == "admin", rule.name


def test_data_tier_accepts_only_data_ports_from_app_and_gateway_and_ssh_from_bastion(
    recording: Recording,
) -> None:
    group_tier = _security_group_tier(recording)
    app_cidr = _subnet_tier(recording, "app").inputs["cidr"]
    data_in = {
        (group_tier.get(r.inputs.get("remoteGroupId", ""), r.inputs.get("remoteIpPrefix")),
         int(r.inputs["portRangeMin"]))
        for r in recording.of_type(RULE)
        if group_tier[r.inputs["securityGroupId"]] == "data" and r.inputs["direction"] == "ingress"
    }
    assert data_in == {("app", 5432), ("app", 8443), ("transfer", 5432), ("transfer", 8443),
                       ("admin", 22), (app_cidr, 5432), (app_cidr, 8443)}


def test_egress_goes_only_to_tiers_or_in_region_service_ranges(recording: Recording) -> None:
    services = [ipaddress.ip_network(c) for c in ("10.64.0.0/16", "10.250.0.0/16")]
    for rule in recording.of_type(RULE):
        prefix = rule.inputs.get("remoteIpPrefix")
        if rule.inputs["direction"] == "egress" and prefix:
            assert any(ipaddress.ip_network(prefix).subnet_of(s) for s in services), rule.name


def test_every_volume_uses_the_encrypted_type(recording: Recording) -> None:
    (volume_type,) = recording.of_type(VOLUME_TYPE)
    specs = volume_type.inputs["extraSpecs"]
    assert specs["citadelle:encryption_provider"] == "luks"
    assert specs["citadelle:encryption_cipher"] == "aes-xts-plain64"
    assert specs["citadelle:encryption_key_size"] == "256"
    assert specs["citadelle:encryption_control_location"] == "front-end"
    volumes = recording.of_type(VOLUME)
    assert volumes
    assert {v.inputs["volumeType"] for v in volumes} == {volume_type.inputs["name"]}


def test_keys_are_secrets_readable_only_by_service_users(recording: Recording) -> None:
    # The landing zone's KEKs; research workspaces' own keys are tested in tests/k8s.
    secrets = [s for s in recording.of_type(SECRET) if s.parent and s.parent.endswith("::keys")]
    assert {s.inputs["metadata"]["purpose"] for s in secrets} == {"volume", "kubernetes",
                                                                  "backup"}
    for secret in secrets:
        assert is_secret(secret.inputs["payload"]), secret.name
        assert secret.inputs["bitLength"] == 256.0
        assert secret.inputs["acl"]["read"]["projectAccess"] is False
        assert secret.inputs["acl"]["read"]["users"]


def test_no_secret_value_is_recorded(recording: Recording) -> None:
    import json

    text = json.dumps(recording.to_dict())
    assert "PRIVATE KEY" not in text
    for server in recording.of_type(SERVER):
        if server.inputs["metadata"]["node_role"] == "bastion":
            assert is_secret(server.inputs["userData"])  # carries the pinned host key


def test_every_server_has_metadata_image_group_and_no_public_port(recording: Recording) -> None:
    servers = recording.of_type(SERVER)
    assert servers
    for server in servers:
        assert set(server.inputs["metadata"]) >= REQUIRED_METADATA, server.name
        assert server.inputs["imageName"].startswith("citadelle-debian12-bp028")
        assert server.inputs["schedulerHints"][0]["group"]
        assert len(server.inputs["networks"]) == 1


def test_servers_spread_over_availability_zones(recording: Recording) -> None:
    env_file = paths.ENVIRONMENTS_DIR / f"Pulumi.{recording.stack}.yaml"
    zones = yaml.safe_load(env_file.read_text())["config"]["citadelle:openstack"][
        "availabilityZones"]
    workers = [s for s in recording.of_type(SERVER) if "-workers-" in s.inputs["name"]]
    used = {s.inputs["availabilityZone"] for s in workers}
    assert used == set(zones[: len(workers)])


def test_object_storage_is_private_and_versioned(recording: Recording) -> None:
    # The landing zone's containers; research workspaces' are tested in tests/k8s.
    containers = [c for c in recording.of_type(CONTAINER)
                  if c.parent and c.parent.endswith("::storage")]
    assert {c.inputs["metadata"]["purpose"] for c in containers} == {"datalake", "extractions",
                                                                     "backups"}
    for container in containers:
        assert container.inputs.get("containerRead", "") == ""
        assert container.inputs["versioning"] is True


def test_no_resource_uses_a_default_provider(recording: Recording) -> None:
    providers = {r.urn for r in recording.resources if r.type.startswith("pulumi:providers:")}
    assert {p.rsplit("::", 1)[-1] for p in providers} >= {"openstack", "random", "tls"}
    for resource in recording.resources:
        if resource.custom and not resource.type.startswith("pulumi:providers:"):
            assert resource.provider, resource.urn
            assert resource.provider.split("::")[0] + "::" + "::".join(
                resource.provider.split("::")[1:4]) in providers, resource.urn


def test_stack_outputs_carry_what_post_deploy_steps_need(recording: Recording) -> None:
    outputs = recording.stack_outputs
    assert outputs["environment"] == recording.stack
    assert ipaddress.ip_address(outputs["bastion"]["publicIp"])
    assert outputs["bastion"]["hostKeyEd25519"].startswith("ssh-ed25519 ")
    roles = {s["role"] for s in outputs["servers"].values()}
    assert roles == {"bastion", "gateway", "node"}
    for server in outputs["servers"].values():
        assert ipaddress.ip_address(server["privateIp"]).is_private
    assert set(outputs["securityGroups"]) == set(outputs["networks"]) == {
        "edge", "app", "data", "admin", "transfer"}
    assert set(outputs["keys"]) == {"volume", "kubernetes", "backup"}
    assert outputs["volumeType"].endswith("-luks")
