"""Citadelle Pulumi program: one environment (stack dev, mirror or prod) of the platform.

Run by the Pulumi CLI (`pulumi up -s prod`) or offline by `citadelle plan` under a recording
mock monitor; nothing here depends on which.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The CLI runs this directory as a script; make the `infra` package importable from the
# repository root in every case (editable install or plain checkout).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi
import pulumi_openstack as openstack
import pulumi_random as random
import pulumi_tls as tls

from infra.components.compute import ComputeArgs, ComputeFleet, ServerSpec
from infra.components.edge import EdgeArgs, EdgeLoadBalancer
from infra.components.keys import KeyManagement, KeysArgs
from infra.components.network import LandingNetwork, NetworkArgs, Tier
from infra.components.storage import ObjectStorage, StorageArgs
from infra.config import Settings, load_settings


def server_specs(settings: Settings) -> tuple[ServerSpec, ...]:
    compute = settings.compute
    specs = [
        ServerSpec("bastion", "bastion", "admin", compute.bastion.flavor, compute.bastion.count,
                   compute.bastion.data_volume_gb),
        ServerSpec("gateway", "gateway", "transfer", compute.gateway.flavor, compute.gateway.count,
                   compute.gateway.data_volume_gb),
    ]
    specs += [
        ServerSpec(p.name, "node", p.tier, p.flavor, p.count, p.data_volume_gb)
        for p in compute.node_pools
    ]
    return tuple(specs)


def main() -> None:
    settings = load_settings()
    env = settings.environment
    prefix = f"citadelle-{env}"

    # Credentials come from OS_CLOUD/clouds.yaml or OS_* variables, never from stack config.
    provider = openstack.Provider(
        "openstack",
        auth_url=settings.openstack.auth_url,
        region=settings.openstack.region,
        cloud=settings.openstack.cloud,
    )
    # Explicit providers for every package: default providers are disabled in Pulumi.yaml.
    with_provider = pulumi.ResourceOptions(
        providers=[provider, random.Provider("random"), tls.Provider("tls")]
    )
    external = openstack.networking.get_network_output(
        name=settings.openstack.external_network,
        external=True,
        opts=pulumi.InvokeOptions(provider=provider),
    )

    net_cfg = settings.network
    network = LandingNetwork(
        "network",
        NetworkArgs(
            prefix=prefix,
            tiers=tuple(Tier(t, s.cidr, s.egress) for t, s in net_cfg.tiers.items()),
            external_network_id=external.id,
            dns_nameservers=settings.endpoint_hosts("dns"),
            admin_cidrs=net_cfg.admin_cidrs,
            transfer_source_cidrs=net_cfg.transfer_source_cidrs,
            service_cidrs=net_cfg.service_cidrs,
            data_ports=net_cfg.data_ports,
            app_port=net_cfg.app_port,
            transfer_port=net_cfg.transfer_port,
        ),
        opts=with_provider,
    )

    storage_cfg = settings.storage
    keys = KeyManagement(
        "keys",
        KeysArgs(
            prefix=prefix,
            purposes=settings.keys.purposes,
            readers=settings.keys.readers,
            volume_type=storage_cfg.volume_type,
            cipher=storage_cfg.encryption_cipher,
            key_size=storage_cfg.encryption_key_size,
            supplied={p: settings.secrets[f"{p}Kek"] for p in settings.keys.supplied},
        ),
        opts=with_provider,
    )

    edge = EdgeLoadBalancer(
        "edge",
        EdgeArgs(
            prefix=prefix,
            subnet_id=network.subnets["edge"].id,
            security_group_id=network.security_groups["edge"].id,
            external_network=settings.openstack.external_network,
        ),
        opts=with_provider,
    )

    levels = {
        "bastion": settings.hardening.bastion_level,
        "gateway": settings.hardening.level,
        "node": settings.hardening.level,
    }
    fleet = ComputeFleet(
        "compute",
        ComputeArgs(
            prefix=prefix,
            environment=env,
            image=settings.compute.image,
            availability_zones=settings.openstack.availability_zones,
            servers=server_specs(settings),
            network_ids={t: n.id for t, n in network.networks.items()},
            subnet_ids={t: s.id for t, s in network.subnets.items()},
            security_group_ids={t: g.id for t, g in network.security_groups.items()},
            external_network=settings.openstack.external_network,
            ssh_keys=tuple((k.name, k.public_key) for k in settings.admin.ssh_keys),
            admin_user=settings.admin.user,
            admin_group=settings.admin.group,
            volume_type=keys.volume_type.name,
            owner=settings.metadata.owner,
            data_classification=settings.metadata.data_classification,
            hardening_levels=levels,
        ),
        opts=with_provider,
    )

    storage = ObjectStorage(
        "storage",
        StorageArgs(
            prefix=prefix,
            containers=storage_cfg.containers,
            environment=env,
            data_classification=settings.metadata.data_classification,
            storage_policy=storage_cfg.storage_policy,
        ),
        opts=with_provider,
    )

    # Everything the post-deploy steps (inventory, hardening, checks, audit) need.
    pulumi.export("environment", env)
    pulumi.export("region", settings.openstack.region)
    pulumi.export("adminUser", settings.admin.user)
    pulumi.export("adminGroup", settings.admin.group)
    pulumi.export(
        "bastion",
        {
            "publicIp": fleet.bastion_addresses[0],
            "publicIps": fleet.bastion_addresses,
            "sshPort": 22,
            "hostKeyEd25519": fleet.bastion_host_key.public_key_openssh,
        },
    )
    pulumi.export(
        "servers",
        {
            name: {"role": fleet.roles[name], "privateIp": ip, "sshPort": None}
            for name, ip in fleet.private_ips.items()
        },
    )
    pulumi.export("edgeAddress", edge.floating_ip.address)
    pulumi.export("networks", {t: n.id for t, n in network.networks.items()})
    pulumi.export("subnets", {t: s.id for t, s in network.subnets.items()})
    pulumi.export("securityGroups", {t: g.id for t, g in network.security_groups.items()})
    pulumi.export("keys", {p: s.secret_ref for p, s in keys.secrets.items()})
    pulumi.export("keyContainer", keys.container.container_ref)
    pulumi.export("volumeType", keys.volume_type.name)
    pulumi.export("containers", {p: c.name for p, c in storage.containers.items()})


main()
