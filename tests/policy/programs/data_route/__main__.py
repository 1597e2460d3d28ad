"""Policy corpus: a router interface on the data tier."""

import pulumi
import pulumi_openstack as openstack

provider = openstack.Provider(
    "openstack",
    auth_url="https://identity.fr-par-1.snc.ovhcloud.com/v3",
    region="fr-par-1",
)
opts = pulumi.ResourceOptions(provider=provider)

net = openstack.networking.Network("data", name="data", tags=["tier=data"], opts=opts)
subnet = openstack.networking.Subnet("data", network_id=net.id, cidr="10.1.32.0/22",
                                     no_gateway=True, tags=["tier=data"], opts=opts)
router = openstack.networking.Router("egress", external_network_id="ext-net", opts=opts)
openstack.networking.RouterInterface("data", router_id=router.id, subnet_id=subnet.id, opts=opts)
