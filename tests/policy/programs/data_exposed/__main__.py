"""Policy corpus: the data tier (recognised by its CIDR and by the ports its group guards)
exposed: a floating IP on a database port, rules admitting the world, the edge's group and a
CIDR outside the peer tiers, and the provider's default egress rules kept."""

import pulumi
import pulumi_openstack as openstack

provider = openstack.Provider(
    "openstack",
    auth_url="https://identity.fr-par-1.snc.ovhcloud.com/v3",
    region="fr-par-1",
)
opts = pulumi.ResourceOptions(provider=provider)

net = openstack.networking.Network("db", name="db", opts=opts)
subnet = openstack.networking.Subnet("db", network_id=net.id, cidr="10.30.34.0/24",
                                     no_gateway=True, opts=opts)
front_net = openstack.networking.Network("front", name="front", opts=opts)
front = openstack.networking.Subnet("front", network_id=front_net.id, cidr="10.30.0.0/24",
                                    opts=opts)

db_group = openstack.networking.SecGroup("db", name="db", opts=opts)
front_group = openstack.networking.SecGroup("front", name="front",
                                            delete_default_rules=True, opts=opts)
openstack.networking.Port("front-lb", network_id=front_net.id,
                          fixed_ips=[{"subnet_id": front.id}],
                          security_group_ids=[front_group.id], opts=opts)
db_port = openstack.networking.Port("db-1", network_id=net.id,
                                    fixed_ips=[{"subnet_id": subnet.id}],
                                    security_group_ids=[db_group.id], opts=opts)

for name, source in {"db-world": {"remote_ip_prefix": "0.0.0.0/0"},
                     "db-from-front": {"remote_group_id": front_group.id},
                     "db-from-office": {"remote_ip_prefix": "172.16.8.0/24"}}.items():
    openstack.networking.SecGroupRule(
        name, direction="ingress", ethertype="IPv4", protocol="tcp", port_range_min=5432,
        port_range_max=5432, security_group_id=db_group.id, opts=opts, **source)

fip = openstack.networking.FloatingIp("db-public", pool="ext-net", opts=opts)
openstack.networking.FloatingIpAssociate("db-public", floating_ip=fip.address,
                                         port_id=db_port.id, opts=opts)
