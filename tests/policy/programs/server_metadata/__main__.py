"""Policy corpus: a server without owner metadata."""

import pulumi
import pulumi_openstack as openstack

provider = openstack.Provider(
    "openstack",
    auth_url="https://identity.fr-par-1.snc.ovhcloud.com/v3",
    region="fr-par-1",
)
opts = pulumi.ResourceOptions(provider=provider)

openstack.compute.Instance("worker-1", name="worker-1", image_name="debian-12",
                           flavor_name="b3-8",
                           metadata={"environment": "dev", "node_role": "node",
                                     "data_classification": "health-data"},
                           opts=opts)
