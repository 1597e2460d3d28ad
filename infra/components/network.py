"""Network tiers, routers and default-deny security groups of the landing zone.

SecNumCloud 13.2 (segmentation) and 12.14 (outbound flows): each tier has its own network and
subnet with port security on; only tiers that need egress get a router; the data tier never has
one. Security groups start empty (the provider's default allow-all egress rules are deleted) and
get only the tier-to-tier rules of ``flow_rules``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

TIERS = ("edge", "app", "data", "admin", "transfer")
SSH_PORT = 22


@dataclass(frozen=True)
class Tier:
    name: str
    cidr: str
    egress: bool


@dataclass(frozen=True)
class Flow:
    """One allowed flow. ``source`` is a tier name (its security group) or a CIDR."""

    direction: str  # "ingress" or "egress" seen from ``tier``
    tier: str
    protocol: str
    port: int
    peer: str  # tier name or CIDR
    why: str


@dataclass(frozen=True)
class NetworkArgs:
    prefix: str
    tiers: tuple[Tier, ...]
    external_network_id: pulumi.Input[str]
    dns_nameservers: tuple[str, ...]
    admin_cidrs: tuple[str, ...]
    transfer_source_cidrs: tuple[str, ...]
    service_cidrs: tuple[str, ...]
    data_ports: tuple[int, ...]
    app_port: int
    transfer_port: int


def flow_rules(args: NetworkArgs) -> tuple[Flow, ...]:
    """The complete flow matrix: anything not listed is denied."""
    flows: list[Flow] = [
        Flow("ingress", "edge", "tcp", 443, "0.0.0.0/0", "public HTTPS entry on the load balancer"),
        Flow("egress", "edge", "tcp", args.app_port, "app", "load balancer to the platform"),
        Flow("ingress", "app", "tcp", args.app_port, "edge", "platform behind the load balancer"),
    ]
    flows += [Flow("ingress", "admin", "tcp", SSH_PORT, c, "operators to bastion")
              for c in args.admin_cidrs]
    for tier in ("app", "data", "transfer"):
        flows.append(Flow("ingress", tier, "tcp", SSH_PORT, "admin", "SSH only from bastion"))
        flows.append(Flow("egress", "admin", "tcp", SSH_PORT, tier, "bastion jump to " + tier))
    for port in args.data_ports:
        flows.append(Flow("egress", "app", "tcp", port, "data", "platform to data services"))
        flows.append(Flow("ingress", "data", "tcp", port, "app", "data services for platform"))
        flows.append(Flow("egress", "transfer", "tcp", port, "data", "intake into data tier"))
        flows.append(Flow("ingress", "data", "tcp", port, "transfer", "intake from gateway"))
    # Magnum puts the cluster nodes in security groups of its own, so the data tier admits the
    # app subnet itself on the data ports (the app tier holds nothing but the cluster's nodes).
    app_cidr = next(t.cidr for t in args.tiers if t.name == "app")
    flows += [Flow("ingress", "data", "tcp", port, app_cidr, "cluster nodes to data services")
              for port in args.data_ports]
    flows += [
        Flow("ingress", "transfer", "tcp", args.transfer_port, c, "legacy hosting pushes extracts")
        for c in args.transfer_source_cidrs
    ]
    # In-region provider services only (mirror, registry, NTP, DNS): SecNumCloud 12.14.a.
    for tier in ("app", "admin", "transfer"):
        for cidr in args.service_cidrs:
            flows.append(Flow("egress", tier, "tcp", 443, cidr, "in-region mirror/registry"))
            flows.append(Flow("egress", tier, "udp", 123, cidr, "in-region NTP"))
            flows.append(Flow("egress", tier, "udp", 53, cidr, "in-region DNS"))
    for cidr in args.service_cidrs:
        flows.append(Flow("egress", "data", "udp", 123, cidr, "in-region NTP"))
        flows.append(Flow("egress", "data", "udp", 53, cidr, "in-region DNS"))
    return tuple(flows)


class LandingNetwork(pulumi.ComponentResource):
    """Tier networks, subnets, routers and security groups
    (type citadelle:network:LandingNetwork)."""

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("citadelle:network:LandingNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.networks: dict[str, openstack.networking.Network] = {}
        self.subnets: dict[str, openstack.networking.Subnet] = {}
        self.security_groups: dict[str, openstack.networking.SecGroup] = {}
        self.routers: dict[str, openstack.networking.Router] = {}

        for tier in args.tiers:
            net = openstack.networking.Network(
                f"{name}-{tier.name}",
                name=f"{args.prefix}-{tier.name}",
                admin_state_up=True,
                port_security_enabled=True,
                tags=[f"tier={tier.name}"],
                opts=child,
            )
            subnet = openstack.networking.Subnet(
                f"{name}-{tier.name}",
                name=f"{args.prefix}-{tier.name}",
                network_id=net.id,
                cidr=tier.cidr,
                ip_version=4,
                enable_dhcp=True,
                dns_nameservers=list(args.dns_nameservers),
                # A tier without egress gets no gateway at all: nothing to route through.
                no_gateway=not tier.egress,
                tags=[f"tier={tier.name}"],
                opts=child,
            )
            self.networks[tier.name] = net
            self.subnets[tier.name] = subnet
            if tier.egress:
                router = openstack.networking.Router(
                    f"{name}-{tier.name}",
                    name=f"{args.prefix}-{tier.name}",
                    admin_state_up=True,
                    external_network_id=args.external_network_id,
                    tags=[f"tier={tier.name}"],
                    opts=child,
                )
                openstack.networking.RouterInterface(
                    f"{name}-{tier.name}",
                    router_id=router.id,
                    subnet_id=subnet.id,
                    opts=child,
                )
                self.routers[tier.name] = router
            self.security_groups[tier.name] = openstack.networking.SecGroup(
                f"{name}-{tier.name}",
                name=f"{args.prefix}-{tier.name}",
                description=f"Citadelle {tier.name} tier: default deny, explicit flows only",
                # Drop the provider's allow-all egress rules: default deny both ways.
                delete_default_rules=True,
                tags=[f"tier={tier.name}"],
                opts=child,
            )

        self.rules: list[openstack.networking.SecGroupRule] = []
        for flow in flow_rules(args):
            peer_is_tier = flow.peer in self.security_groups
            peer_label = flow.peer if peer_is_tier else flow.peer.replace("/", "-")
            self.rules.append(
                openstack.networking.SecGroupRule(
                    f"{name}-{flow.tier}-{flow.direction}-{flow.protocol}{flow.port}-{peer_label}",
                    description=flow.why,
                    direction=flow.direction,
                    ethertype="IPv4",
                    protocol=flow.protocol,
                    port_range_min=flow.port,
                    port_range_max=flow.port,
                    remote_group_id=self.security_groups[flow.peer].id if peer_is_tier else None,
                    remote_ip_prefix=None if peer_is_tier else flow.peer,
                    security_group_id=self.security_groups[flow.tier].id,
                    opts=child,
                )
            )

        self.register_outputs(
            {
                "networkIds": {t: n.id for t, n in self.networks.items()},
                "subnetIds": {t: s.id for t, s in self.subnets.items()},
                "securityGroupIds": {t: g.id for t, g in self.security_groups.items()},
                "routerIds": {t: r.id for t, r in self.routers.items()},
            }
        )
