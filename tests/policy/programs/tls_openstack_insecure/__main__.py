"""Policy corpus: an allow-listed identity endpoint, reached without verifying TLS."""

import pulumi
import pulumi_openstack as openstack

provider = openstack.Provider(
    "openstack",
    auth_url="https://identity.fr-par-1.snc.ovhcloud.com/v3",
    region="fr-par-1",
    insecure=True,
    endpoint_overrides={"network": "http://network.fr-par-1.snc.ovhcloud.com:9696/"},
)
openstack.compute.Keypair("admin", name="admin",
                          opts=pulumi.ResourceOptions(provider=provider))
