"""Policy corpus: a Barbican key registered with its payload in clear."""

import pulumi
import pulumi_openstack as openstack

provider = openstack.Provider(
    "openstack",
    auth_url="https://identity.fr-par-1.snc.ovhcloud.com/v3",
    region="fr-par-1",
)
opts = pulumi.ResourceOptions(provider=provider)

# Registered without the typed class, which would have wrapped the payload as a secret.
pulumi.CustomResource("openstack:keymanager/secretV1:SecretV1", "kek", {
    "name": "kek", "algorithm": "aes", "bitLength": 256, "secretType": "symmetric",
    "payload": "corpus-fixture-not-a-key", "payloadContentType": "text/plain",
    "acl": {"read": {"projectAccess": False, "users": ["cinder-svc"]}},
}, opts)
