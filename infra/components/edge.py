"""The edge load balancer: the platform's only public entry besides the bastion.

SecNumCloud 13.2: the load balancer's VIP lives in the edge tier behind the edge security group
(443 only) and gets the one public floating IP of the platform's service path.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack


@dataclass(frozen=True)
class EdgeArgs:
    prefix: str
    subnet_id: pulumi.Input[str]
    security_group_id: pulumi.Input[str]
    external_network: str
    availability_zone: str | None = None


class EdgeLoadBalancer(pulumi.ComponentResource):
    """Octavia load balancer with its floating IP (type citadelle:edge:EdgeLoadBalancer)."""

    def __init__(
        self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("citadelle:edge:EdgeLoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.load_balancer = openstack.loadbalancer.LoadBalancer(
            f"{name}-lb",
            name=f"{args.prefix}-edge",
            vip_subnet_id=args.subnet_id,
            security_group_ids=[args.security_group_id],
            admin_state_up=True,
            opts=child,
        )
        self.floating_ip = openstack.networking.FloatingIp(
            f"{name}-lb",
            pool=args.external_network,
            port_id=self.load_balancer.vip_port_id,
            description=f"{args.prefix}: public HTTPS entry (edge load balancer)",
            opts=child,
        )
        self.register_outputs(
            {"address": self.floating_ip.address, "vipAddress": self.load_balancer.vip_address}
        )
