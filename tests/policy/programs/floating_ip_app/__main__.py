"""Policy corpus: a public address on an app-tier server."""

import pulumi
import pulumi_openstack as openstack

provider = openstack.Provider(
    "openstack",
    auth_url="https://identity.fr-par-1.snc.ovhcloud.com/v3",
    region="fr-par-1",
)
opts = pulumi.ResourceOptions(provider=provider)

net = openstack.networking.Network("app", name="app", tags=["tier=app"], opts=opts)
port = openstack.networking.Port("worker", network_id=net.id, opts=opts)
fip = openstack.networking.FloatingIp("worker", pool="ext-net", opts=opts)
openstack.networking.FloatingIpAssociate("worker", floating_ip=fip.address, port_id=port.id,
                                         opts=opts)
