"""Policy corpus: the data tier (recognised by its CIDR, no tags, neutral names) routed out:
a router port on its network plugged into a router, a subnet with a gateway, a shared network."""

import pulumi
import pulumi_openstack as openstack

provider = openstack.Provider(
    "openstack",
    auth_url="https://identity.fr-par-1.snc.ovhcloud.com/v3",
    region="fr-par-1",
)
opts = pulumi.ResourceOptions(provider=provider)

net = openstack.networking.Network("store", name="store", shared=True, opts=opts)
subnets = [
    openstack.networking.Subnet(f"store-{i}", network_id=net.id, cidr=cidr,
                                no_gateway=(i == 0), opts=opts)
    for i, cidr in enumerate(["10.30.32.0/24", "10.30.33.0/24"])
]
router = openstack.networking.Router("egress", external_network_id="ext-net", opts=opts)
uplink = openstack.networking.Port("uplink", network_id=net.id,
                                   fixed_ips=[{"subnet_id": subnets[0].id}], opts=opts)
openstack.networking.RouterInterface("uplink", router_id=router.id, port_id=uplink.id,
                                     opts=opts)
