"""Policy corpus: a provider in a US region with a non-EU identity endpoint."""

import pulumi
import pulumi_openstack as openstack

provider = openstack.Provider(
    "openstack", auth_url="https://identity.us-east-1.example.com/v3", region="us-east-1")
openstack.compute.Keypair("admin", name="admin", public_key="ssh-ed25519 AAAA corpus",
                          opts=pulumi.ResourceOptions(provider=provider))
