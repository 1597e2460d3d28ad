"""Servers of the landing zone: bastion, transfer gateway and node pools.

Every server boots the named hardened image (BP-028, hardened further by the Ansible roles),
sits in an anti-affinity server group spread over the availability zones (SecNumCloud 17.1
continuity), has no public address except the bastion (SecNumCloud 9.6.d, 13.2), carries the
metadata auditors need (environment, node role, data classification, owner) and, where it keeps
data, an extra volume of the encrypted type (SecNumCloud 10.1).

The bastion's SSH host key is generated here (pulumi-tls, a Pulumi secret) and injected by
cloud-init, so its public half is a stack output that operators pin before their first login.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack
import pulumi_tls as tls


@dataclass(frozen=True)
class ServerSpec:
    """One group of identical servers."""

    name: str  # group name, e.g. "bastion", "gateway", "workers"
    role: str  # Ansible group: bastion | gateway | node
    tier: str
    flavor: str
    count: int
    data_volume_gb: int = 0


@dataclass(frozen=True)
class ComputeArgs:
    prefix: str
    environment: str
    image: str
    availability_zones: tuple[str, ...]
    servers: tuple[ServerSpec, ...]
    network_ids: dict[str, pulumi.Input[str]]
    subnet_ids: dict[str, pulumi.Input[str]]
    security_group_ids: dict[str, pulumi.Input[str]]
    external_network: str
    ssh_keys: tuple[tuple[str, str], ...]  # (name, public key)
    admin_user: str
    admin_group: str
    volume_type: pulumi.Input[str]
    owner: str
    data_classification: str
    hardening_levels: Mapping[str, str]


def _cloud_init(args: ComputeArgs, host_key: tls.PrivateKey | None) -> pulumi.Output[str]:
    """cloud-config creating the admin account (key-only) and pinning the bastion host key."""
    base: dict[str, object] = {
        "disable_root": True,
        "ssh_pwauth": False,
        "groups": [args.admin_group],
        "users": [
            {
                "name": args.admin_user,
                "groups": [args.admin_group],
                "lock_passwd": True,
                "shell": "/bin/bash",
                "ssh_authorized_keys": [key for _, key in args.ssh_keys],
            }
        ],
    }
    if host_key is None:
        return pulumi.Output.from_input("#cloud-config\n" + json.dumps(base, sort_keys=True))

    def render(keys: list[str]) -> str:
        doc = dict(base, ssh_deletekeys=True, ssh_genkeytypes=[],
                   ssh_keys={"ed25519_private": keys[0], "ed25519_public": keys[1]})
        return "#cloud-config\n" + json.dumps(doc, sort_keys=True)

    return pulumi.Output.secret(
        pulumi.Output.all(host_key.private_key_openssh, host_key.public_key_openssh).apply(render)
    )


class ComputeFleet(pulumi.ComponentResource):
    """Key pairs, server groups, ports, servers and volumes
    (type citadelle:compute:ComputeFleet)."""

    def __init__(
        self, name: str, args: ComputeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("citadelle:compute:ComputeFleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        keypair = openstack.compute.Keypair(
            f"{name}-admin",
            name=f"{args.prefix}-admin",
            public_key=args.ssh_keys[0][1],
            opts=child,
        )
        self.bastion_host_key = tls.PrivateKey(f"{name}-bastion-hostkey", algorithm="ED25519",
                                               opts=child)
        self.private_ips: dict[str, pulumi.Output[str]] = {}
        self.roles: dict[str, str] = {}
        # server name -> (server group, network tier): what the post-deploy steps place it by.
        self.placement: dict[str, tuple[str, str]] = {}
        self.bastion_addresses: list[pulumi.Output[str]] = []

        for spec in args.servers:
            group = openstack.compute.ServerGroup(
                f"{name}-{spec.name}",
                name=f"{args.prefix}-{spec.name}",
                # Hard anti-affinity: two servers of a group never share a hypervisor.
                policies="anti-affinity",
                opts=child,
            )
            is_bastion = spec.role == "bastion"
            user_data = _cloud_init(args, self.bastion_host_key if is_bastion else None)
            for index in range(spec.count):
                server_name = f"{args.prefix}-{spec.name}-{index + 1}"
                zone = args.availability_zones[index % len(args.availability_zones)]
                port = openstack.networking.Port(
                    f"{name}-{spec.name}-{index + 1}",
                    name=server_name,
                    network_id=args.network_ids[spec.tier],
                    fixed_ips=[openstack.networking.PortFixedIpArgs(
                        subnet_id=args.subnet_ids[spec.tier])],
                    security_group_ids=[args.security_group_ids[spec.tier]],
                    port_security_enabled=True,
                    admin_state_up=True,
                    opts=child,
                )
                server = openstack.compute.Instance(
                    f"{name}-{spec.name}-{index + 1}",
                    name=server_name,
                    image_name=args.image,
                    flavor_name=spec.flavor,
                    key_pair=keypair.name,
                    availability_zone=zone,
                    networks=[openstack.compute.InstanceNetworkArgs(port=port.id)],
                    scheduler_hints=[openstack.compute.InstanceSchedulerHintArgs(group=group.id)],
                    config_drive=True,
                    user_data=user_data,
                    metadata={
                        "environment": args.environment,
                        "node_role": spec.role,
                        "tier": spec.tier,
                        "data_classification": args.data_classification,
                        "owner": args.owner,
                        "bp028_level": args.hardening_levels[spec.role],
                    },
                    opts=child,
                )
                self.private_ips[server_name] = port.all_fixed_ips[0]
                self.roles[server_name] = spec.role
                self.placement[server_name] = (spec.name, spec.tier)
                if spec.data_volume_gb:
                    volume = openstack.blockstorage.Volume(
                        f"{name}-{spec.name}-{index + 1}-data",
                        name=f"{server_name}-data",
                        size=spec.data_volume_gb,
                        volume_type=args.volume_type,
                        availability_zone=zone,
                        metadata={"environment": args.environment, "tier": spec.tier,
                                  "data_classification": args.data_classification},
                        opts=child,
                    )
                    openstack.compute.VolumeAttach(
                        f"{name}-{spec.name}-{index + 1}-data",
                        instance_id=server.id,
                        volume_id=volume.id,
                        opts=child,
                    )
                if is_bastion:
                    fip = openstack.networking.FloatingIp(
                        f"{name}-{spec.name}-{index + 1}",
                        pool=args.external_network,
                        description=f"{server_name}: the only public admin entry",
                        opts=child,
                    )
                    openstack.networking.FloatingIpAssociate(
                        f"{name}-{spec.name}-{index + 1}",
                        floating_ip=fip.address,
                        port_id=port.id,
                        opts=child,
                    )
                    self.bastion_addresses.append(fip.address)

        self.register_outputs(
            {
                "privateIps": self.private_ips,
                "roles": self.roles,
                "bastionAddresses": self.bastion_addresses,
                "bastionHostKey": self.bastion_host_key.public_key_openssh,
            }
        )
