"""Policy corpus: a volume on the provider's default (unencrypted) type."""

import pulumi
import pulumi_openstack as openstack

provider = openstack.Provider(
    "openstack",
    auth_url="https://identity.fr-par-1.snc.ovhcloud.com/v3",
    region="fr-par-1",
)
opts = pulumi.ResourceOptions(provider=provider)

openstack.blockstorage.Volume("scratch", name="scratch", size=100, opts=opts)
