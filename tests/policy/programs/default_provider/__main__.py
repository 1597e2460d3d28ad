"""Policy corpus: a resource on the ambient default provider."""

import pulumi_openstack as openstack

openstack.compute.Keypair("admin", name="admin", public_key="ssh-ed25519 AAAA corpus")
