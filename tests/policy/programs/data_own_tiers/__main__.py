"""Policy corpus: a team's data tier on CIDRs of its own (declared in its stack config as
citadelle:network.tiers), with a gateway and a router interface, under neutral names."""

import json

import pulumi
import pulumi_openstack as openstack

tiers = json.loads(pulumi.Config("citadelle").get("network") or "{}")["tiers"]
provider = openstack.Provider(
    "openstack",
    auth_url="https://identity.fr-par-1.snc.ovhcloud.com/v3",
    region="fr-par-1",
)
opts = pulumi.ResourceOptions(provider=provider)

router = openstack.networking.Router("out", external_network_id="ext-net", opts=opts)
for name, tier in tiers.items():
    net = openstack.networking.Network(f"net-{name}", opts=opts)
    subnet = openstack.networking.Subnet(f"sub-{name}", network_id=net.id, cidr=tier["cidr"],
                                         opts=opts)
    openstack.networking.RouterInterface(f"if-{name}", router_id=router.id,
                                         subnet_id=subnet.id, opts=opts)
