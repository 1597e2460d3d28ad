"""Citadelle Pulumi program: one environment (stack dev, mirror or prod) of the platform.

Run by the Pulumi CLI (`pulumi up -s prod`) or offline by `citadelle plan` under a recording
mock monitor; nothing here depends on which.
"""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack
import pulumi_random as random
import pulumi_tls as tls

from citadelle.environment.outputs import export_keys
from citadelle.environment.projections import host_levels
from citadelle.environment.settings import Settings, load_settings
from citadelle.environment.settings import Workspace as WorkspaceSettings
from infra.components.baseline import Baseline, BaselineArgs, NamespaceQuota
from infra.components.compute import ComputeArgs, ComputeFleet, ServerSpec
from infra.components.edge import EdgeArgs, EdgeLoadBalancer
from infra.components.keys import KeyManagement, KeysArgs
from infra.components.kubernetes import ClusterArgs, KubernetesCluster, NodeGroupSpec
from infra.components.network import LandingNetwork, NetworkArgs, Tier
from infra.components.storage import ObjectStorage, StorageArgs
from infra.components.workspace import Workspace, WorkspaceArgs


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


def declare_kubernetes(
    settings: Settings,
    *,
    prefix: str,
    network: LandingNetwork,
    keys: KeyManagement,
    external_network_id: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> tuple[KubernetesCluster, Baseline, dict[str, Workspace]]:
    """The cluster in the app tier, its hardened baseline and one workspace per project."""
    k8s = settings.kubernetes
    env = settings.environment
    cluster = KubernetesCluster(
        f"{prefix}-kubernetes",
        ClusterArgs(
            prefix=prefix,
            environment=env,
            mode=k8s.mode,
            version=k8s.version,
            region=settings.openstack.region,
            auth_url=settings.openstack.auth_url,
            availability_zones=settings.openstack.availability_zones,
            image=settings.compute.image,
            master_count=k8s.master_count,
            master_flavor=k8s.master_flavor,
            node_groups=tuple(NodeGroupSpec(g.name, g.flavor, g.count) for g in k8s.node_groups),
            network_id=network.networks["app"].id,
            subnet_id=network.subnets["app"].id,
            external_network_id=external_network_id,
            dns_nameservers=settings.endpoint_hosts("dns"),
            registry=k8s.registry,
            volume_type=keys.volume_type.name,
            pod_cidr=k8s.pod_cidr,
            service_cidr=k8s.service_cidr,
            etcd_volume_gb=k8s.etcd_volume_gb,
            audit_log_max_age_days=k8s.audit_log_max_age_days,
            kms_key_ref=keys.secrets["kubernetes"].secret_ref,
            kubeconfig=settings.secrets.get("kubeconfig"),
            render_dir=k8s.render_dir,
        ),
        opts=opts,
    )
    in_cluster = pulumi.ResourceOptions.merge(
        opts, pulumi.ResourceOptions(providers=[cluster.provider])
    )
    quotas = k8s.platform_quotas
    tiers = settings.network.tiers
    baseline = Baseline(
        f"{prefix}-baseline",
        BaselineArgs(
            prefix=prefix,
            environment=env,
            psa_version=k8s.psa_version,
            registry=k8s.registry,
            system_namespaces=tuple(n.name for n in k8s.system_namespaces),
            operators_group=k8s.operators_group,
            auditors_group=k8s.auditors_group,
            platform_quota=NamespaceQuota(quotas.cpu, quotas.memory_gi, quotas.storage_gi),
            edge_cidr=tiers["edge"].cidr,
            data_cidr=tiers["data"].cidr,
            data_ports=settings.network.data_ports,
            ingress_port=k8s.ingress_port,
            backend_port=k8s.backend_port,
            # Magnum's masters (behind the private API load balancer) live in the app tier.
            api_cidrs=k8s.api_server_cidrs or (tiers["app"].cidr,),
            api_port=k8s.api_server_port,
            security_profile=cluster.security_profile,
        ),
        opts=in_cluster,
    )
    storage_url = settings.endpoint_urls("object-storage")[0]
    workspaces = {
        w.id: Workspace(
            f"{prefix}-ws-{w.id}",
            WorkspaceArgs(
                prefix=prefix,
                environment=env,
                id=w.id,
                approval_ref=w.approval_ref,
                members_group=w.members_group,
                quota=NamespaceQuota(w.quotas.cpu, w.quotas.memory_gi, w.quotas.storage_gi),
                extractions=w.extractions,
                expires=w.expires,
                reader=w.reader or f"{prefix}-ws-{w.id}",
                psa_version=k8s.psa_version,
                object_storage_url=storage_url,
                object_storage_cidrs=k8s.object_storage_cidrs,
                data_classification=settings.metadata.data_classification,
                storage_policy=settings.storage.storage_policy,
                source_location=_source_location(settings, w),
            ),
            opts=in_cluster,
        )
        for w in settings.workspaces
    }
    return cluster, baseline, workspaces


def _source_location(settings: Settings, workspace: WorkspaceSettings) -> tuple[str, str] | None:
    """The Azure endpoint and containers a migrating workspace still uses, until its switch."""
    move, migration = workspace.migration, settings.migration
    if move is None or migration is None:
        return None
    if settings.data_locations.get(workspace.id, "source") == "destination":
        return None
    return migration.source.url, ",".join(move.source_containers)


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

    levels = host_levels(settings)
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

    cluster, baseline, workspaces = declare_kubernetes(
        settings, prefix=prefix, network=network, keys=keys, external_network_id=external.id,
        opts=with_provider,
    )

    # Everything the post-deploy steps (inventory, hardening, checks, audit) need: the keys of
    # citadelle.environment.outputs.StackOutputs, checked below, and what the audit reads.
    exported: list[str] = []

    def export(key: str, value: object) -> None:
        exported.append(key)
        pulumi.export(key, value)

    export("environment", env)
    export("region", settings.openstack.region)
    export("adminUser", settings.admin.user)
    export("adminGroup", settings.admin.group)
    export(
        "bastion",
        {
            "publicIp": fleet.bastion_addresses[0],
            "publicIps": fleet.bastion_addresses,
            "sshPort": 22,
            "hostKeyEd25519": fleet.bastion_host_key.public_key_openssh,
        },
    )
    export(
        "servers",
        {
            name: {"role": fleet.roles[name], "privateIp": ip, "pool": fleet.placement[name][0],
                   "tier": fleet.placement[name][1]}
            for name, ip in fleet.private_ips.items()
        },
    )
    export("edgeAddress", edge.floating_ip.address)
    export("networks", {t: n.id for t, n in network.networks.items()})
    export("subnets", {t: s.id for t, s in network.subnets.items()})
    export("securityGroups", {t: g.id for t, g in network.security_groups.items()})
    export("keys", {p: s.secret_ref for p, s in keys.secrets.items()})
    export("keyContainer", keys.container.container_ref)
    export("volumeType", keys.volume_type.name)
    export("containers", {p: c.name for p, c in storage.containers.items()})
    export(
        "kubernetes",
        {
            "mode": settings.kubernetes.mode,
            "version": settings.kubernetes.version,
            "apiAddress": cluster.api_address,
            "kmsKeyRef": cluster.kms_key_ref,
            "namespaces": baseline.namespaces,
            "registry": settings.kubernetes.registry,
        },
    )
    export(
        "workspaces",
        {
            wid: {
                "namespace": f"ws-{wid}",
                "container": ws.container.name,
                "keyRef": ws.key.secret_ref,
            }
            for wid, ws in workspaces.items()
        },
    )

    missing = sorted(set(export_keys()) - set(exported))
    if missing:
        raise pulumi.RunError(f"the program does not export the stack outputs {missing}")


main()
