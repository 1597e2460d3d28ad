"""Policy corpus: SSH opened to the Internet on the app tier."""

import pulumi
import pulumi_openstack as openstack

provider = openstack.Provider(
    "openstack",
    auth_url="https://identity.fr-par-1.snc.ovhcloud.com/v3",
    region="fr-par-1",
)
opts = pulumi.ResourceOptions(provider=provider)

app = openstack.networking.SecGroup("app", name="app", tags=["tier=app"],
                                    delete_default_rules=True, opts=opts)
openstack.networking.SecGroupRule(
    "app-ssh-world", direction="ingress", ethertype="IPv4", protocol="tcp",
    port_range_min=22, port_range_max=22, remote_ip_prefix="0.0.0.0/0",
    security_group_id=app.id, opts=opts)
