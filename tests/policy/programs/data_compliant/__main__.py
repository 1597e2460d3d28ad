"""Policy corpus (compliant): an isolated data tier recognised by its CIDR: no gateway, no
router, a default-deny group admitting the app tier's group and CIDR only; the app tier routes
out and the bastion alone carries a floating IP."""

import pulumi
import pulumi_openstack as openstack

provider = openstack.Provider(
    "openstack",
    auth_url="https://identity.fr-par-1.snc.ovhcloud.com/v3",
    region="fr-par-1",
)
opts = pulumi.ResourceOptions(provider=provider)
CIDRS = {"db": "10.30.32.0/22", "apps": "10.30.16.0/22", "jump": "10.30.1.0/27"}

nets, subnets, groups, ports = {}, {}, {}, {}
for name, cidr in CIDRS.items():
    nets[name] = openstack.networking.Network(name, name=name, opts=opts)
    subnets[name] = openstack.networking.Subnet(name, network_id=nets[name].id, cidr=cidr,
                                                no_gateway=name == "db", opts=opts)
    groups[name] = openstack.networking.SecGroup(name, name=name, delete_default_rules=True,
                                                 opts=opts)
    ports[name] = openstack.networking.Port(name, network_id=nets[name].id,
                                            fixed_ips=[{"subnet_id": subnets[name].id}],
                                            security_group_ids=[groups[name].id], opts=opts)

router = openstack.networking.Router("apps", external_network_id="ext-net", opts=opts)
openstack.networking.RouterInterface("apps", router_id=router.id, subnet_id=subnets["apps"].id,
                                     opts=opts)
for name, source in {"db-from-apps": {"remote_group_id": groups["apps"].id},
                     "db-from-apps-cidr": {"remote_ip_prefix": CIDRS["apps"]}}.items():
    openstack.networking.SecGroupRule(
        name, direction="ingress", ethertype="IPv4", protocol="tcp", port_range_min=5432,
        port_range_max=5432, security_group_id=groups["db"].id, opts=opts, **source)
openstack.networking.SecGroupRule(
    "jump-ssh", direction="ingress", ethertype="IPv4", protocol="tcp", port_range_min=22,
    port_range_max=22, remote_ip_prefix="192.0.2.0/28", security_group_id=groups["jump"].id,
    opts=opts)
fip = openstack.networking.FloatingIp("jump", pool="ext-net", opts=opts)
openstack.networking.FloatingIpAssociate("jump", floating_ip=fip.address,
                                         port_id=ports["jump"].id, opts=opts)
