"""Policy corpus: a world-readable object-storage container."""

import pulumi
import pulumi_openstack as openstack

provider = openstack.Provider(
    "openstack",
    auth_url="https://identity.fr-par-1.snc.ovhcloud.com/v3",
    region="fr-par-1",
)
opts = pulumi.ResourceOptions(provider=provider)

openstack.objectstorage.Container("datalake", name="datalake", container_read=".r:*,.rlistings",
                                  opts=opts)
